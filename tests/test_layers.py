"""The package layering: ``lint-imports`` (import-linter) keeps the contracts
in pyproject.toml (layers, no cycles, a torch-free ONNX Runtime path), and
every module of the four packages is placed in a layer."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_import_contracts_are_kept():
    pytest.importorskip("importlinter")
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    out = subprocess.run([sys.executable, "-c", code, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _layered() -> set[str]:
    layers = next(c for c in CONFIG["contracts"] if c["type"] == "layers")["layers"]
    return {name.strip() for layer in layers for name in layer.replace(":", "|").split("|")}


def test_every_module_has_a_layer():
    """A new module of liteasr_export must be placed in a layer (the other
    packages are layers as a whole)."""
    layered = _layered()
    assert {"calibration", "exporters", "engines"} <= layered
    modules = {f"liteasr_export.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "liteasr_export")])}
    assert sorted(modules - layered) == []
    assert sorted(n for n in layered if n.startswith("liteasr_export.") and n not in modules) == []
