"""The Runner protocol: what every backend that runs a Whisper model offers,
so that its users never ask which backend they hold.

The backends are the PyTorch model (:mod:`liteasr_export.model.torch_transcriber`),
ONNX Runtime over an artifacts folder (:mod:`liteasr_export.core.runtime.ort_transcriber`)
and TensorRT engines (:mod:`engines.runtime.trt_transcriber`); each is a
:class:`~liteasr_export.core.windowed.WindowedTranscriber` that supplies its
stages. :func:`liteasr_export.app.runners.open_runner` opens one by engine
name, importing only that backend (so the ONNX Runtime path never loads torch).

Who uses which part:

* the decoding loop (:mod:`liteasr_export.core.windowed`): ``features``,
  ``encode`` and ``decoder_step``;
* the comparator (:mod:`engines.validation.parity`): ``encode_outputs`` (every
  encoder output by its graph name) and ``decoder_step`` fed by them;
* the quality gate, the evaluator, the server and the batch jobs:
  ``transcribe_many``, ``transcribe_detailed`` and ``transcribe_each``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from liteasr_export.core.decoding import DecoderStep
from liteasr_export.core.errors import LiteASRError
from liteasr_export.core.frontend import SAMPLE_RATE
from liteasr_export.core.windowed import TranscribeOptions, Transcript


@runtime_checkable
class Runner(Protocol):
    """One backend running one model (see the module's docstring)."""

    #: what the runner runs, as reports name it: "torch fp32", "onnxruntime fp16", "tensorrt fp16"
    name: str
    n_mels: int
    settings: TranscribeOptions

    def features(self, window: np.ndarray) -> np.ndarray:
        """Normalized log-mel ``(n_mels, 3000)`` of one window of <= 30 s."""
        ...

    def encode(self, features: np.ndarray) -> Any:
        """What :meth:`decoder_step` takes for ``features`` (B, n_mels, 3000,
        or fewer mel frames under an ``audio_context``), in the backend's own
        arrays (numpy, torch CPU or CUDA tensors)."""
        ...

    def encode_outputs(self, features: np.ndarray) -> tuple[Any, dict[str, np.ndarray]]:
        """:meth:`encode`'s result and every encoder output by its name in
        ``encoder.onnx`` (``last_hidden_state``, ``cross_key.i``,
        ``cross_value.i``) as numpy, for comparison across backends."""
        ...

    def artifact(self, graph: str) -> str:
        """The file that runs ``graph`` (``encoder``, ``decoder``), as reports
        name it: ``encoder.onnx``, ``trt/encoder.plan``."""
        ...

    def decoder_step(self, encoded: Any) -> DecoderStep:
        """The decoder over one batch of :meth:`encode` results."""
        ...

    def configure(self, settings: TranscribeOptions) -> "Runner":
        """Use ``settings`` from now on (checked against the model first)."""
        ...

    def transcribe_many(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[str]:
        ...

    def transcribe_detailed(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[Transcript]:
        ...

    def detect_languages(self, audios: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> list[tuple[str, float]]:
        """The language (code, probability) of each recording from its first
        window, as ``language="auto"`` detects it (multilingual models)."""
        ...

    def transcribe_each(self, audios: list[np.ndarray],
                        sample_rate: int = SAMPLE_RATE) -> list[Transcript | LiteASRError]:
        ...
