"""Whether TensorRT can run here, and the one lazy import of ``tensorrt``.

TensorRT needs its Python package (NVIDIA's wheels, which PyPI only points
to) and a CUDA GPU (reached through torch). :func:`missing` says what is
absent, :func:`require_tensorrt` raises :class:`EngineUnavailableError`
naming it, so ``--engine trt`` stops with a message instead of a traceback.
Importing this module imports neither tensorrt nor torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from liteasr_export.core.errors import EngineUnavailableError

_ELSEWHERE = ("or export with liteasr-export --engine trt --build-script and run the folder's "
              "build_engines.sh on the GPU machine")
TENSORRT_FIX = ("install TensorRT's Python package on a CUDA machine "
                f"(pip install tensorrt --extra-index-url https://pypi.nvidia.com), {_ELSEWHERE}")
CUDA_FIX = ("run on a machine with an NVIDIA GPU and a CUDA build of torch (torch.cuda.is_available() must be "
            f"True), {_ELSEWHERE}")


def tensorrt_version() -> tuple[int, int] | None:
    """(major, minor) of the installed tensorrt package, or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    import tensorrt as trt  # optional: TensorRT is installed only on GPU machines

    major, minor = (int(p) for p in trt.__version__.split(".")[:2])
    return major, minor


def missing() -> list[str]:
    """What TensorRT lacks on this machine (empty: it can build and run engines)."""
    problems = []
    if importlib.util.find_spec("tensorrt") is None:
        problems.append("the tensorrt Python package is not installed")
    if importlib.util.find_spec("torch") is None:
        problems.append("torch is not installed (the TensorRT runner uses torch CUDA tensors)")
    else:
        import torch  # CUDA's device query; torch is needed only on a GPU

        if not torch.cuda.is_available():
            problems.append("no CUDA device: torch.cuda.is_available() is False"
                            + ("" if torch.version.cuda else " (this torch is a CPU-only build)"))
    return problems


def require_tensorrt(need_cuda: bool = True) -> ModuleType:
    """The ``tensorrt`` module, or :class:`EngineUnavailableError` naming what is missing."""
    problems = missing()
    if not need_cuda:
        problems = [p for p in problems if "tensorrt" in p]
    if problems:
        fix = TENSORRT_FIX if any("tensorrt" in p for p in problems) else CUDA_FIX
        raise EngineUnavailableError("TensorRT cannot run here: " + "; ".join(problems), fix)
    return importlib.import_module("tensorrt")
