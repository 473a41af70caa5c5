"""Fixtures of the runtime tests: one transcriber per backend, and a
decoder step that counts the rows it is fed (the TensorRT stand-in is in
``tests/conftest.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber


@pytest.fixture(scope="session")
def transcriber_on(ort_as_trt_transcriber):
    """Factory: ``transcriber_on(backend, loaded, artifacts, threads=1,
    **options)``, a transcriber on ``backend``: "torch" (a
    :class:`TorchTranscriber` of ``loaded``), "onnx" or "trt-step" (ONNX
    Runtime with TensorRT's decoder step) of the ``artifacts`` folder;
    ``options``: ``settings``, ``batch_size``."""
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    def make(backend: str, loaded, artifacts, threads: int = 1, **options):
        if backend == "torch":
            return TorchTranscriber(loaded, **options)
        cls = OnnxTranscriber if backend == "onnx" else ort_as_trt_transcriber
        return cls(artifacts, threads=threads, **options)

    return make


class Counted:
    """A decoder step that records how many rows each call feeds."""

    def __init__(self, step) -> None:
        self.step, self.rows = step, []

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        self.rows.append(len(tokens))
        return self.step(tokens)

    def reorder(self, rows: np.ndarray) -> None:
        self.step.reorder(rows)


@pytest.fixture(scope="session")
def counted_step() -> type[Counted]:
    """``counted_step(step)`` wraps a decoder step; ``.rows``: the rows of each call."""
    return Counted
