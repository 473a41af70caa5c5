"""The LiteASR factorization (PCA of each matrix's output) applied to a Whisper encoder.

For each compressible matrix ``y = x W + b`` with output mean ``ybar`` and
output covariance ``C = V diag(l) V^T`` (descending), rank ``k`` keeps ``V_k``:

    W1 = W V_k,  W2 = V_k^T,  b' = ybar + (b - ybar) V_k V_k^T

so that ``x W1 W2 + b' = ybar + (y - ybar) V_k V_k^T``, the PCA projection of
the output. Entry point: :func:`compress`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from liteasr_export.model.compression.report import CompressionReport
from liteasr_export.model.lowrank import (COMPRESSIBLE, SITE_OF, LowRankLinear, encoder_layers, get_linear, set_linear,
                      validate_low_rank_config)
from liteasr_export.model.compression.rank_policies import MatrixSpectrum, RankPolicy



class ActivationStats(Protocol):
    """What the compressor reads of calibration statistics (implemented by
    :class:`calibration.statistics.ActivationStats`): per encoder layer, the
    moments of each activation site in :data:`~liteasr_export.model.lowrank.SITES`."""

    layers: list[dict[str, Any]]
    n_windows: int
    n_utterances: int
    source: str

    def output_moments(self, layer: int, name: str, linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]: ...

    def input_site(self, name: str) -> bool: ...

    def check_matches(self, model: nn.Module) -> None: ...


@dataclass
class Decomposition:
    """Output mean and principal directions of one matrix (float64, CPU)."""

    mean: torch.Tensor  # (d_out,)
    eigenvalues: torch.Tensor  # (m,) descending, m = min(d_in, d_out)
    eigenvectors: torch.Tensor  # (d_out, m), columns match eigenvalues


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Make each column's largest-magnitude entry positive: the same statistics
    give the same factor bytes on any LAPACK."""
    index = vectors.abs().argmax(dim=0)
    signs = torch.sign(vectors[index, torch.arange(vectors.shape[1])])
    signs[signs == 0] = 1
    return vectors * signs


def _input_eigh(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sqrt(s)`` and ``Q`` of ``cov = Q diag(s) Q^T`` (negative round-off clipped)."""
    values, vectors = torch.linalg.eigh(cov)
    return values.clamp_min(0).sqrt(), vectors


def decompose(
    stats: ActivationStats,
    layer: int,
    name: str,
    linear: nn.Linear,
    input_root: tuple[torch.Tensor, torch.Tensor] | None = None,
    shrinkage: float = 0.0,
) -> Decomposition:
    """Principal directions of the output of encoder matrix ``name`` in ``layer``.

    Output sites: ``eigh`` of the output covariance. Input sites (``cov(y) =
    W^T cov(x) W``): with ``cov(x) = Q diag(s) Q^T``, the right singular vectors
    of ``B = diag(sqrt s) Q^T W`` are the eigenvectors of ``cov(y) = B^T B`` and
    its squared singular values the eigenvalues; this never forms ``W^T cov W``
    (better conditioned, and fc1's ``4d x 4d`` eigenproblem becomes a ``d x 4d`` SVD).

    ``shrinkage`` (0..1) blends the calibration covariance with the output
    covariance the matrix would have under white input, ``c W^T W``, scaled to
    the same total variance: ``(1 - a) C + a c W^T W``. Directions the weights
    can produce but the calibration speech never excited then keep some
    variance, so a narrow calibration set cannot collapse a rank.
    """
    d_in, d_out = linear.in_features, linear.out_features
    m = min(d_in, d_out)
    weight = linear.weight.detach().to("cpu", torch.float64).T  # (d_in, d_out)
    if stats.input_site(name):
        moments = stats.layers[layer][SITE_OF[name]]
        root, basis = input_root if input_root is not None else _input_eigh(moments.covariance.cpu())
        bias = linear.bias.detach().to("cpu", torch.float64) if linear.bias is not None else 0.0
        mean = moments.mean.cpu() @ weight + bias
        rotated = basis.T @ weight
        if shrinkage > 0:  # in the input's eigenbasis: s -> (1 - a) s + a c
            white = float(((root[:, None] * rotated) ** 2).sum()) / max(float((weight**2).sum()), 1e-300)
            root = ((1 - shrinkage) * root**2 + shrinkage * white).sqrt()
        _, singular, vh = torch.linalg.svd(root[:, None] * rotated, full_matrices=False)
        values, vectors = singular[:m] ** 2, vh[:m].T
    else:
        mean, cov = stats.output_moments(layer, name, linear)
        if shrinkage > 0:
            gram = weight.T @ weight
            cov = (1 - shrinkage) * cov + shrinkage * (torch.trace(cov) / torch.trace(gram).clamp_min(1e-300)) * gram
        values, vectors = torch.linalg.eigh(cov)
        values, vectors = values.flip(0)[:m].clamp_min(0), vectors.flip(1)[:, :m]
    return Decomposition(mean, values, _fix_signs(vectors))


def factorize(
    weight: torch.Tensor, bias: torch.Tensor | None, mean: torch.Tensor, basis: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(W1, W2, b')`` for ``W`` (d_in x d_out, row convention), bias ``b`` (None
    = 0), output mean ``ybar`` and kept eigenvectors ``V_k`` (d_out x k)."""
    weight, basis, mean = weight.to(torch.float64), basis.to(torch.float64), mean.to(torch.float64)
    b = bias.to(torch.float64) if bias is not None else torch.zeros_like(mean)
    w1 = weight @ basis
    w2 = basis.T.contiguous()
    new_bias = mean + ((b - mean) @ basis) @ basis.T
    return w1, w2, new_bias


def _standardized(values: torch.Tensor, vectors: torch.Tensor) -> np.ndarray:
    """Per component, ``lambda_i sum_j V_ji^2 / C_jj`` over channels with variance."""
    squares = vectors**2  # (d_out, m)
    channel_var = squares @ values  # diag(C)
    active = channel_var > channel_var.max() * 1e-12 if channel_var.numel() else channel_var > 0
    weights = (squares[active] / channel_var[active, None]).sum(dim=0) * values
    return weights.numpy()


def _iter_decompositions(
    model: nn.Module, stats: ActivationStats, wanted: Callable[[int, str], bool] = lambda layer, name: True,
    shrinkage: float = 0.0,
):
    """``(layer, name, linear, Decomposition)`` for the wanted matrices, sharing
    one ``eigh`` per input site and layer."""
    for index, layer in enumerate(encoder_layers(model)):
        roots: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for name in COMPRESSIBLE:
            if not wanted(index, name):
                continue
            linear = get_linear(layer, name)
            root = None
            if stats.input_site(name):
                site = SITE_OF[name]
                if site not in roots:
                    roots[site] = _input_eigh(stats.layers[index][site].covariance.cpu())
                root = roots[site]
            yield index, name, linear, decompose(stats, index, name, linear, root, shrinkage)


def compute_spectra(model: nn.Module, stats: ActivationStats, shrinkage: float = 0.0) -> list[MatrixSpectrum]:
    """The output spectrum of every compressible encoder matrix, for the policies."""
    return [
        MatrixSpectrum(
            index, name, linear.in_features, linear.out_features,
            dec.eigenvalues.numpy().copy(), _standardized(dec.eigenvalues, dec.eigenvectors),
        )
        for index, name, linear, dec in _iter_decompositions(model, stats, shrinkage=shrinkage)
    ]


def apply_ranks(
    model: nn.Module, stats: ActivationStats, ranks: Sequence[dict[str, int]], shrinkage: float = 0.0
) -> nn.Module:
    """Factorize ``model``'s encoder in place at the given ranks (a validated
    ``low_rank_config``) and record them in ``config.low_rank_config``."""
    ranks = validate_low_rank_config(ranks, model.config)
    for index, name, linear, dec in _iter_decompositions(model, stats, lambda i, n: n in ranks[i], shrinkage):
        rank = ranks[index][name]
        weight = linear.weight.detach().to("cpu", torch.float64).T
        bias = linear.bias.detach().to("cpu") if linear.bias is not None else None
        w1, w2, b = factorize(weight, bias, dec.mean, dec.eigenvectors[:, :rank])
        ref = linear.weight
        set_linear(
            encoder_layers(model)[index],
            name,
            LowRankLinear.from_factors(
                w1.to(ref.device, ref.dtype), w2.to(ref.device, ref.dtype), b.to(ref.device, ref.dtype)
            ),
        )
    model.config.low_rank_config = ranks
    return model


def compress(
    model: nn.Module,
    stats: ActivationStats,
    policy: RankPolicy,
    inplace: bool = False,
    name: str = "",
    spectra: Sequence[MatrixSpectrum] | None = None,
    shrinkage: float = 0.0,
) -> tuple[nn.Module, CompressionReport]:
    """Compress a dense Whisper encoder: spectra from ``stats``, ranks from
    ``policy``, LiteASR factors in place of the chosen matrices.

    Returns the compressed model (a copy unless ``inplace``) and its report.
    Raises :class:`CalibrationError` when ``stats`` belong to another model and
    :class:`RankError` for invalid ranks; the input model is untouched on error.
    ``spectra`` (from :func:`compute_spectra` on the same model and statistics)
    saves recomputing them when several policies are tried (they must have
    been computed with the same ``shrinkage``, see :func:`decompose`).
    """
    stats.check_matches(model)
    if spectra is None:
        spectra = compute_spectra(model, stats, shrinkage)
    ranks = validate_low_rank_config(policy.choose(spectra, model.config), model.config)
    kept = {(s.layer, s.name): s.kept(ranks[s.layer].get(s.name)) for s in spectra}
    target = model if inplace else copy.deepcopy(model)
    apply_ranks(target, stats, ranks, shrinkage)
    calibration: dict[str, Any] = {
        "source": stats.source, "utterances": stats.n_utterances, "windows": stats.n_windows,
    }
    report = CompressionReport.build(model.config, ranks, kept, policy.describe(), calibration, name)
    return target, report

