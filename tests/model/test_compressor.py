"""The LiteASR factorization, compress(), its report and determinism."""

from __future__ import annotations

import json

import pytest
import torch

from liteasr_export.model.compression.report import encoder_cost
from liteasr_export.model.compression.compressor import compress, compute_spectra, factorize
from liteasr_export.core.errors import CalibrationError, RankError
from liteasr_export.model.lite_whisper import save_lite_whisper
from liteasr_export.model.lowrank import COMPRESSIBLE, LowRankLinear, get_linear, iter_encoder_linears
from liteasr_export.model.compression.rank_policies import BudgetPolicy, LiteASRPolicy, ProfilePolicy

#: true rank of every encoder matrix of the exactly-low-rank model
TRUE_RANKS = {"q_proj": 16, "k_proj": 8, "v_proj": 24, "out_proj": 16, "fc1": 32, "fc2": 40}


@pytest.fixture()
def exactly_low_rank_model(tiny_whisper):
    """Every compressible matrix W = A B of a known rank: its outputs span
    exactly that many directions around their mean."""
    model = tiny_whisper(seed=3)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for _, name, linear in iter_encoder_linears(model):
            d_out, d_in = linear.weight.shape
            r = TRUE_RANKS[name]
            a = torch.randn(d_out, r, generator=generator) / r**0.5
            b = torch.randn(r, d_in, generator=generator) / d_in**0.5
            linear.weight.copy_(a @ b)
    return model


def test_factorization_reproduces_every_layer_at_the_true_rank(exactly_low_rank_model, random_features, calibrate):
    model = exactly_low_rank_model
    stats = calibrate(model)
    ranks = [dict(TRUE_RANKS) for _ in model.model.encoder.layers]
    compressed, report = compress(model, stats, ProfilePolicy.from_config(ranks))
    assert report.low_rank_config == ranks

    # feed every compressed matrix the inputs its dense twin sees on unseen audio
    inputs: dict[tuple[int, str], torch.Tensor] = {}
    handles = [
        get_linear(layer, name).register_forward_hook(
            lambda m, args, out, key=(i, name): inputs.__setitem__(key, (args[0], out)))
        for i, layer in enumerate(model.model.encoder.layers) for name in COMPRESSIBLE
    ]
    features = random_features(1, seed=999)
    with torch.inference_mode():
        dense_out = model.model.encoder(features).last_hidden_state
        for (i, name), (x, y) in inputs.items():
            module = get_linear(compressed.model.encoder.layers[i], name)
            assert isinstance(module, LowRankLinear) and module.rank == TRUE_RANKS[name]
            assert (module(x) - y).abs().max().item() < 1e-5, (i, name)
        compressed_out = compressed.model.encoder(features).last_hidden_state
    for h in handles:
        h.remove()
    assert (compressed_out - dense_out).abs().max().item() < 1e-5
    # the explained variance is complete at the true rank
    assert all(entry.variance_kept > 1 - 1e-9 for entry in report.matrices)


def test_factors_follow_the_design_formula():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, generator=generator, dtype=torch.float64)
    w, b = torch.randn(12, 10, generator=generator, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    y = x @ w + b
    ybar = y.mean(0)
    _, vectors = torch.linalg.eigh(torch.cov(y.T, correction=0))
    v = vectors.flip(1)[:, :4]
    w1, w2, b2 = factorize(w, b, ybar, v)
    assert w1.shape == (12, 4) and w2.shape == (4, 10)
    torch.testing.assert_close(x @ w1 @ w2 + b2, ybar + (y - ybar) @ v @ v.T)
    w1, w2, b2 = factorize(w, None, ybar, v)  # k_proj: no bias means b = 0
    torch.testing.assert_close(x @ w1 @ w2 + b2, ybar + (x @ w - ybar) @ v @ v.T)


def test_compress_report_counts_match_the_model_and_input_is_untouched(tmp_path, tiny_whisper, calibrate):
    model = tiny_whisper()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = calibrate(model, n=1)
    compressed, report = compress(model, stats, BudgetPolicy(0.8))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    actual_before = sum(p.numel() for p in model.model.encoder.parameters())
    actual_after = sum(p.numel() for p in compressed.model.encoder.parameters())
    assert (report.encoder_params_before, report.encoder_params_after) == (actual_before, actual_after)
    assert report.encoder_params_after <= 0.8 * report.encoder_params_before
    assert report.encoder_flops_after < report.encoder_flops_before
    assert compressed.config.low_rank_config == report.low_rank_config
    assert len(report.matrices) == 2 * 6

    json_path, md_path = report.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["encoder_params_after"] == actual_after and data["policy"]["policy"] == "budget"
    markdown = md_path.read_text()
    assert "| 0 |" in markdown and "| 1 |" in markdown and "encoder parameters" in markdown
    for entry in report.matrices:
        if entry.rank is not None:
            assert f"{entry.rank} (" in markdown


def test_same_inputs_give_same_ranks_and_bytes(tmp_path, tiny_whisper, calibrate):
    outputs = []
    for run in range(2):
        model = tiny_whisper()
        stats = calibrate(model, n=1)
        compressed, report = compress(model, stats, LiteASRPolicy(0.9, 0.95))
        folder = save_lite_whisper(compressed, tmp_path / f"run{run}")
        outputs.append((report.low_rank_config, (folder / "model.safetensors").read_bytes(),
                        (folder / "config.json").read_bytes(), json.dumps(report.to_dict())))
    assert outputs[0] == outputs[1]
    assert any(outputs[0][0])  # something was actually factorized


def test_errors_leave_nothing_behind(tmp_path, tiny_whisper, calibrate):
    model = tiny_whisper()
    stats = calibrate(model, n=1)
    with pytest.raises(CalibrationError):
        compress(tiny_whisper(seed=5), stats, LiteASRPolicy())
    with pytest.raises(RankError, match="layers"):
        compress(model, stats, ProfilePolicy.from_config([{"q_proj": 16}]))
    with pytest.raises(RankError, match="outside"):
        compress(model, stats, ProfilePolicy.from_config([{"q_proj": 80}, {}]))
    assert not any(isinstance(m, LowRankLinear) for _, _, m in iter_encoder_linears(model))


def test_spectra_cover_every_matrix_in_descending_order(tiny_whisper, calibrate):
    model = tiny_whisper()
    spectra = compute_spectra(model, calibrate(model, n=1))
    assert [(s.layer, s.name) for s in spectra] == [(i, n) for i in range(2) for n in COMPRESSIBLE]
    for s in spectra:
        assert len(s.eigenvalues) == min(s.d_in, s.d_out)
        assert (s.eigenvalues[:-1] >= s.eigenvalues[1:] - 1e-9).all() and (s.eigenvalues >= 0).all()
        assert s.standardized.sum() == pytest.approx(s.d_out, rel=1e-6)
    assert encoder_cost(model.config, None) == sum(p.numel() for p in model.model.encoder.parameters())
