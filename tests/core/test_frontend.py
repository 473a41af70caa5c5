"""The shared audio frontend against transformers and openai-whisper's formula."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from liteasr_export.core.errors import AudioError
from liteasr_export.core.frontend import (N_FRAMES, N_SAMPLES, SAMPLE_RATE, load_audio, log_mel, mel_filters,
                                     split_windows, window_bounds)


def whisper_reference(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """openai-whisper's log_mel_spectrogram over the real audio, padded in log-mel space."""
    window = torch.hann_window(400)
    stft = torch.stft(torch.from_numpy(audio), 400, 160, window=window, return_complex=True)
    power = stft[..., :-1].abs() ** 2
    mel = torch.tensor(mel_filters(n_mels), dtype=torch.float32) @ power
    log_spec = torch.clamp(mel, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    log_spec = (log_spec + 4.0) / 4.0
    return torch.nn.functional.pad(log_spec, (0, N_FRAMES - log_spec.shape[-1])).numpy()


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_match_transformers(n_mels):
    from transformers.audio_utils import mel_filter_bank

    theirs = mel_filter_bank(num_frequency_bins=201, num_mel_filters=n_mels, min_frequency=0.0,
                             max_frequency=8000.0, sampling_rate=16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(mel_filters(n_mels), theirs.T, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("seconds", [0.5, 7.3, 30.0])
def test_log_mel_matches_openai_whisper_formula(seconds):
    rng = np.random.default_rng(1)
    audio = (rng.standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)
    ours = log_mel(audio, 80)
    assert ours.shape == (80, N_FRAMES) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, whisper_reference(audio, 80), atol=1e-4)
    frames = audio.size // 160
    assert np.all(ours[:, frames:] == 0.0)  # padding is zeros in normalized log-mel space


def test_full_window_matches_hugging_face_feature_extractor():
    from transformers import WhisperFeatureExtractor

    rng = np.random.default_rng(2)
    audio = (rng.standard_normal(N_SAMPLES) * 0.1).astype(np.float32)
    theirs = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    np.testing.assert_allclose(log_mel(audio, 80), theirs, atol=1e-4)


def test_load_audio_mixes_and_resamples(tmp_path):
    t = np.arange(44100 * 2) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1) * 0.5
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, 44100)
    audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - 2 * SAMPLE_RATE) <= 2
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * SAMPLE_RATE / audio.size - 440) < 2


@pytest.mark.parametrize("content,match", [(None, "not found"), (b"", "empty"), (b"RIFF....WAVEfmt garbage", "cannot decode")])
def test_bad_audio_files(tmp_path, content, match):
    path = tmp_path / "clip.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=match):
        load_audio(path)


def test_split_windows_cuts_long_audio_in_silence():
    rng = np.random.default_rng(3)
    tone = (rng.standard_normal(SAMPLE_RATE * 120) * 0.1).astype(np.float32)
    quiet = SAMPLE_RATE * 28  # a silent stretch inside the first window's last 5 s
    tone[quiet : quiet + SAMPLE_RATE // 10] = 0.0
    windows = split_windows(tone)
    assert all(w.size <= N_SAMPLES for w in windows)
    np.testing.assert_array_equal(np.concatenate(windows), tone)
    assert quiet <= windows[0].size <= quiet + SAMPLE_RATE // 10
    assert len(split_windows(tone[:N_SAMPLES])) == 1


@pytest.mark.parametrize("window", [2 * SAMPLE_RATE, 10 * SAMPLE_RATE, 480, 160])
def test_shorter_windows_cover_the_audio_and_cut_in_its_last_half(window):
    """An audio context's windows (2 s, 10 s; a few frames) tile the audio
    with none longer than ``window``, each cut in its second half (in its
    last 5 s from 10 s on; where it ends when too short to search)."""
    rng = np.random.default_rng(4)
    audio = (rng.standard_normal(SAMPLE_RATE * 25) * 0.1).astype(np.float32)
    bounds = window_bounds(audio, window)
    assert bounds[0][0] == 0 and bounds[-1][1] == audio.size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(0 < end - start <= window for start, end in bounds)
    searched = min(5 * SAMPLE_RATE, window // 2)
    assert all(end - start >= window - searched for start, end in bounds[:-1])
    assert window_bounds(audio) == window_bounds(audio, N_SAMPLES)  # 30 s: the default
