"""Error compensation: refit every factorized matrix, layer by layer, to
reproduce the dense layer's output from the inputs the compressed layers
below it actually produce.

The plain factorization fits each matrix to the dense model's own inputs.
Once the layers below are compressed, the inputs drift, and each layer adds
its own error on top. Here the calibration windows run through both models
side by side; at each factorized matrix, in data-flow order (q/k/v, out_proj,
fc1, fc2; layer after layer), the streamed float64 moments of the compressed
path's input ``x_c`` and its cross-moments with the dense path's input
``x_d`` give the reduced-rank regression of the dense output ``x_d W + b`` on
``x_c``:

    A = (S_cc + r I)^-1 S_cd W            (least squares, ridge r)
    V_k = top-k eigenvectors of A^T S_cc A (the fitted output's covariance)
    W1 = A V_k,  W2 = V_k^T,  b' = mean(x_d W + b) - mean(x_c) A V_k V_k^T

which is the best rank-k map from what the layer receives to what the dense
layer would have produced. Ranks stay as chosen.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from liteasr_export.model.lowrank import LowRankLinear, encoder_layers, get_linear

log = logging.getLogger(__name__)

#: ridge, relative to the mean input variance
DEFAULT_RIDGE = 1e-4
#: matrices that read the same input, fitted together in data-flow order
GROUPS: tuple[tuple[str, ...], ...] = (("q_proj", "k_proj", "v_proj"), ("out_proj",), ("fc1",), ("fc2",))


class _Captured(Exception):
    """Raised by a pre-hook to stop a forward pass once its input is captured."""


@dataclass
class _CrossMoments:
    count: int
    sum_c: torch.Tensor
    sum_d: torch.Tensor
    cc: torch.Tensor
    cd: torch.Tensor

    @classmethod
    def zeros(cls, dim: int) -> _CrossMoments:
        z = lambda *s: torch.zeros(*s, dtype=torch.float64)  # noqa: E731
        return cls(0, z(dim), z(dim), z(dim, dim), z(dim, dim))

    def update(self, xc: torch.Tensor, xd: torch.Tensor) -> None:
        xc = xc.reshape(-1, xc.shape[-1]).to(torch.float64)
        xd = xd.reshape(-1, xd.shape[-1]).to(torch.float64)
        self.count += xc.shape[0]
        self.sum_c += xc.sum(0)
        self.sum_d += xd.sum(0)
        self.cc.addmm_(xc.T, xc)
        self.cd.addmm_(xc.T, xd)


def _site_input(layer: nn.Module, name: str, hidden: torch.Tensor) -> torch.Tensor:
    """The input of matrix ``name`` when ``layer`` runs on ``hidden`` (the
    forward stops there)."""
    captured: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple) -> None:
        captured.append(args[0])
        raise _Captured

    handle = get_linear(layer, name).register_forward_pre_hook(hook)
    try:
        layer(hidden, None)
    except _Captured:
        pass
    finally:
        handle.remove()
    return captured[0]


def refit(module: LowRankLinear, dense: nn.Linear, moments: _CrossMoments, ridge: float = DEFAULT_RIDGE) -> None:
    """Set ``module``'s factors to the reduced-rank regression described above."""
    n = moments.count
    mean_c, mean_d = moments.sum_c / n, moments.sum_d / n
    s_cc = moments.cc / n - torch.outer(mean_c, mean_c)
    s_cd = moments.cd / n - torch.outer(mean_c, mean_d)
    s_cc = (s_cc + s_cc.T) / 2
    weight = dense.weight.detach().to("cpu", torch.float64).T  # (d_in, d_out)
    bias = dense.bias.detach().to("cpu", torch.float64) if dense.bias is not None else torch.zeros(weight.shape[1],
                                                                                                    dtype=torch.float64)
    lam = ridge * float(torch.trace(s_cc)) / s_cc.shape[0]
    regression = torch.linalg.solve(s_cc + lam * torch.eye(s_cc.shape[0], dtype=torch.float64), s_cd @ weight)
    fitted_cov = regression.T @ s_cc @ regression
    values, vectors = torch.linalg.eigh((fitted_cov + fitted_cov.T) / 2)
    basis = vectors.flip(1)[:, : module.rank]
    w1 = regression @ basis
    target_mean = mean_d @ weight + bias
    new_bias = target_mean - (mean_c @ w1) @ basis.T
    ref = module.weight1
    with torch.no_grad():
        module.weight1.copy_(w1.to(ref.dtype))
        module.weight2.copy_(basis.T.to(ref.dtype))
        module.bias.copy_(new_bias.to(ref.dtype))


@torch.inference_mode()
def compensate(
    model: nn.Module,
    dense: nn.Module,
    features: np.ndarray,
    batch_size: int = 4,
    ridge: float = DEFAULT_RIDGE,
    progress: bool = True,
) -> dict:
    """Refit ``model``'s factorized matrices in place (see the module doc) on
    log-mel ``features`` (N, n_mels, 3000), with ``dense`` as the target.
    Returns what was done: matrices refitted, windows, seconds."""
    start = time.perf_counter()
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    dense_encoder = getattr(dense, "model", dense).encoder
    embed = [dense_encoder(x[i : i + batch_size], output_hidden_states=True).hidden_states[0]
             for i in range(0, len(x), batch_size)]
    hidden_d, hidden_c = embed, [h.clone() for h in embed]
    refitted = 0
    pairs = list(zip(encoder_layers(model), encoder_layers(dense)))
    for layer_c, layer_d in tqdm(pairs, desc="compensating", unit="layer", disable=not progress):
        for group in GROUPS:
            names = [n for n in group if isinstance(get_linear(layer_c, n), LowRankLinear)]
            if not names:
                continue
            dim = get_linear(layer_d, names[0]).in_features
            moments = _CrossMoments.zeros(dim)
            for hd, hc in zip(hidden_d, hidden_c):
                moments.update(_site_input(layer_c, names[0], hc), _site_input(layer_d, names[0], hd))
            for name in names:
                refit(get_linear(layer_c, name), get_linear(layer_d, name), moments, ridge)
                refitted += 1
        hidden_d = [layer_d(h, None) for h in hidden_d]
        hidden_c = [layer_c(h, None) for h in hidden_c]
    seconds = time.perf_counter() - start
    log.info("compensated %d matrices on %d windows in %.1f s", refitted, len(x), seconds)
    return {"matrices": refitted, "windows": int(len(x)), "ridge": ridge, "seconds": round(seconds, 2),
            "order": [list(g) for g in GROUPS]}
