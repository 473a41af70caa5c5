"""One factory for every transcription backend. torch is imported only by
the PyTorch backend, so the ONNX Runtime path never loads torch or transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
from engines.runtime.trt_transcriber import TrtTranscriber

from liteasr_export.core.errors import LiteASRError, require_extra
from liteasr_export.model.sources import load_model
from liteasr_export.model.torch_transcriber import TorchTranscriber

ENGINES = ("torch", "onnx", "trt")
#: what the PyTorch backend imports (the export extra's; the rest of it is for exporting)
TORCH_MODULES = ("torch", "transformers", "safetensors")


class Transcriber(Protocol):
    def transcribe(self, audio: np.ndarray) -> str: ...

    def transcribe_many(self, audios: list[np.ndarray]) -> list[str]: ...

    def transcribe_detailed(self, audios: list[np.ndarray]) -> list: ...


def open_transcriber(
    engine: str,
    model: str | None = None,
    artifacts: str | Path | None = None,
    threads: int | None = None,
    device: str = "cpu",
    language: str | None = "en",
    providers: str | None = None,
    ort_cache: str | Path | None = None,
    verify: bool = True,
    settings: "TranscribeOptions | None" = None,  # noqa: F821
    batch_size: int = 8,
) -> Transcriber:
    """A transcriber for ``engine``: ``torch`` needs ``model`` (a bundled name or
    folder), ``onnx`` and ``trt`` need an exported ``artifacts`` folder, whose
    checksums are verified unless ``verify`` is False. ``settings``: decoding
    choices (:class:`~liteasr_export.core.windowed.TranscribeOptions`), checked
    against the model; ``batch_size``: windows decoded together, across
    recordings."""
    if engine == "torch":
        if model is None:
            raise LiteASRError("--engine torch needs a model", "pass --model tiny.en (or a model folder)")
        require_extra("export", "--engine torch", TORCH_MODULES)
        if threads:
            import torch  # the PyTorch backend only: the ONNX Runtime and TensorRT paths run without it

            torch.set_num_threads(threads)
        return TorchTranscriber(load_model(model, language=language), device=device, batch_size=batch_size,
                                settings=settings)
    if artifacts is None:
        raise LiteASRError(f"--engine {engine} needs exported artifacts", "pass --artifacts OUT (made by liteasr-export)")
    if engine == "onnx":
        return OnnxTranscriber(artifacts, threads=threads, providers=providers, cache_dir=ort_cache, verify=verify,
                               batch_size=batch_size, settings=settings)
    if engine == "trt":
        return TrtTranscriber(artifacts, verify=verify, batch_size=batch_size, settings=settings)
    raise LiteASRError(f"unknown engine {engine!r}", f"use one of {', '.join(ENGINES)}")
