"""Validation of exported artifacts against the PyTorch model: encoder and
decoder parity (through :mod:`engines.validation.compare`) and WER per backend.

Each side's encoder runs once on the parity clips; its outputs feed both the
encoder comparison and that side's decoder, so the decoder comparison covers
the whole path end to end."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from liteasr_export.decoding import greedy_decode
from liteasr_export.graphs import cross_names

from .compare import ParityReport, compare

#: decoder steps compared (logits over a 20-step greedy decode)
PARITY_STEPS = 20


def torch_encoder_outputs(transcriber, features: np.ndarray):
    """The PyTorch model's hidden states (a tensor, for its decoder) and what
    encoder.onnx returns, as numpy."""
    model = transcriber.model
    heads = model.config.decoder_attention_heads
    with torch.inference_mode():
        hidden = transcriber.encode(features)
        out = {"last_hidden_state": hidden.cpu().numpy()}
        batch, frames, _ = hidden.shape
        for i, layer in enumerate(model.model.decoder.layers):
            for kind, proj in (("key", layer.encoder_attn.k_proj), ("value", layer.encoder_attn.v_proj)):
                kv = proj(hidden).view(batch, frames, heads, -1).transpose(1, 2)
                out[f"cross_{kind}.{i}"] = kv.cpu().numpy()
    return hidden, out


def onnx_encoder_outputs(onnx_transcriber, features: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of encoder.onnx (fed in its own input dtype)."""
    session = onnx_transcriber.encoder
    names = [o.name for o in session.get_outputs()]
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    return dict(zip(names, session.run(names, {"input_features": features.astype(dtype)})))


def _step_logits(step: Callable[[np.ndarray], np.ndarray], prompt: list[int], tokens: np.ndarray) -> np.ndarray:
    """Logits after the prompt and after each forced token: (steps, batch, vocab)."""
    batch = tokens.shape[0]
    logits = [step(np.tile(np.asarray(prompt, dtype=np.int64), (batch, 1)))]
    for t in range(tokens.shape[1] - 1):
        logits.append(step(tokens[:, t : t + 1]))
    return np.stack([np.asarray(x, dtype=np.float32) for x in logits])


def parity(torch_transcriber, onnx_transcriber, features: np.ndarray, precision: str,
           steps: int = PARITY_STEPS) -> list[ParityReport]:
    """encoder.onnx against the PyTorch encoder, then decoder.onnx logits
    against PyTorch's over the same forced tokens (PyTorch's greedy choices),
    each decoder fed by its own encoder."""
    hidden, reference = torch_encoder_outputs(torch_transcriber, features)
    actual = onnx_encoder_outputs(onnx_transcriber, features)
    reports = [compare("encoder.onnx", precision, reference, actual)]

    options = torch_transcriber.loaded.decoding
    ids = greedy_decode(torch_transcriber.decoder_step(hidden), len(features), options)
    tokens = np.full((len(ids), steps), options.eot, dtype=np.int64)
    for b, row in enumerate(ids):
        tokens[b, : min(len(row), steps)] = row[:steps]
    ref = _step_logits(torch_transcriber.decoder_step(hidden), options.prompt, tokens)
    cross = [actual[name] for name in cross_names(torch_transcriber.model.config.decoder_layers)]
    act = _step_logits(onnx_transcriber.decoder_step(cross), options.prompt, tokens)
    reports.append(compare("decoder.onnx", precision, {"logits": ref}, {"logits": act}))
    return reports
