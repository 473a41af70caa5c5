"""Recovering what the factorization loses, on tiny random Whisper models:
error compensation, refinement by distillation, measured sensitivity,
covariance shrinkage, and the quality-targeted size search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liteasr_export.model.compression.compensation import compensate
from liteasr_export.model.compression.compressor import compress, compute_spectra
from liteasr_export.core.errors import RankError
from liteasr_export.model.lowrank import LowRankLinear, iter_encoder_linears
from liteasr_export.model.compression.rank_policies import BudgetPolicy
from liteasr_export.model.distillation.refine import refine
from liteasr_export.model.compression.sensitivity import measure_sensitivity, probe_ranks_for
from liteasr_export.model.compression.target_search import search_target_size


@pytest.fixture(scope="module")
def features_of(random_features):
    def make(n: int, offset: int = 0) -> np.ndarray:
        return np.concatenate([random_features(1, seed=200 + offset + i).numpy() for i in range(n)])

    return make


def _error(model, dense, features: np.ndarray) -> float:
    x = torch.from_numpy(features)
    with torch.no_grad():
        got = model.model.encoder(x).last_hidden_state
        want = dense.model.encoder(x).last_hidden_state
    return float(((got - want) ** 2).mean() / want.var())


@pytest.fixture(scope="module")
def setup(tiny_whisper, calibrate):
    torch.manual_seed(0)
    dense = tiny_whisper(seed=1)
    stats = calibrate(dense, 3)
    compressed, _ = compress(dense, stats, BudgetPolicy(0.8))
    return dense, stats, compressed


def test_compensation_reduces_the_output_error_and_keeps_the_ranks(setup, features_of) -> None:
    dense, stats, compressed = setup
    model, _ = compress(dense, stats, BudgetPolicy(0.8))
    train, held = features_of(3), features_of(2, offset=10)
    before = (_error(model, dense, train), _error(model, dense, held))
    ranks = {(i, n): m.rank for i, n, m in iter_encoder_linears(model) if isinstance(m, LowRankLinear)}
    info = compensate(model, dense, train, batch_size=2, progress=False)
    after = (_error(model, dense, train), _error(model, dense, held))
    assert info["matrices"] == len(ranks) > 0
    assert after[0] < 0.9 * before[0] and after[1] < 0.9 * before[1]
    assert {(i, n): m.rank for i, n, m in iter_encoder_linears(model) if isinstance(m, LowRankLinear)} == ranks


def test_compensation_at_full_rank_reproduces_the_dense_layer(setup, features_of) -> None:
    dense, stats, _ = setup
    d = dense.config.d_model
    full = [{"q_proj": d, "fc2": d}] + [{} for _ in range(dense.config.encoder_layers - 1)]
    from liteasr_export.model.compression.rank_policies import ProfilePolicy

    model, _ = compress(dense, stats, ProfilePolicy.from_config(full))
    compensate(model, dense, features_of(2), ridge=0.0, progress=False)
    assert _error(model, dense, features_of(1, offset=20)) < 1e-8


def test_refine_lowers_the_distillation_loss_and_touches_only_factors(setup, features_of) -> None:
    dense, stats, _ = setup
    model, _ = compress(dense, stats, BudgetPolicy(0.8))
    teacher = {k: v.clone() for k, v in dense.state_dict().items()}
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "weight1" not in k and "weight2" not in k
              and not any(k.startswith(p) for p in _low_rank_prefixes(model))}
    result = refine(model, dense, features_of(4), steps=15, batch_size=2, lr=1e-3, heldout=features_of(2, offset=10),
                    progress=False)
    assert result.steps == 15 and result.train_loss_after < 0.8 * result.train_loss_before
    assert result.heldout_loss_after < result.heldout_loss_before
    for key, value in model.state_dict().items():
        if key in frozen:
            assert torch.equal(value, frozen[key]), key
    assert all(torch.equal(v, teacher[k]) for k, v in dense.state_dict().items())  # the teacher is untouched
    assert refine(dense, dense, features_of(1), steps=5, progress=False).steps == 0  # nothing low-rank to fit


def _low_rank_prefixes(model) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] + "." for _, _, m in iter_encoder_linears(model) if isinstance(m, LowRankLinear)]


def test_sensitivity_is_measured_where_probed_and_steers_the_budget(setup, features_of) -> None:
    dense, stats, _ = setup
    spectra = compute_spectra(dense, stats)
    policy = BudgetPolicy(0.8)
    probes = probe_ranks_for(policy, spectra, dense.config)
    assert probes and all(r % 16 == 0 for r in probes.values())
    measured = measure_sensitivity(dense, stats, spectra, features_of(2), probes, progress=False)
    touched = [s for s in measured if (s.layer, s.name) in probes]
    assert all(s.sensitivity > 0 for s in touched) and len({round(s.sensitivity, 9) for s in touched}) > 1
    assert all(s.sensitivity == 1.0 for s in measured if (s.layer, s.name) not in probes)
    # a matrix made very sensitive is kept dense (or at a higher rank) by the budget
    key = max(probes, key=lambda k: probes[k])
    boosted = [s if (s.layer, s.name) != key else type(s)(**{**s.__dict__, "sensitivity": 1e6}) for s in measured]
    plain, steered = policy.choose(measured, dense.config), policy.choose(boosted, dense.config)
    assert steered[key[0]].get(key[1], 10**9) >= plain[key[0]].get(key[1], 10**9)
    assert steered != plain


def test_measured_sensitivities_are_cached_by_content(setup, tmp_path, monkeypatch, features_of) -> None:
    from pathlib import Path
    from types import SimpleNamespace

    import liteasr_export.model.compression.sensitivity as sensitivity
    from liteasr_export.app.export import compression_stage
    from liteasr_export.app.export.pipeline import ExportOptions

    dense, stats, _ = setup
    features = {"now": features_of(2)}
    monkeypatch.setattr(compression_stage, "calibration_features", lambda loaded, opts, count: features["now"])
    calls = []
    real = sensitivity.measure_sensitivity
    monkeypatch.setattr(sensitivity, "measure_sensitivity", lambda *a, **k: calls.append(1) or real(*a, **k))
    opts = ExportOptions(output=Path("unused"), cache_dir=tmp_path, probe_windows=2, progress=False)
    loaded, policy = SimpleNamespace(model=dense), BudgetPolicy(0.8)
    first = compression_stage.select_spectra(loaded, stats, policy, opts)
    again = compression_stage.select_spectra(loaded, stats, policy, opts)
    assert len(calls) == 1 and [s.sensitivity for s in again] == [s.sensitivity for s in first]
    assert any(s.sensitivity != 1.0 for s in first)
    features["now"] = features_of(2, offset=30)  # other probe windows: measured anew
    compression_stage.select_spectra(loaded, stats, policy, opts)
    assert len(calls) == 2


def test_shrinkage_keeps_directions_the_calibration_never_excited(setup) -> None:
    dense, stats, _ = setup
    plain = compute_spectra(dense, stats)
    shrunk = compute_spectra(dense, stats, shrinkage=0.5)
    for p, s in zip(plain, shrunk):
        assert s.eigenvalues.sum() == pytest.approx(p.eigenvalues.sum(), rel=1e-6)  # same total variance
    # the spectrum flattens: the share beyond rank 16 grows
    assert np.mean([s.tail(16, "variance") for s in shrunk]) > np.mean([p.tail(16, "variance") for p in plain])


def test_search_finds_the_smallest_passing_size() -> None:
    tried = []

    def evaluate(size: float):
        tried.append(size)
        increase = max(0.0, (0.8 - size) * 20)  # passes (<= 1 point) from 0.75 up
        return size, {"a": increase}, {}

    result = search_target_size(evaluate, 1.0, 10.0, lowest=0.5, steps=6)
    assert 0.75 <= result.chosen <= 0.76
    assert len(result.trials) == 7 and tried[0] == 0.5
    assert "(chosen)" in "\n".join(result.to_markdown())
    none = search_target_size(lambda s: (s, {"a": 5.0}, {}), 1.0, 10.0, steps=3)
    assert none.chosen is None and "dense encoder is kept" in "\n".join(none.to_markdown())
    unreachable = search_target_size(lambda s: (_ for _ in ()).throw(RankError("too small")) if s < 0.7
                                     else (s, {"a": 0.0}, {}), 1.0, 10.0, steps=4)
    assert unreachable.chosen is not None and unreachable.chosen >= 0.7
    with pytest.raises(RankError):
        search_target_size(evaluate, -1.0, 10.0)
