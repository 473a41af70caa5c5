"""The optional parts of the package (pip extras): a command that needs one
that is not installed exits 2 with one line naming the extra to install.
`pip install liteasr-export` is the runtime alone (.ci/runtime_only.sh checks
the real installation); here the imports are made to look missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.app import cli
from liteasr_export.app.runners import open_runner
from liteasr_export.core.errors import (EXIT_BAD_INPUT, EXTRAS, EngineUnavailableError, LiteASRError, MissingExtraError,
                                        require_extra)

REPO = Path(__file__).resolve().parents[2]
EXPORT_LINE = "needs the export extra (torch, transformers, onnx). pip install 'liteasr-export[export]'"
SERVE_LINE = "needs the serve extra (Ray). pip install 'liteasr-export[serve]'"


def _missing(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look not installed: find_spec answers None and an
    import raises ImportError (what ``sys.modules[name] = None`` does)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def wav(tmp_path) -> str:
    path = tmp_path / "tone.wav"
    sf.write(str(path), (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32), 16000)
    return str(path)


def test_require_extra_passes_when_installed():
    require_extra("export", "liteasr-export", ("numpy", "json"))


def test_require_extra_names_the_extra(monkeypatch):
    _missing(monkeypatch, "ray")
    with pytest.raises(MissingExtraError) as info:
        require_extra("serve", "liteasr-serve")
    exc = info.value
    assert isinstance(exc, EngineUnavailableError) and isinstance(exc, LiteASRError)
    assert exc.exit_code == EXIT_BAD_INPUT and exc.extra == "serve"
    assert str(exc) == f"liteasr-serve {SERVE_LINE}"


def test_require_extra_treats_a_broken_installation_as_missing(monkeypatch):
    def broken(name, package=None):
        raise ValueError(f"{name}.__spec__ is None")

    monkeypatch.setattr("importlib.util.find_spec", broken)
    with pytest.raises(MissingExtraError, match=r"\[export\]"):
        require_extra("export", "liteasr-export", ("torch",))


def test_every_extra_checked_is_in_pyproject():
    import tomllib

    optional = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(optional)


@pytest.mark.parametrize("missing", ["torch", "transformers", "onnx"])
def test_export_without_the_export_extra(monkeypatch, capsys, tmp_path, missing):
    _missing(monkeypatch, missing)
    out = tmp_path / "out"
    assert cli.export_main(["--model", "tiny.en", "--output", str(out)]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-export: error: liteasr-export {EXPORT_LINE}"
    assert not out.exists()


def test_export_ray_without_the_serve_extra(monkeypatch, capsys, tmp_path):
    pytest.importorskip("torch")
    _missing(monkeypatch, "ray")
    assert cli.export_main(["--model", "tiny.en", "--output", str(tmp_path / "out"), "--ray"]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-export: error: --ray {SERVE_LINE}"


@pytest.mark.parametrize("argv", [[], ["--engine", "torch", "--model", "tiny.en"]], ids=["default", "explicit"])
def test_transcribe_torch_without_the_export_extra(monkeypatch, capsys, wav, argv):
    _missing(monkeypatch, "torch", "transformers")
    assert cli.transcribe_main([*argv, wav]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-transcribe: error: --engine torch {EXPORT_LINE}"


def test_eval_torch_without_the_export_extra(monkeypatch, capsys):
    _missing(monkeypatch, "transformers")
    assert cli.eval_main(["--engine", "torch", "--limit", "1"]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-eval: error: --engine torch {EXPORT_LINE}"


def test_open_runner_torch_without_the_export_extra(monkeypatch):
    _missing(monkeypatch, "torch")
    with pytest.raises(MissingExtraError, match=r"the torch engine needs the export extra"):
        open_runner("torch", model="tiny.en")


@pytest.mark.parametrize("command", ["transcribe", "eval"])
def test_onnx_engine_does_not_need_the_export_extra(monkeypatch, capsys, tmp_path, wav, command):
    """--engine onnx goes on to its own checks (here: the artifacts folder is missing)."""
    _missing(monkeypatch, "torch", "transformers", "onnx")
    argv = ["--engine", "onnx", "--artifacts", str(tmp_path / "nowhere")]
    main = cli.transcribe_main if command == "transcribe" else cli.eval_main
    assert main([*argv, wav] if command == "transcribe" else [*argv, "--limit", "1"]) == EXIT_BAD_INPUT
    line = _one_line(capsys)
    assert "extra" not in line and "nowhere" in line


def test_serve_without_the_serve_extra(monkeypatch, capsys, tmp_path):
    _missing(monkeypatch, "ray")
    assert cli.serve_main(["--artifacts", str(tmp_path)]) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-serve: error: liteasr-serve {SERVE_LINE}"


def test_transcribe_ray_without_the_serve_extra(monkeypatch, capsys, tmp_path, wav):
    _missing(monkeypatch, "ray")
    argv = ["--ray", wav, "--artifacts", str(tmp_path), "--output", str(tmp_path / "results.jsonl")]
    assert cli.transcribe_main(argv) == EXIT_BAD_INPUT
    assert _one_line(capsys) == f"liteasr-transcribe: error: --ray {SERVE_LINE}"
    assert not (tmp_path / "results.jsonl").exists()


def test_runtime_commands_load_without_torch(tmp_path, wav):
    """In a process where torch, transformers, the ONNX tooling and Ray cannot
    be imported at all: --help works, --engine onnx reaches its own checks,
    and liteasr-export names the extra."""
    blocker = """
import importlib.abc, sys
BLOCKED = {"torch", "transformers", "onnx", "onnxscript", "polygraphy", "safetensors", "ray"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from liteasr_export.app import cli
"""

    def run(call: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", blocker + call], capture_output=True, text=True, cwd=REPO,
                              timeout=120)

    help_run = run("cli.eval_parser().parse_args(['--help'])")
    assert help_run.returncode == 0 and "--engine" in help_run.stdout, help_run.stderr
    onnx = run(f"sys.exit(cli.transcribe_main(['--engine', 'onnx', '--artifacts', {str(tmp_path)!r}, {wav!r}]))")
    assert onnx.returncode == EXIT_BAD_INPUT and "extra" not in onnx.stderr and "Traceback" not in onnx.stderr
    export = run(f"sys.exit(cli.export_main(['--output', {str(tmp_path / 'out')!r}]))")
    assert export.returncode == EXIT_BAD_INPUT
    assert export.stderr.strip() == f"liteasr-export: error: liteasr-export {EXPORT_LINE}"
