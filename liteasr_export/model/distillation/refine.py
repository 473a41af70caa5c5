"""Short distillation of the low-rank factors against the dense encoder.

The factorization fits each matrix on its own, to its own inputs; the errors
of the layers below shift the inputs of the layers above, and nothing in a
per-matrix fit sees that. A few hundred optimizer steps on unlabeled audio,
with the dense encoder as the teacher, fit the factors (``weight1``,
``weight2`` and the bias of every :class:`LowRankLinear`, nothing else) to
reproduce the dense encoder's output: its last hidden states and, weighted
less, every layer's output (a deep target that keeps the early layers close
too). The dense matrices, layer norms, convolutions and the decoder are
frozen, so a refined model exports exactly as before.

The windows are the calibration windows (speech the model never saw
transcribed: no labels are used); the teacher's outputs are computed once.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from liteasr_export.model.lowrank import LowRankLinear, iter_encoder_linears

log = logging.getLogger(__name__)

#: weight of the per-layer targets against the final output's
LAYER_WEIGHT = 0.25


@dataclass
class RefineResult:
    """What refining did: steps, time and the distillation loss before and
    after, on the training windows and on held-back windows."""

    steps: int
    seconds: float
    train_loss_before: float
    train_loss_after: float
    heldout_loss_before: float | None
    heldout_loss_after: float | None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def _encoder(model: nn.Module) -> nn.Module:
    return getattr(model, "model", model).encoder


def encoder_targets(encoder: nn.Module, features: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output and the final (normed) hidden states."""
    out = encoder(features, output_hidden_states=True)
    return [*out.hidden_states[1:-1], out.last_hidden_state]


def encoder_loss(outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor], scales: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared error of each output, relative to the target's variance
    per channel; the final output weighs 1, the layers :data:`LAYER_WEIGHT` in all."""
    terms = [((o - t) ** 2 / s).mean() for o, t, s in zip(outputs, targets, scales)]
    final, layers = terms[-1], terms[:-1]
    return final + (LAYER_WEIGHT * sum(layers) / len(layers) if layers else 0.0)


def refine(
    model: nn.Module,
    teacher: nn.Module,
    features: np.ndarray,
    steps: int,
    batch_size: int = 4,
    lr: float = 2e-4,
    heldout: np.ndarray | None = None,
    progress: bool = True,
    seed: int = 0,
) -> RefineResult:
    """Fit ``model``'s low-rank factors (in place) so that its encoder matches
    ``teacher``'s (the dense model) on ``features`` (N, n_mels, 3000).

    Adam with a cosine-decayed learning rate, ``steps`` steps of
    ``batch_size`` windows. ``heldout`` windows are only scored, before and
    after, to show whether the fit generalizes.
    """
    params = [p for _, _, m in iter_encoder_linears(model) if isinstance(m, LowRankLinear) for p in m.parameters()]
    if not params or steps <= 0:
        return RefineResult(0, 0.0, math.nan, math.nan, None, None)
    start = time.perf_counter()
    student, master = _encoder(model), _encoder(teacher)
    frozen = [p for p in model.parameters()]
    states = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    with torch.no_grad():
        teacher.eval()
        targets = [torch.cat(chunk) for chunk in zip(*(encoder_targets(master, x[i : i + batch_size])
                                                       for i in range(0, len(x), batch_size)))]
        scales = [t.var(dim=(0, 1), keepdim=True)[0].clamp_min(1e-6) for t in targets]

    def score(inputs: torch.Tensor, wanted: list[torch.Tensor]) -> float:
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(inputs), batch_size):
                got = encoder_targets(student, inputs[i : i + batch_size])
                total += float(encoder_loss(got, [t[i : i + batch_size] for t in wanted], scales)) * len(got[0])
            return total / len(inputs)

    held = None
    if heldout is not None and len(heldout):
        held_x = torch.from_numpy(np.ascontiguousarray(heldout, dtype=np.float32))
        with torch.no_grad():
            held = (held_x, [torch.cat(c) for c in zip(*(encoder_targets(master, held_x[i : i + batch_size])
                                                           for i in range(0, len(held_x), batch_size)))])
    was_training = model.training
    model.eval()  # no dropout: the factors are fitted to the inference-time function
    before = score(x, targets)
    held_before = score(*held) if held else None
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    cursor = 0
    try:
        for _ in tqdm(range(steps), desc="refining", unit="step", disable=not progress):
            if cursor + batch_size > len(order):
                order, cursor = torch.randperm(len(x), generator=generator), 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            loss = encoder_loss(encoder_targets(student, x[idx]), [t[idx] for t in targets], scales)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    finally:
        for p, state in zip(frozen, states):
            p.requires_grad_(state)
        model.train(was_training)
    result = RefineResult(steps, time.perf_counter() - start, before, score(x, targets),
                          held_before, score(*held) if held else None)
    log.info("refined %d steps in %.1f s: loss %.4f -> %.4f", steps, result.seconds, before, result.train_loss_after)
    return result

