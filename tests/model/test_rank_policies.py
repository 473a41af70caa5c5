"""Rank policies on hand-made spectra."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liteasr_export.model.compression.report import encoder_cost, matrix_cost
from liteasr_export.core.errors import RankError
from liteasr_export.model.lowrank import COMPRESSIBLE, matrix_shape
from liteasr_export.model.compression.rank_policies import (
    PRESETS,
    BudgetPolicy,
    LiteASRPolicy,
    MatrixSpectrum,
    ProfilePolicy,
    make_policy,
    parse_theta,
    variance_rank,
)


@pytest.fixture(scope="module")
def config(tiny_whisper):
    """The config the spectra belong to: d_model 64, ffn 256, 2 layers."""
    return tiny_whisper().config


@pytest.fixture(scope="module")
def spectrum_of(config):
    def make(layer, name, values, standardized=None):
        d_in, d_out = matrix_shape(config, name)
        values = np.asarray(values, dtype=np.float64)
        return MatrixSpectrum(layer, name, d_in, d_out, values,
                              values.copy() if standardized is None else np.asarray(standardized, np.float64))

    return make


def geometric(n=64, ratio=0.8):
    return ratio ** np.arange(n, dtype=np.float64)


@pytest.fixture(scope="module")
def all_spectra_of(spectrum_of):
    def make(values_for=lambda layer, name: geometric()):
        return [spectrum_of(i, n, values_for(i, n)) for i in range(2) for n in COMPRESSIBLE]

    return make


def test_variance_rank_is_the_smallest_multiple_of_16_reaching_theta():
    values = np.zeros(64)
    values[:20] = 1.0  # 20 equal components: 16 keep 80 %, 32 keep all
    assert variance_rank(values, 0.8) == 16
    assert variance_rank(values, 0.81) == 32
    assert variance_rank(values, 1.0) == 32
    flat = np.ones(64)
    assert variance_rank(flat, 0.5) == 32
    assert variance_rank(flat, 0.74) == 48
    assert variance_rank(flat, 0.99) is None  # only the full rank reaches it
    assert variance_rank(values, 0.8, multiple=8) == 16 and variance_rank(values, 0.45, multiple=8) == 16
    assert variance_rank(values, 0.4, multiple=8) == 8


def test_liteasr_policy_uses_two_thresholds_and_break_even(spectrum_of, config):
    few = np.r_[np.ones(16), np.zeros(48)]  # 16 components hold everything
    spread = np.r_[np.ones(40), np.zeros(24)]  # 48 needed: > 0.5 * 64 for attention
    plan = LiteASRPolicy().choose(
        [spectrum_of(0, "q_proj", few), spectrum_of(0, "k_proj", spread), spectrum_of(0, "fc1", spread),
         spectrum_of(1, "fc2", few)], config)
    # k_proj: 48 > 32 keeps it dense; fc1: 48 <= 0.8 * 64 pays
    assert plan == [{"q_proj": 16, "fc1": 48}, {"fc2": 16}]
    mlp_tail = np.r_[np.full(16, 1.0), np.full(48, 0.0005)]  # 16 keep 99.8 %
    plan = LiteASRPolicy(0.99, 0.999).choose([spectrum_of(0, "v_proj", mlp_tail), spectrum_of(0, "fc2", mlp_tail)],
                                             config)
    assert plan[0] == {"v_proj": 16, "fc2": 32}


@pytest.mark.parametrize("text", ["0:0.9", "0.9:1.5", "-0.1", "abc", "0.9:0.9:0.9", "nan"])
def test_theta_outside_range_is_rejected(text):
    with pytest.raises(RankError):
        parse_theta(text)


def test_theta_parsing():
    assert parse_theta("0.99:0.999") == (0.99, 0.999)
    assert parse_theta("1") == (1.0, 1.0)


@pytest.mark.parametrize("target", [0.0, -0.5, 1.01, 2])
def test_budget_target_outside_range_is_rejected(target):
    with pytest.raises(RankError, match=r"outside \(0, 1\]"):
        BudgetPolicy(target)


def test_budget_below_the_reachable_minimum_names_the_minimum(all_spectra_of, config):
    with pytest.raises(RankError, match="smallest reachable"):
        BudgetPolicy(0.05).choose(all_spectra_of(), config)


@pytest.mark.parametrize(
    "metric, targets", [("params", (0.75, 0.85, 0.95, 1.0)), ("flops", (0.92, 0.95, 0.98, 1.0))]
)  # attention and convolutions dominate this tiny config's FLOPs
def test_budget_meets_its_target_and_error_falls_with_size(metric, targets, all_spectra_of, config):
    def error(policy, plan):
        total = 0.0
        for s in all_spectra_of():
            rank = plan[s.layer].get(s.name)
            total += 0.0 if rank is None else 1 - s.kept(rank)
        return total

    dense = encoder_cost(config, None, metric)
    errors = []
    for target in targets:
        policy = BudgetPolicy(target, metric=metric)
        plan = policy.choose(all_spectra_of(), config)
        assert encoder_cost(config, plan, metric) <= target * dense
        errors.append(error(policy, plan))
    assert errors == sorted(errors, reverse=True) and errors[-1] == 0.0 and errors[0] > 0


def test_budget_gives_rank_to_the_matrices_that_need_it(all_spectra_of, config):
    """Half the matrices are nearly rank 16, half spread evenly: under a tight
    budget the spread ones keep more rank, where one threshold would treat them alike."""
    easy = np.r_[np.ones(16), np.full(48, 1e-4)]
    hard = np.ones(64)
    spectra = all_spectra_of(lambda layer, name: easy if layer == 0 else hard)
    plan = BudgetPolicy(0.8).choose(spectra, config)
    for name in ("q_proj", "v_proj", "out_proj"):
        assert plan[0][name] == 16
        assert plan[1].get(name, 64) > 16


def test_standardized_weights_ignore_an_outlier_channel(spectrum_of, config):
    """Layer 0's outputs: one channel holds 99.9 % of the variance, the other
    63 share the rest. The variance weighting calls rank 16 enough there; the
    per-channel (standardized) weighting sees 63 channels mostly discarded and
    moves rank from the smooth layer 1 to layer 0."""
    outlier = np.r_[1000.0, np.full(63, 1.0 / 63)]
    per_channel = np.ones(64)  # each channel is one unit of standardized variance
    smooth = geometric(ratio=0.93)

    def make(layer, name):
        return spectrum_of(layer, name, outlier, per_channel) if layer == 0 else spectrum_of(layer, name, smooth)

    spectra = [make(i, n) for i in range(2) for n in COMPRESSIBLE]
    assert spectra[0].kept(16) > 0.999 and spectra[0].kept(16, "standardized") < 0.3
    by_variance = BudgetPolicy(0.8, weights="variance").choose(spectra, config)
    by_channel = BudgetPolicy(0.8, weights="standardized").choose(spectra, config)
    for name in ("q_proj", "v_proj", "out_proj"):
        assert by_variance[0][name] == 16
        assert name not in by_channel[0]  # kept dense

    def layer_params(plan, layer):
        return sum(matrix_cost(config, name, plan[layer].get(name)) for name in COMPRESSIBLE)

    assert layer_params(by_channel, 1) < layer_params(by_variance, 1)  # the smooth layer pays for it


def test_profile_policy_from_files(tmp_path, config):
    ranks = [{"q_proj": 16, "fc1": 32}, {}]
    plain = tmp_path / "ranks.json"
    plain.write_text(json.dumps(ranks))
    assert ProfilePolicy.from_file(plain).choose([], config) == ranks
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"model_type": "lite-whisper", "low_rank_config": ranks}))
    assert make_policy("profile", ranks=config_file).choose([], config) == ranks


@pytest.mark.parametrize(
    "content, message",
    [
        ([{"q_proj": 16}], "has 1 layers"),
        ([{"q_proj": 65}, {}], "outside 1..64"),
        ([{"fc1": 0}, {}], "outside"),
        ([{"q": 8}, {}], "unknown matrix"),
        ({"ranks": []}, "no low_rank_config"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_profiles_are_rejected(tmp_path, content, message, config):
    path = tmp_path / "ranks.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(RankError, match=message):
        ProfilePolicy.from_file(path).choose([], config)


def test_policies_are_deterministic(spectrum_of, config):
    rng = np.random.default_rng(0)
    spectra = [spectrum_of(i, n, np.sort(rng.exponential(size=64))[::-1]) for i in range(2) for n in COMPRESSIBLE]
    for policy in (LiteASRPolicy(0.9, 0.95), BudgetPolicy(0.8)):
        assert policy.choose(spectra, config) == policy.choose(list(spectra), config)


def test_presets_and_make_policy():
    assert set(PRESETS) == {"acc", "plain", "fast"}
    for name in PRESETS:
        assert make_policy(preset=name).describe()["policy"] == PRESETS[name]["policy"]
    assert make_policy("liteasr", theta="0.95:0.99") == LiteASRPolicy(0.95, 0.99)
    assert make_policy() == make_policy("budget") == BudgetPolicy(0.9)  # the default
    with pytest.raises(RankError, match="threshold of the liteasr policy"):
        make_policy("budget", theta="0.9:0.99")
    with pytest.raises(RankError, match="budget policy's size"):
        make_policy("liteasr", target_size=0.8)
    with pytest.raises(RankError, match="rank file"):
        make_policy("profile")
    with pytest.raises(RankError, match="unknown rank policy"):
        make_policy("magic")
    with pytest.raises(RankError, match="unknown preset"):
        make_policy(preset="tiny")


def test_the_default_size_keeps_more_of_tiny_width_encoders():
    from types import SimpleNamespace

    from liteasr_export.model.compression.rank_policies import default_target_size

    assert make_policy(config=SimpleNamespace(d_model=384)) == BudgetPolicy(0.975)  # tiny
    assert make_policy(config=SimpleNamespace(d_model=512)) == BudgetPolicy(0.9)  # base and wider
    assert make_policy(target_size=0.8, config=SimpleNamespace(d_model=384)) == BudgetPolicy(0.8)  # asked for
    assert default_target_size(None) == 0.9


def test_default_size_ladder_steps_halfway_to_dense() -> None:
    from types import SimpleNamespace

    from liteasr_export.model.compression.rank_policies import LADDER_TOP, default_size_ladder

    assert default_size_ladder(SimpleNamespace(d_model=384)) == [0.975, 0.9875]
    assert default_size_ladder(SimpleNamespace(d_model=512)) == [0.9, 0.95, 0.975, 0.9875]
    assert all(size <= LADDER_TOP for size in default_size_ladder(None))
