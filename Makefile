# The two quick-start commands: `make demo` (the main job on the bundled
# defaults) and `make test` (the test suite). Both create or reuse .venv.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out/tiny.en
PYTEST_ARGS ?=

.PHONY: demo test test-fast cpp system-deps speech speech-optional clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

system-deps:
	bash scripts/install_system_deps.sh

# Real multi-speaker speech (Debian's flight-of-the-amazon-queen, downloaded and
# unpacked into the cache, not installed). The demo goes on without it
# (calibrating and checking on the other sets, and saying so); the tests need it.
speech: $(VENV)/.installed
	$(PY) -m calibration.fotaq fetch

speech-optional: $(VENV)/.installed
	-$(PY) -m calibration.fotaq fetch --optional

demo: $(VENV)/.installed speech-optional
	$(VENV)/bin/liteasr-export --model tiny.en --engine onnx --output $(OUT) --force

test: $(VENV)/.installed system-deps speech
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

cpp: $(VENV)/.installed
	PYTHON=$(abspath $(PY)) bash examples/cpp/run_ci.sh

clean:
	rm -rf out build *.egg-info
