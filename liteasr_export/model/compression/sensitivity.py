"""Measured sensitivity: how much each matrix's truncation disturbs the
encoder's output, so that a global budget spends its parameters where the
output needs them.

A spectrum alone predicts a matrix's own output error (the variance its
discarded components hold). The same error costs very different amounts
downstream: an fc2 whose variance sits in a few outlier channels looks 99 %
explained at rank 4 and breaks the model; a q_proj error is damped by the
softmax. Probing measures it: each matrix alone is factorized at one rank,
the probe windows run from that layer on, and the relative error of the
final hidden states, divided by the predicted share discarded, gives the
matrix's sensitivity. :class:`~liteasr_export.model.compression.rank_policies.BudgetPolicy`
multiplies its predicted errors by it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from liteasr_export.model.compression.report import pays_off
from liteasr_export.model.compression.compressor import _iter_decompositions, factorize
from liteasr_export.model.lowrank import LowRankLinear, encoder_layers, set_linear
from liteasr_export.model.compression.rank_policies import MatrixSpectrum, RankPolicy

log = logging.getLogger(__name__)

#: a predicted share below this is not trusted as a divisor
MIN_SHARE = 1e-6


def _relative_error(output: torch.Tensor, reference: torch.Tensor, scale: torch.Tensor) -> float:
    return float(((output - reference) ** 2 / scale).mean())


@torch.inference_mode()
def measure_sensitivity(
    model: nn.Module,
    stats,
    spectra: Sequence[MatrixSpectrum],
    features: np.ndarray,
    probe_ranks: dict[tuple[int, str], int],
    weights: str = "standardized",
    shrinkage: float = 0.0,
    progress: bool = True,
) -> list[MatrixSpectrum]:
    """The spectra with ``sensitivity`` set from probes at ``probe_ranks``
    (one rank per ``(layer, name)``; others keep sensitivity 1) on log-mel
    ``features`` (N, n_mels, 3000). ``model`` is the dense model; it is left
    as it was."""
    start = time.perf_counter()
    encoder = getattr(model, "model", model).encoder
    layers = encoder_layers(model)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    out = encoder(x, output_hidden_states=True)
    reference = out.last_hidden_state
    scale = reference.var(dim=(0, 1), keepdim=True)[0].clamp_min(1e-6)
    inputs = [out.hidden_states[0]]
    for layer in layers[:-1]:  # every layer's input (hidden_states lacks the last one's)
        inputs.append(layer(inputs[-1], None))
    by_key = {(s.layer, s.name): s for s in spectra}
    measured: dict[tuple[int, str], float] = {}
    wanted = lambda i, n: (i, n) in probe_ranks  # noqa: E731
    decompositions = _iter_decompositions(model, stats, wanted, shrinkage)
    for index, name, linear, dec in tqdm(decompositions, total=len(probe_ranks), desc="probing", unit="matrix",
                                         disable=not progress):
        rank = probe_ranks[(index, name)]
        weight = linear.weight.detach().to("cpu", torch.float64).T
        bias = linear.bias.detach().to("cpu") if linear.bias is not None else None
        w1, w2, b = factorize(weight, bias, dec.mean, dec.eigenvectors[:, :rank])
        probe = LowRankLinear.from_factors(w1.float(), w2.float(), b.float())
        set_linear(layers[index], name, probe)
        try:
            hidden = inputs[index]
            for layer in layers[index:]:
                hidden = layer(hidden, None)
            error = _relative_error(encoder.layer_norm(hidden), reference, scale)
        finally:
            set_linear(layers[index], name, linear)
        share = max(by_key[(index, name)].tail(rank, weights), MIN_SHARE)
        measured[(index, name)] = error / share
    log.info("probed %d matrices in %.1f s", len(measured), time.perf_counter() - start)
    return with_sensitivities(spectra, measured)


def with_sensitivities(spectra: Sequence[MatrixSpectrum], measured: dict[tuple[int, str], float]) -> list[MatrixSpectrum]:
    """``spectra`` with the ``measured`` sensitivities set (others unchanged)."""
    return [replace(s, sensitivity=measured.get((s.layer, s.name), s.sensitivity)) for s in spectra]


def probe_ranks_for(policy: RankPolicy, spectra: Sequence[MatrixSpectrum], config) -> dict[tuple[int, str], int]:
    """Where to probe: the rank ``policy`` picks, or, for a matrix it keeps
    dense, the largest rank that still pays (its mildest truncation)."""
    plan = policy.choose(spectra, config)
    ranks = {}
    for s in spectra:
        rank = plan[s.layer].get(s.name)
        if rank is None:
            paying = [k for k in range(16, min(s.d_in, s.d_out) + 1, 16) if pays_off(s.d_in, s.d_out, k)]
            if not paying:
                continue
            rank = paying[-1]
        ranks[(s.layer, s.name)] = rank
    return ranks
