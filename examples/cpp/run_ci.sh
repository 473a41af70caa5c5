#!/usr/bin/env bash
# CI for the C++ example, start to end: system packages (cmake, g++, libssl-dev,
# nlohmann-json3-dev, zlib1g-dev), ONNX Runtime headers and library (fetch_deps.sh),
# tiny.en artifacts exported with the project's Python API, CMake configure
# and build, then CTest (unit checks, the built-in clips against the Python
# ONNX Runtime path, bad-input cases).
#
# Environment: PYTHON (default: the project's .venv), BUILD_DIR (default
# examples/cpp/build), JOBS (default 2).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
build="${BUILD_DIR:-$here/build}"
jobs="${JOBS:-2}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
fi
export PYTHON

# ---------------------------------------------------------------- system packages
bash "$repo/scripts/install_system_deps.sh" --required cmake g++ nlohmann-json3-dev libssl-dev zlib1g-dev

# ---------------------------------------------------------------- ONNX Runtime
"$here/fetch_deps.sh"

# ---------------------------------------------------------------- artifacts
artifacts="$build/artifacts/tiny.en"
rm -rf "$artifacts"
mkdir -p "$build"
echo "run_ci.sh: exporting tiny.en to $artifacts"
(cd "$repo" && "$PYTHON" - "$artifacts" <<'PY'
import sys
from exporters.artifacts import export_artifacts
from liteasr_export.model.sources import load_model

export_artifacts(load_model("tiny.en"), sys.argv[1])
PY
)

# ---------------------------------------------------------------- build and test
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLITEASR_PYTHON="$PYTHON" -DLITEASR_TEST_ARTIFACTS="$artifacts"
cmake --build "$build" -j "$jobs"
(cd "$build" && ctest --output-on-failure)
