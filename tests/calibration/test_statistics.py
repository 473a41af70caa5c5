"""Streaming activation statistics: exact moments, persistence, model checks, datasets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from calibration.statistics import (
    ActivationStats,
    Moments,
    StatisticsCollector,
    accumulate,
    collect_statistics,
)
from liteasr_export.core.errors import CalibrationError, DatasetError
from liteasr_export.model.lowrank import COMPRESSIBLE, get_linear, install_low_rank_modules


@pytest.fixture(scope="module")
def batches_of(random_features):
    def make(n: int, batch: int):
        features = torch.cat([random_features(1, seed=i) for i in range(n)]).numpy()
        return [features[i : i + batch] for i in range(0, n, batch)]

    return make


@pytest.fixture(scope="module")
def stats_of(batches_of):
    def make(model, n=3, batch=2) -> ActivationStats:
        from calibration.statistics import model_info

        layers, windows = accumulate(model, batches_of(n, batch))
        return ActivationStats(layers, model_info(model), n_windows=windows, n_utterances=n, source="random")

    return make


def test_moments_match_numpy():
    rows = np.random.default_rng(0).normal(size=(500, 6)) * [1, 2, 3, 4, 5, 6] + 3.0
    moments = Moments.zeros(6)
    for chunk in np.array_split(rows, 7):
        moments.update(torch.from_numpy(chunk).float())
    assert moments.count == 500
    np.testing.assert_allclose(moments.mean.numpy(), rows.astype(np.float32).mean(0), rtol=1e-6)
    np.testing.assert_allclose(moments.covariance.numpy(), np.cov(rows.astype(np.float32).T, bias=True), rtol=1e-5, atol=1e-6)


def test_output_moments_equal_those_of_the_captured_outputs(stats_of, tiny_whisper):
    """Input-site statistics mapped through W give each matrix's true output moments."""
    model = tiny_whisper()
    captured: dict[tuple[int, str], list[torch.Tensor]] = {}
    handles = []
    for index, layer in enumerate(model.model.encoder.layers):
        for name in COMPRESSIBLE:
            def hook(module, inputs, output, key=(index, name)):
                captured.setdefault(key, []).append(output.detach().reshape(-1, output.shape[-1]).double())
            handles.append(get_linear(layer, name).register_forward_hook(hook))
    stats = stats_of(model, n=2, batch=1)
    for h in handles:
        h.remove()
    assert stats.n_windows == 2
    for (index, name), chunks in captured.items():
        y = torch.cat(chunks)
        mean, cov = stats.output_moments(index, name, get_linear(model.model.encoder.layers[index], name))
        assert y.shape[0] == 2 * 1500
        # the captured outputs are float32 products; the mapping is float64
        scale = y.abs().max().item()
        torch.testing.assert_close(mean, y.mean(0), rtol=0, atol=1e-6 * scale)
        reference = torch.cov(y.T, correction=0)
        torch.testing.assert_close(cov, reference, rtol=0, atol=1e-6 * reference.abs().max().item())


def test_batching_does_not_change_statistics_and_hooks_are_removed(stats_of, tiny_whisper):
    model = tiny_whisper()
    a, b = stats_of(model, n=3, batch=1), stats_of(model, n=3, batch=3)
    for la, lb in zip(a.layers, b.layers):
        for site in la:
            assert la[site].count == lb[site].count == 3 * 1500
            torch.testing.assert_close(la[site].outer, lb[site].outer, rtol=1e-10, atol=1e-8)
    assert all(not get_linear(layer, n)._forward_hooks for layer in model.model.encoder.layers for n in COMPRESSIBLE)


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_save_load_round_trip(tmp_path, suffix, stats_of, tiny_whisper):
    model = tiny_whisper()
    stats = stats_of(model, n=1, batch=1)
    path = stats.save(tmp_path / f"stats{suffix}")
    loaded = ActivationStats.load(path)
    assert (loaded.info, loaded.n_windows, loaded.n_utterances, loaded.source) == (
        stats.info, stats.n_windows, stats.n_utterances, stats.source)
    for la, lb in zip(stats.layers, loaded.layers):
        for site in la:
            assert la[site].count == lb[site].count
            assert torch.equal(la[site].sum, lb[site].sum) and torch.equal(la[site].outer, lb[site].outer)
    loaded.check_matches(model)


def test_load_rejects_foreign_files(tmp_path, stats_of, tiny_whisper):
    with pytest.raises(CalibrationError, match="not found"):
        ActivationStats.load(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(CalibrationError, match="no liteasr-export statistics"):
        ActivationStats.load(bad)
    with pytest.raises(CalibrationError, match="unsupported"):
        stats_of(tiny_whisper(), n=1).save(tmp_path / "stats.pt")
    assert not (tmp_path / "stats.pt").exists()


def test_statistics_from_another_model_are_rejected(stats_of, tiny_whisper):
    stats = stats_of(tiny_whisper(seed=0), n=1)
    with pytest.raises(CalibrationError, match="encoder_layers is 2 there and 3"):
        stats.check_matches(tiny_whisper(seed=0, layers=3))
    with pytest.raises(CalibrationError, match="same shape"):
        stats.check_matches(tiny_whisper(seed=1))


def test_calibration_refuses_a_compressed_encoder(tiny_whisper):
    model = tiny_whisper()
    install_low_rank_modules(model, [{"fc1": 16}, {}])
    with pytest.raises(CalibrationError, match="dense"):
        StatisticsCollector(model)


def _write_audio(path, seconds, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    return path


def test_collect_statistics_streams_files_and_skips_broken_ones(tmp_path, tiny_whisper):
    model = tiny_whisper()
    files = [_write_audio(tmp_path / f"{i}.wav", 2 + i, seed=i) for i in range(3)]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    long = _write_audio(tmp_path / "long.wav", 45, seed=9)
    stats = collect_statistics(model, [files[0], broken, files[1], files[2]], batch_size=2, progress=False)
    assert (stats.n_utterances, stats.n_windows, stats.extra["skipped"]) == (3, 3, 1)
    assert stats.layers[0]["fc2"].count == 3 * 1500
    limited = collect_statistics(model, files, batch_size=2, max_samples=2, progress=False)
    assert (limited.n_utterances, limited.n_windows) == (2, 2)
    windows = collect_statistics(model, [long], all_windows=True, progress=False)
    assert windows.n_windows == 2


def test_collect_statistics_without_usable_audio_fails_clearly(tmp_path, tiny_whisper):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....")
    with pytest.raises(DatasetError, match="no usable audio"):
        collect_statistics(tiny_whisper(), [broken, tmp_path / "missing.wav"], progress=False)
    with pytest.raises(DatasetError, match="empty"):
        collect_statistics(tiny_whisper(), [], progress=False)
