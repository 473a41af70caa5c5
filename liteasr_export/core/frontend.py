"""The one audio frontend shared by every backend (PyTorch, ONNX Runtime,
TensorRT, and mirrored by ``frontend.onnx``).

numpy + soundfile + soxr only: the ONNX Runtime path must not import torch or
transformers. Log-mel follows openai-whisper / faster-whisper: the spectrogram
is computed over the real audio only and padded to 3000 frames with zeros in
normalized log-mel space, which measured 0.2 to 1.1 WER points better than
Hugging Face's waveform padding on tiny.en and base.
"""

from __future__ import annotations

import stat
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from liteasr_export.core.errors import AudioError, AudioTooLongError, UserNotice

SAMPLE_RATE = 16000
N_FFT = 400
HOP_LENGTH = 160
CHUNK_SECONDS = 30
N_SAMPLES = SAMPLE_RATE * CHUNK_SECONDS  # 480000 samples in one window
N_FRAMES = N_SAMPLES // HOP_LENGTH  # 3000 mel frames in one window
#: when audio continues past a window, cut at the quietest point in this tail
CUT_SEARCH_SECONDS = 5.0
#: float audio whose peak exceeds this is taken as mis-scaled (e.g. int16
#: values stored as float) and normalized; up to it, resampling overshoot and
#: mild clipping are left alone
MAX_PEAK = 2.0


class AudioWarning(UserNotice):
    """Audio was usable only after a change (normalized); the CLI prints one line."""


@dataclass(frozen=True)
class FrontendParams:
    """Everything a reimplementation (C++, ONNX) needs to match this frontend."""

    n_mels: int
    sample_rate: int = SAMPLE_RATE
    n_fft: int = N_FFT
    hop_length: int = HOP_LENGTH
    n_frames: int = N_FRAMES
    window: str = "hann-periodic"
    mel_scale: str = "slaney"
    padding: str = "log-mel zeros after normalization (openai-whisper)"
    log_floor: float = 1e-10
    dynamic_range_log10: float = 8.0


#: sample rates a recording can have; outside them the header is broken or
#: forged (a 3 KB file that says 1 Hz would decode as 25 minutes of audio)
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 384000
#: samples (all channels together) decoded at a time
_BLOCK_SAMPLES = 1 << 16


def check_audio_path(path: str | Path) -> Path:
    """An existing, non-empty regular file, or an AudioError that says what
    the path is instead (missing, a folder, a FIFO or device, empty)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AudioError(f"audio file not found: {path}", "check the path") from None
    except OSError as exc:
        raise AudioError(f"cannot read audio file {path} ({exc.strerror})",
                         "check the path and its permissions") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path} is a folder, not an audio file",
                         "pass the audio files inside it, or the folder to a command that takes folders")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path} is not a regular file (a {_file_kind(mode)})",
                         "save the audio to a file and pass that file")
    if path.stat().st_size == 0:
        raise AudioError(f"audio file is empty: {path}", "re-record or re-export it")
    return path


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device")):
        if test(mode):
            return kind
    return "special file"


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, max_seconds: float | None = None) -> np.ndarray:
    """Read wav/flac/ogg/mp3, mix to mono, resample to ``sample_rate`` (float32).

    The header is checked before any sample is decoded: a sample rate
    outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], or (``max_seconds``) a
    duration over that many seconds, is an AudioError. Decoding goes a block
    at a time, so memory holds the resampled output and one block, whatever
    the file's rate and channels. Samples are checked as by
    :func:`check_samples` (huge ones normalized, the file then decoded
    again; NaN and infinite ones refused)."""
    path = check_audio_path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            _check_header(f, str(path), max_seconds)
            audio, bad, peak = _decode(f, sample_rate)
            if bad:
                raise _non_finite(str(path), bad)
            if peak > MAX_PEAK:
                _warn_normalized(str(path), peak)
                f.seek(0)
                audio, _, _ = _decode(f, sample_rate, divisor=peak)
    except AudioError:
        raise
    except Exception as exc:  # libsndfile raises its own error types
        raise AudioError(f"cannot decode audio file {path} ({' '.join(str(exc).split())})",
                         "use a valid wav, flac, ogg or mp3 file") from None
    if audio.size == 0:
        raise AudioError(f"audio file has no samples: {path}", "use a non-empty recording")
    return audio


def _check_header(f: sf.SoundFile, source: str, max_seconds: float | None) -> None:
    """The sample rate and (with ``max_seconds``) the duration a file's header states."""
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(f"{source} states a sample rate of {f.samplerate} Hz, which no recording has (its header "
                         f"is broken or forged)", f"use audio sampled at {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    if max_seconds is not None and f.frames > max_seconds * f.samplerate:
        raise AudioTooLongError(f"{source} is {f.frames / f.samplerate:.0f} s long, more than the {max_seconds:g} s "
                                "accepted", "split it into shorter recordings")


def _decode(f: sf.SoundFile, target_rate: int, divisor: float = 1.0) -> tuple[np.ndarray, int, float]:
    """Mono float32 at ``target_rate`` of an open file from its start, read,
    mixed and resampled a block at a time (soxr's stream gives the same
    samples as its one-shot resampling), each sample divided by ``divisor``.
    Returns the samples, the count of NaN or infinite samples and the peak
    of the rest, before the division (mixed in float64: a float file's huge
    values do not overflow)."""
    stream = None if f.samplerate == target_rate else soxr.ResampleStream(f.samplerate, target_rate, 1,
                                                                         dtype="float32", quality="HQ")
    frames = max(1, _BLOCK_SAMPLES // f.channels)
    parts, bad, peak = [], 0, 0.0
    while len(block := f.read(frames, dtype="float64", always_2d=True)):
        mono = block.mean(axis=1)
        finite = np.isfinite(mono)
        if not finite.all():
            bad += mono.size - int(np.count_nonzero(finite))
            mono = mono[finite]
        if mono.size:
            peak = max(peak, float(np.max(np.abs(mono))))
        if bad or (divisor == 1.0 and peak > MAX_PEAK):
            continue  # refused, or decoded again divided by the peak: only count and measure
        mono = (mono / divisor if divisor != 1.0 else mono).astype(np.float32)
        parts.append(stream.resample_chunk(mono, last=False) if stream is not None else mono)
    if stream is not None and not bad:
        parts.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), bad, peak


def _non_finite(source: str, count: int) -> AudioError:
    return AudioError(f"{source} holds {count} NaN or infinite samples",
                      "repair the recording or the code that produced it: every sample must be a finite number")


def _warn_normalized(source: str, peak: float) -> None:
    warnings.warn(f"{source}: samples reach {peak:.4g}, far outside [-1, 1]; normalized to a peak of 1",
                  AudioWarning, stacklevel=3)


def check_samples(audio: np.ndarray, source: str = "audio") -> np.ndarray:
    """Reject NaN and infinite samples (they decode to garbage); normalize
    audio whose peak is far outside [-1, 1] to a peak of 1, with an
    :class:`AudioWarning`. Returns the (possibly scaled) samples as float32;
    float64 input is checked and scaled before it is narrowed, so values
    beyond float32's range are normalized, not refused."""
    audio = np.asarray(audio)
    if audio.dtype not in (np.float32, np.float64):
        audio = audio.astype(np.float64)
    finite = np.isfinite(audio)
    if not finite.all():
        raise _non_finite(source, audio.size - int(np.count_nonzero(finite)))
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > MAX_PEAK:
        _warn_normalized(source, peak)
        audio = audio / peak
    return audio.astype(np.float32, copy=False)


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 resampling with soxr (no-op at the target rate)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise AudioError(f"expected mono audio, got shape {audio.shape}", "mix channels to mono first")
    if orig_rate == target_rate:
        return audio
    if orig_rate <= 0:
        raise AudioError(f"invalid sample rate {orig_rate}", "pass the rate the audio was recorded at")
    return soxr.resample(audio, orig_rate, target_rate, quality="HQ").astype(np.float32)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


@lru_cache(maxsize=4)
def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """Slaney-normalised triangular mel filterbank, ``(n_mels, n_fft // 2 + 1)``.

    Written out here (librosa's definition, as Whisper's ``mel_filters.npz``)
    because the torch-free runtime cannot import transformers' copy.
    """
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(_hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([sample_rate / 2.0]))[0], n_mels + 2)
    hz_points = _mel_to_hz(mel_points)
    widths = np.diff(hz_points)
    ramps = hz_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_points[2:] - hz_points[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=1)
def hann_window(n_fft: int = N_FFT) -> np.ndarray:
    """Periodic Hann window, as torch.hann_window (shared with frontend.onnx)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)


def log_mel(audio: np.ndarray, n_mels: int) -> np.ndarray:
    """Normalized log-mel of one window (<= 30 s): ``(n_mels, 3000)`` float32."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise AudioError(f"expected non-empty mono audio, got shape {audio.shape}", "pass 1-D 16 kHz samples")
    if audio.size > N_SAMPLES:
        raise AudioError(
            f"one window holds at most {N_SAMPLES} samples, got {audio.size}",
            "split long audio with split_windows() first",
        )
    if audio.size <= N_FFT // 2:  # reflect padding needs more samples than it pads
        audio = np.pad(audio, (0, N_FFT // 2 + 1 - audio.size))
    padded = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
    n_frames = audio.size // HOP_LENGTH  # torch.stft frames minus the last, as whisper drops it
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    power = np.abs(np.fft.rfft(frames * hann_window(), axis=-1)) ** 2
    mel = mel_filters(n_mels) @ power.T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    out = np.zeros((n_mels, N_FRAMES), dtype=np.float32)
    out[:, : log_spec.shape[1]] = (log_spec + 4.0) / 4.0
    return out


def window_bounds(audio: np.ndarray, window: int = N_SAMPLES) -> list[tuple[int, int]]:
    """(start, end) samples of the windows :func:`split_windows` cuts;
    ``window``: the longest window in samples (30 s; shorter under an audio
    context), searched for a quiet cut in its last 5 s (last half when the
    window is under 10 s)."""
    audio = np.asarray(audio, dtype=np.float32)
    bounds: list[tuple[int, int]] = []
    start = 0
    frame = SAMPLE_RATE // 50
    search = min(int(CUT_SEARCH_SECONDS * SAMPLE_RATE), window // 2 // frame * frame)
    while audio.size - start > window:
        if search < frame:  # a window under 40 ms: cut where it ends
            cut = start + window
        else:
            tail = audio[start + window - search : start + window]
            energy = np.square(tail[: tail.size // frame * frame].reshape(-1, frame)).sum(axis=1)
            cut = start + window - search + int(np.argmin(energy)) * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, audio.size))
    return bounds


def split_windows(audio: np.ndarray) -> list[np.ndarray]:
    """Split audio into windows of at most 30 s, cutting in the quietest 20 ms
    of each window's last 5 s so that words are not cut in half."""
    audio = np.asarray(audio, dtype=np.float32)
    return [audio[start:end] for start, end in window_bounds(audio)]
