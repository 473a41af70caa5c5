"""One recording of a speech set, and the atomic FLAC writer every set that
decodes audio into the cache uses."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class Utterance:
    """One recording: absolute audio path, reference text (None if unknown),
    stable id, the speaker where the set knows it, and the language spoken
    (a Whisper code such as ``es``; None where the set does not say)."""

    audio: str
    text: str | None
    id: str
    speaker: str | None = None
    language: str | None = None


def write_flac_atomically(dst: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono samples as 16-bit FLAC under a temporary name, then rename:
    a killed run never leaves a truncated file under the real name."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, suffix=".tmp")
    os.close(fd)
    try:
        sf.write(tmp, samples, sample_rate, format="FLAC", subtype="PCM_16")
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise
