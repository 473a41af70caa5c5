"""ONNX Runtime session factory: one place for providers, threads and the
graph optimisation level (numpy + onnxruntime only, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from liteasr_export.errors import ArtifactError, EngineUnavailableError

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def create_session(
    path: str | Path,
    *,
    threads: int | None = None,
    providers: Sequence[str] | None = None,
    optimization: str = "all",
) -> "onnxruntime.InferenceSession":  # noqa: F821
    """An ``InferenceSession`` for one graph.

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per
    physical core); inter-op parallelism stays off, as the graphs are chains.
    ``providers``: ONNX Runtime execution providers in priority order.
    ``optimization``: one of ``disable``, ``basic``, ``extended``, ``all``.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX graph not found: {path}", "export the artifacts folder again")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    providers = list(providers or DEFAULT_PROVIDERS)
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise EngineUnavailableError(
            f"ONNX Runtime provider(s) {missing} not available (have {ort.get_available_providers()})",
            "install the matching onnxruntime package (e.g. onnxruntime-gpu) or use CPUExecutionProvider",
        )
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ArtifactError(f"ONNX Runtime cannot load {path.name}: {exc}",
                            "re-export the graph; check the onnxruntime version supports its opset") from None
