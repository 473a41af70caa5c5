"""Fixtures of the runtime tests: the TensorRT decoder step on a machine
without TensorRT, and a decoder step that counts the rows it is fed.

The TensorRT stand-in runs its code
(:class:`engines.runtime.trt_transcriber.TrtDecoderStep`: torch tensors in and out,
the KV cache kept as tensors, reordered with ``index_select``) driven by a
stand-in engine that runs decoder.onnx in ONNX Runtime. What it cannot
check is TensorRT itself; what it checks is everything this project wrote
around it."""

from __future__ import annotations

import numpy as np
import pytest

from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
from engines.runtime.trt_transcriber import TrtDecoderStep


class OrtAsTrtEngine:
    """The slice of :class:`engines.runtime.trt_runner.TrtEngine` a decoder step uses
    (``run`` on named torch tensors, ``dtypes``, ``device``), over an ONNX
    Runtime session."""

    def __init__(self, session) -> None:
        import torch

        self.session = session
        self.device = torch.device("cpu")
        self.dtypes = {i.name: torch.float32 for i in session.get_inputs()}
        self.outputs = [o.name for o in session.get_outputs()]

    def run(self, feeds):
        import torch

        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in feeds.items()}
        return {name: torch.from_numpy(np.ascontiguousarray(value))
                for name, value in zip(self.outputs, self.session.run(self.outputs, arrays))}


class OrtAsTrtTranscriber(OnnxTranscriber):
    """An ONNX Runtime transcriber whose decoder step is TensorRT's."""

    def encode(self, features: np.ndarray):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(c)) for c in super().encode(features)]

    def decoder_step(self, cross):
        return TrtDecoderStep(OrtAsTrtEngine(self.decoder), self.n_layers, cross, self.manifest.decoder_shares_cross)


@pytest.fixture(scope="session")
def ort_as_trt_transcriber() -> type[OrtAsTrtTranscriber]:
    """The class of an ONNX Runtime transcriber whose decoder step is
    TensorRT's (constructed like :class:`OnnxTranscriber`)."""
    return OrtAsTrtTranscriber


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
