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
from liteasr_export.core.runner import Runner

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


def torch_reference(reference: Runner, features: np.ndarray, steps: int = PARITY_STEPS) -> TorchReference:
    """Run the PyTorch runner's (float32) model on ``features`` in float32
    and in float64; the decoders are forced along the float64 model's greedy
    tokens (``steps`` of them, <|endoftext|> after the end)."""
    options = reference.loaded.decoding
    hidden, encoder_fp32 = reference.encode_outputs(features)
    step = reference.decoder_step
    with float64(reference.model):
        hidden64, encoder = reference.encode_outputs(features)
        ids = greedy_decode(step(hidden64), len(features), options)
        tokens = np.full((len(ids), steps), options.eot, dtype=np.int64)
        for b, row in enumerate(ids):
            tokens[b, : min(len(row), steps)] = row[:steps]
        logits = _step_logits(step(hidden64), options.prompt, tokens)
        del hidden64
    logits_fp32 = _step_logits(step(hidden), options.prompt, tokens)
    return TorchReference(encoder, encoder_fp32, logits, logits_fp32, tokens, list(options.prompt))


def compare_runner(reference: TorchReference, runner: Runner, features: np.ndarray,
                   precision: str) -> list[ParityReport]:
    """The runner's encoder outputs, then its decoder's logits (fed by its own
    encoder's outputs) over the reference's forced tokens, against float64
    with float32 PyTorch's error as the noise level; any backend (ONNX
    Runtime, TensorRT) is compared the same way."""
    encoded, actual = runner.encode_outputs(features)
    reports = [compare(runner.artifact("encoder"), precision, reference.encoder, actual, reference.encoder_fp32)]
    logits = _step_logits(runner.decoder_step(encoded), reference.prompt, reference.tokens)
    reports.append(compare(runner.artifact("decoder"), precision, {"logits": reference.logits}, {"logits": logits},
                           {"logits": reference.logits_fp32}))
    return reports


def parity(reference: Runner, runner: Runner, features: np.ndarray, precision: str,
           steps: int = PARITY_STEPS) -> list[ParityReport]:
    """The runner's encoder and decoder against the float64 run of the
    PyTorch ``reference`` runner's model, each error judged against the
    float32 run's. ``features`` (B, n_mels, T): 3000 mel frames, or fewer
    to check a trimmed audio context (both sides slice the positional table)."""
    return compare_runner(torch_reference(reference, features, steps), runner, features, precision)
