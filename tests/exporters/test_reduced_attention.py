"""Attention in the reduced dimension (multi-query over shared keys): the folded
multi-query form equals the model's own attention, and the per-layer choice
follows the multiply-add count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exporters.reduced_attention import (
    Factors,
    ReducedAttention,
    apply_reduced_attention,
    fold_attention,
    plan_attention,
)
from liteasr_export.model.standin import apply_low_rank

# init_std 0.2: peaked attention, so a wrong fold cannot hide behind uniform softmax rows
STD = 0.2


@pytest.fixture(scope="module")
def compressed(random_whisper):
    """``compressed(ranks, seed=0)``: a random tiny Whisper with non-zero biases, its encoder
    factorized by truncated SVD to ``ranks`` in every layer."""

    def make(ranks: dict[str, int], seed: int = 0):
        model = random_whisper(seed, init_std=STD)
        with torch.no_grad():  # non-zero biases everywhere, including the low-rank key's PCA-style bias
            for layer in model.model.encoder.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj, layer.self_attn.out_proj):
                    proj.bias.normal_(0, 0.5)
        return apply_low_rank(model, [dict(ranks) for _ in model.model.encoder.layers], method="svd")

    return make


def _add_key_bias(model) -> None:
    with torch.no_grad():
        for layer in model.model.encoder.layers:
            layer.self_attn.k_proj.bias.normal_(0, 0.5)


@pytest.mark.parametrize(
    "ranks",
    [
        {"q_proj": 8, "k_proj": 8, "v_proj": 12, "out_proj": 16},  # everything low-rank
        {"k_proj": 8, "v_proj": 12},  # dense query and out_proj
        {"q_proj": 32, "k_proj": 4, "v_proj": 4, "out_proj": 8},  # query factors multiply out
    ],
)
def test_reduced_attention_equals_model_attention(ranks, compressed):
    model = compressed(ranks)
    _add_key_bias(model)  # cancels in the softmax: the fold drops it
    attn = model.model.encoder.layers[0].self_attn
    x = torch.randn(2, 50, 64) * 2
    folded = fold_attention(attn)
    assert folded is not None and folded.key_rank == ranks["k_proj"] and folded.value_rank == ranks["v_proj"]
    with torch.no_grad():
        expected, _ = attn(x)
        got, _ = ReducedAttention(folded)(x)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=2e-5), (got - expected).abs().max()


def test_fold_is_none_without_low_rank_key_and_value(compressed):
    model = compressed({"q_proj": 8, "k_proj": 8})  # v_proj dense: no shared narrow value head
    attn = model.model.encoder.layers[0].self_attn
    assert fold_attention(attn) is None
    plan, folded = plan_attention(attn)
    assert plan.kind == "standard" and plan.macs_reduced is None and folded is None


def test_plan_counts_multiply_adds(compressed):
    model = compressed({"q_proj": 8, "k_proj": 8, "v_proj": 12, "out_proj": 16})
    attn = model.model.encoder.layers[0].self_attn
    n, d, heads = 1500, 64, 4
    plan, folded = plan_attention(attn, n_frames=n)
    projections = (d * 8 + 8 * d) + (d * 8 + 8 * d) + (d * 12 + 12 * d) + (d * 16 + 16 * d)
    assert plan.macs_standard == n * projections + 2 * n * n * d
    # reduced: query d->8->4*8 (cheaper than folding 64x32), key 64x8, value 64x12, out 4*12->16->64
    reduced = n * ((d * 8 + 8 * heads * 8) + d * 8 + d * 12 + (heads * 12 * 16 + 16 * d)) + n * n * heads * (8 + 12)
    assert plan.macs_reduced == reduced
    assert plan.kind == "reduced" and folded is not None and 0 < plan.saving < 1


def test_plan_keeps_standard_when_ranks_exceed_head_width(compressed):
    # head width is 16: every head attending over a shared key/value of width 24 costs more
    model = compressed({"k_proj": 24, "v_proj": 24})
    plan, folded = plan_attention(model.model.encoder.layers[0].self_attn)
    assert plan.kind == "standard" and folded is None
    assert plan.macs_reduced >= plan.macs_standard


def test_apply_reduced_attention_keeps_encoder_output(compressed):
    model = compressed({"q_proj": 8, "k_proj": 8, "v_proj": 8, "out_proj": 16, "fc1": 32})
    features = torch.randn(1, 80, 3000)
    with torch.no_grad():
        expected = model.model.encoder(features).last_hidden_state
        plans = apply_reduced_attention(model)
        got = model.model.encoder(features).last_hidden_state
    assert [p.kind for p in plans] == ["reduced", "reduced"]
    assert all(isinstance(layer.self_attn, ReducedAttention) for layer in model.model.encoder.layers)
    assert torch.allclose(got, expected, atol=1e-4), (got - expected).abs().max()


def test_factors_multiply_out_only_when_cheaper():
    rng = np.random.default_rng(0)
    thin = Factors(rng.standard_normal((64, 4)), rng.standard_normal((4, 64)), None)
    assert thin.cheapest() is thin  # 2*64*4 < 64*64
    wide = Factors(rng.standard_normal((8, 32)), rng.standard_normal((32, 16)), rng.standard_normal(16))
    merged = wide.cheapest()
    assert merged.w2 is None and merged.w1.shape == (8, 16)
    x = rng.standard_normal((3, 8))
    assert np.allclose(merged.apply(x), wide.apply(x))
