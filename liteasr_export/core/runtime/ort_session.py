"""ONNX Runtime session factory: one place for providers, threads and the
graph optimisation level (numpy + onnxruntime only, no torch)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Sequence

from liteasr_export.core.errors import ArtifactError, EngineUnavailableError, LiteASRError, OutputError, debug_enabled
from liteasr_export.core.integrity import sha256_file


def _ort():
    """onnxruntime, imported on first use: importing it creates a cache folder
    (``$XDG_CACHE_HOME/Microsoft/DeveloperTools``), which a command that fails
    its checks must not leave behind."""
    import onnxruntime

    # its warnings (e.g. on saving an optimized graph for --ort-cache) span
    # lines and need no action: shown with --debug only
    onnxruntime.set_default_logger_severity(_WARNING if debug_enabled() else _ERROR)
    return onnxruntime


_WARNING, _ERROR = 2, 3  # ONNX Runtime's log severities


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


def _cached_optimized(path: Path, cache_dir: Path, digest: str, optimization: str, providers: list[str]) -> Path:
    """Where ONNX Runtime's optimized copy of ``path`` lives: keyed by the
    graph's sha256 (not its path or mtime: a rewritten graph never meets a
    stale copy), the runtime version, the level and the providers."""
    ort = _ort()
    key = f"{digest}|{ort.__version__}|{optimization}|{','.join(providers)}"
    return cache_dir / f"{path.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.onnx"


def _session_options(optimization: str, threads: int | None) -> "onnxruntime.SessionOptions":  # noqa: F821
    ort = _ort()
    options = ort.SessionOptions()
    options.graph_optimization_level = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[optimization]
    if threads is not None:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


def _load_cached(cached: Path, threads: int | None, providers: list[str]):
    """The cached optimized graph as a session, or None when there is none or
    it cannot be loaded (truncated by a killed run, another runtime's...):
    then it is deleted and rebuilt."""
    ort = _ort()
    if not cached.is_file():
        return None
    try:
        return ort.InferenceSession(str(cached), sess_options=_session_options("disable", threads), providers=providers)
    except Exception:  # onnxruntime raises its own Fail/InvalidProtobuf types
        try:
            cached.unlink()
        except OSError:
            pass
        return None


def create_session(
    path: str | Path,
    *,
    threads: int | None = None,
    providers: Sequence[str] | str | None = None,
    optimization: str = "all",
    cache_dir: str | Path | None = None,
    sha256: str | None = None,
) -> "onnxruntime.InferenceSession":  # noqa: F821
    """An ``InferenceSession`` for one graph.

    ``threads``: intra-op threads (None: ONNX Runtime's default, one per
    physical core); inter-op parallelism stays off, as the graphs are chains.
    ``providers``: ONNX Runtime execution providers in priority order.
    ``optimization``: one of ``disable``, ``basic``, ``extended``, ``all``.
    ``cache_dir``: keep ONNX Runtime's optimized graph there and load it (with
    optimizations off) next time, which saves the optimization at start-up.
    The copy is written under a temporary name and renamed, so concurrent
    runs and killed runs never leave a partial file. ``sha256``: the graph's
    digest when the caller verified it already (else it is computed).
    """
    ort = _ort()
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"ONNX graph not found: {path}", "export the artifacts folder again")
    if optimization not in OPTIMIZATION_LEVELS:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    if threads is not None and threads < 1:
        raise LiteASRError(f"`threads` must be >= 1, got {threads}", "pass 1 or more", field="threads")
    providers = resolve_providers(providers)
    missing = [p for p in providers if p not in ort.get_available_providers()]
    if missing:
        raise EngineUnavailableError(
            f"ONNX Runtime provider(s) {missing} not available (have {ort.get_available_providers()})",
            "install the matching onnxruntime package (e.g. onnxruntime-gpu) or use CPUExecutionProvider",
        )
    options = _session_options(optimization, threads)
    staged = cached = None
    if cache_dir is not None and path.stat().st_size < _CACHE_MAX_BYTES and optimization != "disable":
        cached = _cached_optimized(path, Path(cache_dir), sha256 or sha256_file(path), optimization, providers)
        session = _load_cached(cached, threads, providers)
        if session is not None:
            return session
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            fd, staged = tempfile.mkstemp(dir=cached.parent, prefix=f".{cached.name}.", suffix=".tmp")
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write the ONNX Runtime cache in {cache_dir} ({exc.strerror})",
                              "give `cache_dir` a writable folder, or leave it out", field="cache_dir") from None
        options.optimized_model_filepath = staged
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except BaseException as exc:
        if staged is not None:
            _unlink(staged)
        if not isinstance(exc, Exception):
            raise
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"ONNX Runtime cannot load {path.name}: {message}",
                            "re-export the graph; check the onnxruntime version supports its opset") from None
    if staged is not None:
        try:  # complete now: publish it in one rename
            if os.path.getsize(staged) == 0:
                raise OSError("ONNX Runtime wrote no optimized graph")
            os.chmod(staged, 0o644)
            os.replace(staged, cached)
        except OSError:
            _unlink(staged)
    return session


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
