"""Open a :class:`~liteasr_export.core.runner.Runner` by engine name: the
one place that knows every backend. Each backend is imported only when it is
opened (Polygraphy's lazy loaders), so the ONNX Runtime path never loads
torch, transformers or TensorRT.

Every user of a backend goes through here: the CLIs (transcribe, eval), the
export's validation (parity and the quality gate), the server and the Ray
batch jobs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from liteasr_export.core.errors import LiteASRError, require_extra
from liteasr_export.core.runner import Runner

if TYPE_CHECKING:
    from liteasr_export.core.windowed import TranscribeOptions
    from liteasr_export.model.sources import LoadedModel

#: engine name -> what it runs
#: what the PyTorch backend imports (the export extra's; the rest of it is for exporting)
TORCH_MODULES = ("torch", "transformers", "safetensors")

ENGINES = {
    "torch": "the PyTorch model (a bundled name or a model folder)",
    "onnx": "an artifacts folder with ONNX Runtime",
    "trt": "an artifacts folder's TensorRT engines (one CUDA GPU)",
}


def open_runner(
    engine: str,
    *,
    model: str | None = None,
    loaded: "LoadedModel | None" = None,
    artifacts: str | Path | None = None,
    threads: int | None = None,
    device: str = "cpu",
    language: str | None = "en",
    providers: str | None = None,
    ort_cache: str | Path | None = None,
    verify: bool = True,
    settings: "TranscribeOptions | None" = None,
    batch_size: int = 8,
) -> Runner:
    """A runner for ``engine`` (one of :data:`ENGINES`).

    ``torch`` runs ``loaded`` (a model already loaded) or loads ``model`` (a
    bundled name or folder; ``language`` sets its default prompt) on
    ``device``; ``onnx`` and ``trt`` run the exported ``artifacts`` folder,
    whose checksums are verified unless ``verify`` is False (``threads``,
    ``providers`` and ``ort_cache``: ONNX Runtime's). ``settings``: decoding
    choices, checked against the model; ``batch_size``: windows decoded
    together, across recordings."""
    if engine not in ENGINES:
        raise LiteASRError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    if engine == "torch":
        if loaded is None and model is None:
            raise LiteASRError("the torch engine needs a model", "name a bundled model (tiny.en) or a model folder")
        require_extra("export", "the torch engine", TORCH_MODULES)
        import torch  # the PyTorch backend only: the ONNX Runtime and TensorRT paths run without it

        from liteasr_export.model.sources import load_model
        from liteasr_export.model.torch_transcriber import TorchTranscriber

        if threads:
            torch.set_num_threads(threads)
        if loaded is None:
            loaded = load_model(model, language=language)
        return TorchTranscriber(loaded, device=device, batch_size=batch_size, settings=settings)
    if artifacts is None:
        raise LiteASRError(f"the {engine} engine needs an artifacts folder", "export one with liteasr-export")
    if engine == "onnx":
        from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber

        return OnnxTranscriber(artifacts, threads=threads, providers=providers, cache_dir=ort_cache, verify=verify,
                               batch_size=batch_size, settings=settings)
    from engines.runtime.trt_transcriber import TrtTranscriber

    return TrtTranscriber(artifacts, verify=verify, batch_size=batch_size, settings=settings)
