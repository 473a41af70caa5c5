"""Augmentations applied inside the calibration pass (waveforms at 16 kHz).

Each one imitates a condition users meet and calibration sets rarely hold:
another speaking rate, background noise, a narrow channel (8 kHz or 11 kHz
recordings, telephone), another level. An augmented window is added next to
its clean original, never in place of it.

Spec: a comma-separated list of kinds (``speed,noise,band,gain``) or ``all``.
Every augmented window draws one of the enabled kinds and its parameter from
a generator seeded per window, so a calibration is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import SAMPLE_RATE, resample

SPEEDS = (0.9, 1.1)
SNRS_DB = (5.0, 10.0, 20.0)
#: pass bands in Hz: a recording made at 8 kHz, one at 11.025 kHz, a telephone line
BANDS: dict[str, tuple[float, float]] = {"8k": (0.0, 4000.0), "11k": (0.0, 5512.5), "telephone": (300.0, 3400.0)}
GAINS_DB = (-12.0, 6.0)


def speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch, as a tape would)."""
    return resample(audio, int(round(SAMPLE_RATE * factor)), SAMPLE_RATE)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with a falling spectrum (white noise tilted down above 500 Hz, like
    room and street noise) at ``snr_db`` below the signal's power."""
    spectrum = np.fft.rfft(rng.standard_normal(audio.size))
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SAMPLE_RATE)
    noise = np.fft.irfft(spectrum / np.sqrt(1.0 + (freqs / 500.0) ** 2), n=audio.size)
    signal_power = float(np.mean(audio.astype(np.float64) ** 2)) or 1e-10
    noise_power = float(np.mean(noise**2)) or 1e-10
    return (audio + np.sqrt(signal_power / noise_power / 10 ** (snr_db / 10)) * noise).astype(np.float32)


def band_limit(audio: np.ndarray, band: str) -> np.ndarray:
    """Keep only the pass band of :data:`BANDS` (an ideal filter in the frequency domain)."""
    low, high = BANDS[band]
    spectrum = np.fft.rfft(audio.astype(np.float64))
    freqs = np.fft.rfftfreq(audio.size, 1.0 / SAMPLE_RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0.0
    return np.fft.irfft(spectrum, n=audio.size).astype(np.float32)


def gain(audio: np.ndarray, db: float) -> np.ndarray:
    return np.clip(audio * np.float32(10 ** (db / 20)), -1.0, 1.0)


KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, str]]] = {
    "speed": lambda a, rng: (lambda f: (speed(a, f), f"speed x{f}"))(float(rng.choice(SPEEDS))),
    "noise": lambda a, rng: (lambda s: (add_noise(a, s, rng), f"noise {s:g} dB SNR"))(float(rng.choice(SNRS_DB))),
    "band": lambda a, rng: (lambda b: (band_limit(a, b), f"band {b}"))(str(rng.choice(list(BANDS)))),
    "gain": lambda a, rng: (lambda g: (gain(a, g), f"gain {g:+g} dB"))(float(rng.choice(GAINS_DB))),
}


@dataclass(frozen=True)
class Augmenter:
    """The enabled kinds; :meth:`__call__` makes one augmented copy of a window."""

    kinds: tuple[str, ...]
    seed: int = 0

    @classmethod
    def parse(cls, spec: str | None, seed: int = 0) -> Augmenter | None:
        """``None``/``""``/``none`` -> no augmentation; ``all`` -> every kind."""
        if not spec or spec == "none":
            return None
        names = list(KINDS) if spec == "all" else [s.strip() for s in spec.split(",") if s.strip()]
        unknown = [n for n in names if n not in KINDS]
        if unknown or not names:
            raise DatasetError(f"unknown augmentation {', '.join(unknown) or repr(spec)}",
                               f"use a comma-separated list of {', '.join(KINDS)}, or all")
        return cls(tuple(dict.fromkeys(names)), seed)

    def __call__(self, audio: np.ndarray, index: int) -> tuple[np.ndarray, str]:
        """The augmented copy of window ``index`` and what was done to it."""
        rng = np.random.default_rng([self.seed, index])
        kind = self.kinds[int(rng.integers(len(self.kinds)))]
        return KINDS[kind](audio, rng)
