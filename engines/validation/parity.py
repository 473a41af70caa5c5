"""Validation of exported artifacts against the PyTorch model they were
exported from: encoder and decoder parity (through
:mod:`engines.validation.compare`).

The reference is the same model run in float64; the model's float32 run is
compared with it too, and its error is the arithmetic noise the artifact's
error is judged against. Each side's encoder runs once on the parity clips;
its outputs feed that side's decoder over the same forced tokens (the float64
model's greedy choices), so the decoder comparison covers the whole path end
to end."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from liteasr_export.core.decoding import greedy_decode
from liteasr_export.core.graphs import cross_names

from .compare import ParityReport, compare

#: decoder steps compared (logits over a 20-step greedy decode)
PARITY_STEPS = 20


@contextmanager
def float64(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` converted to float64 in place, and back to its dtype on
    exit: float32 -> float64 -> float32 is exact, and no second copy of a
    large model is held (a deep copy would add its float32 size again)."""
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise ValueError(f"the parity reference needs a float32 model (got {dtype})")
    try:
        yield model.double()
    finally:
        model.float()


def torch_encoder_outputs(model, features: np.ndarray):
    """The hidden states (a tensor, for the decoder) and what encoder.onnx
    returns (numpy), computed by ``model`` in its own dtype."""
    dtype = next(model.parameters()).dtype
    heads = model.config.decoder_attention_heads
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(features)).to(device=model.device, dtype=dtype)
        hidden = model.model.encoder(x).last_hidden_state
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
    """Logits after the prompt and after each forced token: (steps, batch, vocab), in the step's dtype."""
    batch = tokens.shape[0]
    logits = [step(np.tile(np.asarray(prompt, dtype=np.int64), (batch, 1)))]
    for t in range(tokens.shape[1] - 1):
        logits.append(step(tokens[:, t : t + 1]))
    return np.stack([np.asarray(x) for x in logits])


@dataclass
class TorchReference:
    """The PyTorch model's outputs on the parity clips: float64 (the
    reference) and float32 (the noise), encoder outputs and decoder logits
    over ``tokens``."""

    encoder: dict[str, np.ndarray]
    encoder_fp32: dict[str, np.ndarray]
    logits: np.ndarray
    logits_fp32: np.ndarray
    tokens: np.ndarray
    prompt: list[int]


def torch_reference(torch_transcriber, features: np.ndarray, steps: int = PARITY_STEPS) -> TorchReference:
    """Run the transcriber's (float32) model on ``features`` in float32 and
    in float64; the decoders are forced along the float64 model's greedy
    tokens (``steps`` of them, <|endoftext|> after the end)."""
    model, options = torch_transcriber.model, torch_transcriber.loaded.decoding
    hidden, encoder_fp32 = torch_encoder_outputs(model, features)
    step = torch_transcriber.decoder_step
    with float64(model):
        hidden64, encoder = torch_encoder_outputs(model, features)
        ids = greedy_decode(step(hidden64), len(features), options)
        tokens = np.full((len(ids), steps), options.eot, dtype=np.int64)
        for b, row in enumerate(ids):
            tokens[b, : min(len(row), steps)] = row[:steps]
        logits = _step_logits(step(hidden64), options.prompt, tokens)
        del hidden64
    logits_fp32 = _step_logits(step(hidden), options.prompt, tokens)
    return TorchReference(encoder, encoder_fp32, logits, logits_fp32, tokens, list(options.prompt))


def compare_onnx(reference: TorchReference, onnx_transcriber, features: np.ndarray,
                 precision: str) -> list[ParityReport]:
    """encoder.onnx's outputs, then decoder.onnx's logits (fed by
    encoder.onnx's cross K/V) over the reference's forced tokens, against
    float64 with float32 PyTorch's error as the noise level."""
    actual = onnx_encoder_outputs(onnx_transcriber, features)
    reports = [compare("encoder.onnx", precision, reference.encoder, actual, reference.encoder_fp32)]
    n_layers = sum(name.startswith("cross_key.") for name in reference.encoder)
    cross = [actual[name] for name in cross_names(n_layers)]
    logits = _step_logits(onnx_transcriber.decoder_step(cross), reference.prompt, reference.tokens)
    reports.append(compare("decoder.onnx", precision, {"logits": reference.logits}, {"logits": logits},
                           {"logits": reference.logits_fp32}))
    return reports


def parity(torch_transcriber, onnx_transcriber, features: np.ndarray, precision: str,
           steps: int = PARITY_STEPS) -> list[ParityReport]:
    """encoder.onnx and decoder.onnx against the float64 run of the
    transcriber's model, each error judged against the float32 run's."""
    return compare_onnx(torch_reference(torch_transcriber, features, steps), onnx_transcriber, features, precision)
