"""ONNX Runtime session factory: one place for providers, threads and the
graph optimisation level (numpy + onnxruntime only, no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from liteasr_export.errors import ArtifactError, EngineUnavailableError

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")
#: short names accepted on the command line (``--provider tensorrt,cuda,cpu``)
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
#: graphs above this size keep their weights outside the file; the optimized
#: copy would need its own external-data file, so they are not cached
_CACHE_MAX_BYTES = 1 << 31


def resolve_providers(names: Sequence[str] | str | None) -> list[str]:
    """Provider names from aliases or full names, in priority order."""
    if names is None:
        return list(DEFAULT_PROVIDERS)
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    return [PROVIDER_ALIASES.get(n.strip().lower(), n.strip()) for n in names]


def _cached_optimized(path: Path, cache_dir: Path, optimization: str, providers: list[str]) -> Path:
    """Where ONNX Runtime's optimized copy of ``path`` lives: keyed by the
    graph's size and mtime, the runtime version, level and providers."""
    import hashlib

    import onnxruntime as ort

    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{ort.__version__}|{optimization}|{','.join(providers)}"
    return cache_dir / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def create_session(
    path: str | Path,
    *,
    threads: int | None = None,
    providers: Sequence[str] | str | None = None,
    optimization: str = "all",
    cache_dir: str | Path | None = None,
) -> "onnxruntime.InferenceSession":  # noqa: F821
    """An ``InferenceSession`` for one graph.

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per
    physical core); inter-op parallelism stays off, as the graphs are chains.
    ``providers``: ONNX Runtime execution providers in priority order.
    ``optimization``: one of ``disable``, ``basic``, ``extended``, ``all``.
    ``cache_dir``: keep ONNX Runtime's optimized graph there and load it (with
    optimizations off) next time, which saves the optimization at start-up.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX graph not found: {path}", "export the artifacts folder again")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    providers = resolve_providers(providers)
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
    source = path
    if cache_dir is not None and path.stat().st_size < _CACHE_MAX_BYTES and optimization != "disable":
        cached = _cached_optimized(path, Path(cache_dir), optimization, providers)
        if cached.is_file():
            source = cached
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        else:
            cached.parent.mkdir(parents=True, exist_ok=True)
            options.optimized_model_filepath = str(cached)
    try:
        return ort.InferenceSession(str(source), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ArtifactError(f"ONNX Runtime cannot load {path.name}: {exc}",
                            "re-export the graph; check the onnxruntime version supports its opset") from None
