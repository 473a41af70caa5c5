"""Encoder self-attention in the reduced dimension (multi-query attention over
the shared low-rank keys and values).

When ``k_proj`` and ``v_proj`` are low-rank (``K = K1 W2_k + b_k``,
``V = V1 W2_v + b_v``), every head can attend over the SHARED narrow ``K1``
and ``V1`` instead of its own 64-wide keys and values:

* scores ``S_h = (X Wq_h + bq_h) s B_h^T K1^T`` (the key bias cancels in the
  softmax), so the query projection becomes ``X -> (N, H r_k)`` with the scale
  and ``B_h^T`` folded in;
* ``O_h = softmax(S_h) V1 C_h + b_v,h`` (softmax rows sum to one), so the
  value up-projection ``C_h`` and the value bias fold into ``out_proj``.

That is multi-query attention: ``H`` query heads of width ``r_k``, one key
head of width ``r_k``, one value head of width ``r_v``. It pays when it costs
fewer multiply-adds than the standard form (:func:`plan_attention`).

This module holds the math once, as row-vector factors (:class:`Factors`),
used by the ONNX encoder graph (``exporters/encoder.py``) and by the PyTorch
module :class:`ReducedAttention` (drop-in for a Whisper encoder layer's
``self_attn``, e.g. for GPU benchmarks with ``scaled_dot_product_attention``).
Weights are folded in float64 and stored in float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Whisper encoder length after the conv stem (30 s window)
N_FRAMES = 1500


@dataclass
class Factors:
    """``y = x @ w1 (@ w2) + b``, row-vector convention, float64."""

    w1: np.ndarray
    w2: np.ndarray | None = None
    b: np.ndarray | None = None

    @property
    def in_features(self) -> int:
        return self.w1.shape[0]

    @property
    def out_features(self) -> int:
        return (self.w2 if self.w2 is not None else self.w1).shape[1]

    @property
    def is_low_rank(self) -> bool:
        return self.w2 is not None

    @property
    def macs_per_row(self) -> int:
        """Multiply-adds for one input row."""
        macs = self.w1.shape[0] * self.w1.shape[1]
        return macs + (self.w2.shape[0] * self.w2.shape[1] if self.w2 is not None else 0)

    def dense(self) -> np.ndarray:
        """The full ``(in, out)`` matrix."""
        return self.w1 @ self.w2 if self.w2 is not None else self.w1

    def scaled(self, scale: float) -> "Factors":
        w2 = self.w2 * scale if self.w2 is not None else None
        w1 = self.w1 if self.w2 is not None else self.w1 * scale
        return Factors(w1, w2, None if self.b is None else self.b * scale)

    def cheapest(self) -> "Factors":
        """Multiply the two factors out when one matmul costs less than two."""
        if self.w2 is not None and self.in_features * self.out_features <= self.macs_per_row:
            return Factors(self.dense(), None, self.b)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x @ self.w1
        if self.w2 is not None:
            y = y @ self.w2
        return y + self.b if self.b is not None else y


def _numpy(t: torch.Tensor | None) -> np.ndarray | None:
    return None if t is None else t.detach().to(device="cpu", dtype=torch.float64).numpy()


def linear_factors(module: nn.Module) -> Factors:
    """Row-vector factors of an ``nn.Linear`` or a ``LowRankLinear`` (duck-typed on
    ``weight1``/``weight2``, the low-rank module contract)."""
    bias = _numpy(getattr(module, "bias", None))
    if hasattr(module, "weight1"):
        return Factors(_numpy(module.weight1), _numpy(module.weight2), bias)
    return Factors(_numpy(module.weight).T.copy(), None, bias)


@dataclass
class FoldedAttention:
    """One layer's attention in the reduced dimension.

    ``query``: x -> (N, H*r_k) (scale folded in), ``key``: x -> (N, r_k),
    ``value``: x -> (N, r_v) (no biases: they cancel or moved to ``out``),
    ``out``: (N, H*r_v) -> (N, d) with the value up-projection and biases folded in.
    """

    num_heads: int
    key_rank: int
    value_rank: int
    query: Factors
    key: Factors
    value: Factors
    out: Factors


@dataclass
class AttentionPlan:
    """Per-layer choice between standard and reduced attention, by multiply-adds
    for one window of ``n_frames`` frames."""

    layer: int
    kind: Literal["standard", "reduced"]
    macs_standard: int
    macs_reduced: int | None  # None: k_proj or v_proj is dense, reduced form impossible
    key_rank: int | None = None
    value_rank: int | None = None

    @property
    def saving(self) -> float:
        """Fraction of the standard form's attention multiply-adds saved."""
        if self.kind != "reduced" or self.macs_reduced is None:
            return 0.0
        return 1.0 - self.macs_reduced / self.macs_standard


def fold_attention(attn: nn.Module, num_heads: int | None = None) -> FoldedAttention | None:
    """Fold a Whisper self-attention (``q_proj, k_proj, v_proj, out_proj``; any of
    them ``nn.Linear`` or ``LowRankLinear``) into the reduced form; ``None`` when
    ``k_proj`` or ``v_proj`` is dense (there is no shared narrow key or value)."""
    q, k, v, o = (linear_factors(getattr(attn, n)) for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
    if not (k.is_low_rank and v.is_low_rank):
        return None
    heads = num_heads or attn.num_heads
    d = q.out_features
    head_dim = d // heads
    scale = head_dim**-0.5
    r_k, r_v = k.w1.shape[1], v.w1.shape[1]
    b_q = q.b if q.b is not None else np.zeros(d)
    b_v = v.b if v.b is not None else np.zeros(d)

    # Query side: per head, M_h = s A_h B_h^T (A_h: the head's columns of q's
    # last factor) and u_h = s b_q,h B_h^T, stacked along the output axis.
    q_last = q.w2 if q.is_low_rank else q.w1
    m = np.empty((q_last.shape[0], heads * r_k))
    u = np.empty(heads * r_k)
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        b_h = k.w2[:, cols]  # (r_k, d_h)
        m[:, h * r_k : (h + 1) * r_k] = scale * q_last[:, cols] @ b_h.T
        u[h * r_k : (h + 1) * r_k] = scale * b_q[cols] @ b_h.T
    query = Factors(q.w1, m, u) if q.is_low_rank else Factors(m, None, u)

    # Output side: stack_h C_h W_o,h, where W_o,h is the head's rows of out's
    # first factor; the value bias passes through unchanged (softmax rows sum to 1).
    o_first = o.w1
    stacked = np.empty((heads * r_v, o_first.shape[1]))
    for h in range(heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        stacked[h * r_v : (h + 1) * r_v] = v.w2[:, rows] @ o_first[rows]
    out_bias = b_v @ o.dense() + (o.b if o.b is not None else 0.0)
    out = Factors(stacked, o.w2, out_bias)

    return FoldedAttention(
        num_heads=heads,
        key_rank=r_k,
        value_rank=r_v,
        query=query.cheapest(),
        key=Factors(k.w1),
        value=Factors(v.w1),
        out=out.cheapest(),
    )


def _standard_macs(attn: nn.Module, heads: int, n_frames: int) -> int:
    projections = sum(linear_factors(getattr(attn, n)).macs_per_row for n in ("q_proj", "k_proj", "v_proj", "out_proj"))
    d = linear_factors(attn.q_proj).out_features
    return n_frames * projections + 2 * n_frames * n_frames * d  # scores + P V: H * N^2 * d_h each


def _reduced_macs(folded: FoldedAttention, n_frames: int) -> int:
    projections = sum(f.macs_per_row for f in (folded.query, folded.key, folded.value, folded.out))
    attention = n_frames * n_frames * folded.num_heads * (folded.key_rank + folded.value_rank)
    return n_frames * projections + attention


def plan_attention(attn: nn.Module, layer: int = 0, n_frames: int = N_FRAMES) -> tuple[AttentionPlan, FoldedAttention | None]:
    """Choose the cheaper form for one encoder self-attention; returns the plan
    and, when reduced is chosen, the folded weights."""
    heads = attn.num_heads
    standard = _standard_macs(attn, heads, n_frames)
    folded = fold_attention(attn, heads)
    if folded is None:
        return AttentionPlan(layer, "standard", standard, None), None
    reduced = _reduced_macs(folded, n_frames)
    kind = "reduced" if reduced < standard else "standard"
    plan = AttentionPlan(layer, kind, standard, reduced, folded.key_rank, folded.value_rank)
    return plan, (folded if kind == "reduced" else None)


def plan_encoder(model: nn.Module, n_frames: int | None = None) -> list[tuple[AttentionPlan, FoldedAttention | None]]:
    """:func:`plan_attention` for every encoder layer of a Whisper model."""
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model
    n = n_frames or encoder.config.max_source_positions
    return [plan_attention(layer.self_attn, i, n) for i, layer in enumerate(encoder.layers)]


class _FactoredLinear(nn.Module):
    """``x @ w1 (@ w2) + b`` from :class:`Factors` (float32 parameters)."""

    def __init__(self, factors: Factors) -> None:
        super().__init__()

        def param(a: np.ndarray | None) -> nn.Parameter | None:
            return None if a is None else nn.Parameter(torch.from_numpy(a.astype(np.float32)), requires_grad=False)

        self.w1 = param(factors.w1)
        self.w2 = param(factors.w2)
        self.b = param(factors.b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.w1
        if self.w2 is not None:
            y = y @ self.w2
        return y + self.b if self.b is not None else y


class ReducedAttention(nn.Module):
    """Drop-in replacement for a Whisper encoder layer's ``self_attn`` computing
    the folded multi-query attention with ``scaled_dot_product_attention``.

    The heads are moved into the query sequence (``(B, 1, H*N, r_k)`` against
    one ``(B, 1, N, r_k)`` key head): plain single-head attention that every
    SDPA backend accepts, no grouped-query support needed.
    """

    def __init__(self, folded: FoldedAttention) -> None:
        super().__init__()
        self.num_heads = folded.num_heads
        self.key_rank = folded.key_rank
        self.value_rank = folded.value_rank
        self.query = _FactoredLinear(folded.query)
        self.key = _FactoredLinear(folded.key)
        self.value = _FactoredLinear(folded.value)
        self.out = _FactoredLinear(folded.out)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs) -> tuple[torch.Tensor, None]:
        if attention_mask is not None:
            raise ValueError("ReducedAttention is for the Whisper encoder, which uses no attention mask")
        batch, frames, _ = hidden_states.shape
        heads = self.num_heads
        q = self.query(hidden_states).view(batch, frames, heads, self.key_rank).transpose(1, 2)
        q = q.reshape(batch, 1, heads * frames, self.key_rank)
        k = self.key(hidden_states).unsqueeze(1)
        v = self.value(hidden_states).unsqueeze(1)
        o = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # (B, 1, H*N, r_v)
        o = o.view(batch, heads, frames, self.value_rank).transpose(1, 2).reshape(batch, frames, heads * self.value_rank)
        return self.out(o), None


def apply_reduced_attention(model: nn.Module, n_frames: int | None = None) -> list[AttentionPlan]:
    """Replace, in place, every encoder self-attention where the reduced form
    saves multiply-adds by :class:`ReducedAttention`; returns every layer's plan."""
    encoder = model.get_encoder() if hasattr(model, "get_encoder") else model
    ref = next(encoder.parameters())
    plans = []
    for (plan, folded), layer in zip(plan_encoder(model, n_frames), encoder.layers):
        if folded is not None:
            layer.self_attn = ReducedAttention(folded).to(device=ref.device, dtype=ref.dtype)
        plans.append(plan)
    return plans
