"""The TensorRT decoder step on a machine without TensorRT: its code
(:class:`engines.runtime.trt_transcriber.TrtDecoderStep`: torch tensors in and out,
the KV cache kept as tensors, reordered with ``index_select``) driven by a
stand-in engine that runs decoder.onnx in ONNX Runtime. What it cannot
check is TensorRT itself; what it checks is everything this project wrote
around it."""

from __future__ import annotations

import numpy as np

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

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "tensorrt fp32"

    def encode(self, features: np.ndarray):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(c)) for c in super().encode(features)]

    def encode_outputs(self, features: np.ndarray):
        import torch

        cross, outputs = super().encode_outputs(features)
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in cross], outputs

    def artifact(self, graph: str) -> str:
        return f"trt/{graph}.plan"

    def decoder_step(self, cross):
        return TrtDecoderStep(OrtAsTrtEngine(self.decoder), self.n_layers, cross, self.manifest.decoder_shares_cross)
