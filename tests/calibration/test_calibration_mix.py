"""Calibration mixes: balanced sampling, source resolution, window packing and
augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration import augment, mix
from calibration.datasets import Utterance
from calibration.windows import PACK_GAP_SECONDS, WindowSummary, mix_windows
from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import N_SAMPLES, SAMPLE_RATE


def _utts(counts: dict[str, int]) -> list[Utterance]:
    return [Utterance(f"/a/{s}{i}.wav", "x", f"{s}/{i}", speaker=s) for s, n in counts.items() for i in range(n)]


def test_balanced_sample_lets_every_speaker_take_turns() -> None:
    utterances = _utts({"joe": 50, "bob": 3, "tam": 2})
    got = mix.balanced_sample(utterances, 6)
    assert sorted(u.speaker for u in got) == ["bob", "bob", "joe", "joe", "tam", "tam"]
    assert mix.balanced_sample(utterances, 6) == got  # deterministic
    assert mix.balanced_sample(utterances, 6, seed=1) != got
    assert len(mix.balanced_sample(utterances, None)) == 55
    assert len(mix.balanced_sample(utterances, 100)) == 55


def _folder(tmp_path: Path, name: str, n: int, seconds: float) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    rng = np.random.default_rng(len(name))
    for i in range(n):
        sf.write(str(folder / f"{i}.wav"), (0.1 * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32),
                 SAMPLE_RATE)
    return folder


def test_default_mix_skips_unavailable_sources_but_explicit_ones_must_resolve(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LITEASR_FOTAQ_ARCHIVE", str(tmp_path / "missing.1c"))
    monkeypatch.setattr("calibration.fotaq.SYSTEM_ARCHIVE", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = _folder(tmp_path, "mine", 3, 1.0)
    got = mix.resolve_mix(f"default,{folder}", "calib", per_source=4)
    names = [s.name for s in got.sources]
    assert "fotaq" not in names and "fotaq" in got.missing and "builtin" in names and str(folder) in names
    assert all(len(s.utterances) <= 4 for s in got.sources)
    assert json.loads(json.dumps(got.describe()))["missing"]["fotaq"]
    with pytest.raises(DatasetError, match="fotaq"):
        mix.resolve_mix("fotaq,builtin", "calib")
    with pytest.raises(DatasetError, match="empty speech set"):
        mix.resolve_mix(" , ", "calib")


def test_packing_fills_whole_windows_and_counts_what_it_made(tmp_path) -> None:
    folder = _folder(tmp_path, "clips", 30, 2.5)  # 75 s of clips, 87 s with the gaps
    source = mix.resolve_mix(str(folder), "calib", per_source=None)
    summary = WindowSummary()
    windows = list(mix_windows(source, "both", None, summary))
    assert summary.single == 30 and summary.packed == 3 and summary.windows == 33 == len(windows)
    packed = windows[30:]
    assert all(25 * SAMPLE_RATE <= w.size <= N_SAMPLES for w in packed[:2])  # cut in the last 5 s
    assert N_SAMPLES // 2 <= packed[2].size <= N_SAMPLES  # the remainder is kept when over half a window
    assert summary.to_dict()["minutes"][str(folder)] == pytest.approx(75 / 60, abs=0.01)
    only = list(mix_windows(source, "packed"))
    assert len(only) == 3 and sum(w.size for w in only) <= 30 * (2.5 + PACK_GAP_SECONDS) * SAMPLE_RATE
    with pytest.raises(ValueError):
        list(mix_windows(source, "sideways"))


def test_augmentation_adds_one_copy_per_window_and_is_reproducible(tmp_path) -> None:
    folder = _folder(tmp_path, "clips", 4, 1.0)
    source = mix.resolve_mix(str(folder), "calib", per_source=None)
    augmenter = augment.Augmenter.parse("all")
    summary = WindowSummary()
    first = list(mix_windows(source, "single", augmenter, summary))
    assert summary.windows == 8 and sum(summary.augmented.values()) == 4
    second = list(mix_windows(source, "single", augment.Augmenter.parse("all")))
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert augment.Augmenter.parse(None) is None and augment.Augmenter.parse("none") is None
    with pytest.raises(DatasetError, match="unknown augmentation reverb"):
        augment.Augmenter.parse("speed,reverb")


def test_augmentations_do_what_they_say() -> None:
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    spectrum = lambda a: np.abs(np.fft.rfft(a))  # noqa: E731  (1 Hz bins)
    limited = spectrum(augment.band_limit(tone, "8k"))
    assert limited[1000] > 1000 and limited[6000] < 1e-3 * limited[1000]
    phone = spectrum(augment.band_limit(tone, "telephone"))
    assert phone[1000] > 1000 and phone[6000] < 1.0
    assert augment.speed(tone, 1.1).size == pytest.approx(tone.size / 1.1, rel=1e-3)
    noisy = augment.add_noise(tone, 10.0, rng)
    snr = 10 * np.log10(np.mean(tone.astype(np.float64) ** 2) / np.mean((noisy - tone).astype(np.float64) ** 2))
    assert snr == pytest.approx(10.0, abs=0.1)
    assert np.max(np.abs(augment.gain(tone, 6.0))) <= 1.0
    assert np.allclose(augment.gain(tone, -6.0), tone * 10 ** (-6 / 20), atol=1e-6)


def test_statistics_cache_is_keyed_by_the_audio_content(tmp_path: Path, tiny_whisper) -> None:
    """Editing a calibration file (same name, same folder) must not reuse the
    statistics of its old content."""
    from types import SimpleNamespace

    from liteasr_export.app.export.compression_stage import calibrate
    from liteasr_export.app.export.pipeline import ExportOptions

    folder = tmp_path / "speech"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        sf.write(folder / f"clip{i}.wav", 0.1 * rng.standard_normal(SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    loaded = SimpleNamespace(model=tiny_whisper(), tokenizer=SimpleNamespace(is_multilingual=False))
    opts = ExportOptions(output=tmp_path / "out", calib=str(folder), cache_dir=tmp_path / "cache", progress=False)
    first, note = calibrate(loaded, opts, progress_note=lambda _: None)
    assert note.startswith("calibrated")
    again, note = calibrate(loaded, opts, progress_note=lambda _: None)
    assert note.startswith("reused") and again.n_windows == first.n_windows
    sf.write(folder / "clip1.wav", 0.3 * rng.standard_normal(SAMPLE_RATE).astype(np.float32), SAMPLE_RATE)
    edited, note = calibrate(loaded, opts, progress_note=lambda _: None)
    assert note.startswith("calibrated")
    site = next(iter(first.layers[0]))
    assert not np.allclose(edited.layers[0][site].outer.numpy(), first.layers[0][site].outer.numpy())


def test_a_mix_of_generated_voices_only_is_told_apart(tmp_path, monkeypatch) -> None:
    """Offline without real speech the default mix is the built-in generated
    voices alone: the export says so, since such statistics can hide damage on
    real speakers; a folder of the user's own speech counts as real."""
    monkeypatch.setenv("LITEASR_FOTAQ_ARCHIVE", str(tmp_path / "missing.1c"))
    monkeypatch.setattr("calibration.fotaq.SYSTEM_ARCHIVE", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LITEASR_ASTERISK_SOUNDS", str(tmp_path / "no-asterisk"))
    assert mix.resolve_mix("default", "calib", per_source=4).generated_only
    folder = _folder(tmp_path, "mine", 3, 1.0)
    assert not mix.resolve_mix(f"default,{folder}", "calib", per_source=4).generated_only


def _fake_sets(monkeypatch, sizes: dict[str, tuple[int, int]], missing: tuple[str, ...] = ()) -> list[str]:
    """``resolve_set`` answering from ``sizes`` (name -> (clips, speakers)),
    raising for ``missing``; returns the names it was asked for."""
    asked: list[str] = []

    def resolve(name: str, purpose: str) -> list[Utterance]:
        asked.append(name)
        if name in missing or name not in sizes:
            raise DatasetError(f"speech set {name}: not installed", "install it")
        clips, speakers = sizes[name]
        language = mix.language_of_source(name)
        return [Utterance(f"/a/{name}/{i}.wav", "x", f"{name}/{i}", f"{name}-v{i % speakers}", language)
                for i in range(clips)]

    monkeypatch.setattr(mix, "resolve_set", resolve)
    return asked


SIZES = {"fotaq": (300, 20), "asterisk": (131, 1), "builtin": (32, 7), "asterisk-es": (138, 1), "synth-es": (139, 4),
         "asterisk-fr": (133, 1), "synth-fr": (135, 4), "asterisk-it": (131, 1), "synth-it": (131, 4)}


def test_a_multilingual_default_mix_weighs_every_language_like_english(monkeypatch) -> None:
    _fake_sets(monkeypatch, SIZES, missing=("synth-it",))
    got = mix.resolve_mix("default", "calib", per_source=48, multilingual=True)
    drawn = {s.name: len(s.utterances) for s in got.sources}
    english = drawn["fotaq"] + drawn["asterisk"] + drawn["builtin"]
    assert english == 48 + 48 + 32  # builtin has 32 calibration clips
    # each other language gets as many utterances as English, split evenly between its installed sources
    assert drawn["asterisk-es"] == drawn["synth-es"] == english // 2
    assert drawn["asterisk-fr"] == drawn["synth-fr"] == english // 2
    assert drawn["asterisk-it"] == english and "synth-it" in got.missing
    assert got.languages == {"en": english, "es": english, "fr": english, "it": english}
    assert got.describe()["languages"] == got.languages
    # balanced per speaker inside a source: the four synthetic Spanish voices take turns
    voices = [u.speaker for s in got.sources if s.name == "synth-es" for u in s.utterances]
    assert {voices.count(v) for v in set(voices)} == {english // 2 // 4}
    # interleaved: every source contributes from the start
    assert {u.id.split("/")[0] for u in got.utterances[: len(got.sources)]} == set(drawn)
    # a source named explicitly keeps --calib-samples
    named = mix.resolve_mix("default,synth-fr", "calib", per_source=48, multilingual=True)
    assert {s.name: len(s.utterances) for s in named.sources}["synth-fr"] == 48


def test_an_english_only_default_mix_is_unchanged(monkeypatch) -> None:
    asked = _fake_sets(monkeypatch, SIZES)
    got = mix.resolve_mix("default", "calib", per_source=48)
    # exactly what the default drew before languages existed: its three sources, 48 each, in order,
    # balanced per speaker (the statistics cache key hashes these names and ids in this order)
    assert [s.name for s in got.sources] == list(mix.DEFAULT_SOURCES)
    for source in got.sources:
        assert source.utterances == mix.balanced_sample(mix.resolve_set(source.name, "calib"), 48, 0)
    assert not any(name.startswith(("asterisk-", "synth-")) for name in asked)
    assert "languages" not in got.describe()
    assert mix.resolve_mix("default", "calib", per_source=48, multilingual=False).describe() == got.describe()


def test_synthetic_voices_of_other_languages_count_as_generated_speech(monkeypatch) -> None:
    _fake_sets(monkeypatch, SIZES)
    assert mix.resolve_mix("builtin,synth-es", "calib", per_source=4).generated_only
    assert not mix.resolve_mix("synth-es,asterisk-es", "calib", per_source=4).generated_only
