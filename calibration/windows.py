"""From utterances to the 30 s windows the encoder is calibrated on.

Two shapes of window matter, because users feed both: a short clip alone in
its window (mostly padding, as a single command or prompt is transcribed)
and a window full of speech (any recording longer than 30 s). Calibrating on
short clips alone fits the padding frames and leaves whole windows worse
(the project measured 14.3 -> 31.9 % WER on 10 minutes of back-to-back
clips), so a mix packs consecutive utterances of each source into full
windows as well (``packing="both"``, the default).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from liteasr_export.core.errors import AudioError
from liteasr_export.core.frontend import N_SAMPLES, SAMPLE_RATE, load_audio, split_windows

from .augment import Augmenter
from .mix import Mix

log = logging.getLogger(__name__)

PACKINGS = ("single", "packed", "both")
#: silence between packed utterances
PACK_GAP_SECONDS = 0.4


@dataclass
class WindowSummary:
    """What a calibration pass contained (written to the compression report)."""

    windows: int = 0
    single: int = 0
    packed: int = 0
    augmented: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # speech per source
    skipped: int = 0

    def to_dict(self) -> dict:
        return {"windows": self.windows, "single_windows": self.single, "packed_windows": self.packed,
                "augmented_windows": dict(sorted(self.augmented.items())), "skipped_files": self.skipped,
                "minutes": {k: round(v / 60, 2) for k, v in self.seconds.items()},
                "total_minutes": round(sum(self.seconds.values()) / 60, 2)}


def utterance_windows(
    utterances: Iterable,
    max_samples: int | None = None,
    all_windows: bool = False,
    counts: dict[str, int] | None = None,
    on_utterance: Callable[[], None] | None = None,
) -> Iterator[np.ndarray]:
    """The first window (or, ``all_windows``, every window) of each utterance
    (objects with ``.audio`` or plain paths). Unreadable files are skipped with
    a warning; ``counts`` receives ``used``, ``skipped`` and ``windows``."""
    counts = counts if counts is not None else {}
    counts.update(used=0, skipped=0, windows=0)
    for utterance in utterances:
        if max_samples is not None and counts["used"] >= max_samples:
            break
        try:
            windows = [w for w in split_windows(load_audio(getattr(utterance, "audio", utterance))) if w.size]
        except AudioError as exc:
            log.warning("skipping calibration audio: %s", exc)
            counts["skipped"] += 1
            continue
        counts["used"] += 1
        if on_utterance is not None:
            on_utterance()
        for window in windows if all_windows else windows[:1]:
            counts["windows"] += 1
            yield window


def packed_windows(clips: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Consecutive clips joined by short silences, cut into full 30 s windows
    (the remainder, when shorter than half a window, is dropped)."""
    gap = np.zeros(int(PACK_GAP_SECONDS * SAMPLE_RATE), np.float32)
    pending: list[np.ndarray] = []
    size = 0
    for clip in clips:
        pending += [clip, gap]
        size += clip.size + gap.size
        if size >= N_SAMPLES:
            joined = np.concatenate(pending)
            windows = split_windows(joined)
            yield from windows[:-1]
            pending, size = [windows[-1]], windows[-1].size
    if size >= N_SAMPLES // 2:
        yield np.concatenate(pending)[:N_SAMPLES]


def mix_windows(mix: Mix, packing: str = "both", augmenter: Augmenter | None = None,
                summary: WindowSummary | None = None) -> Iterator[np.ndarray]:
    """Every calibration window of ``mix``: per source, each utterance alone
    (``single``), the source's utterances packed into full windows
    (``packed``), or both; then, with an ``augmenter``, one augmented copy of
    each window. ``summary`` is filled in as the windows are produced."""
    if packing not in PACKINGS:
        raise ValueError(f"packing must be one of {PACKINGS}, got {packing!r}")
    summary = summary if summary is not None else WindowSummary()
    for source in mix.sources:
        clips: list[np.ndarray] = []
        for utterance in source.utterances:
            try:
                clips.append(split_windows(load_audio(utterance.audio))[0])
            except AudioError as exc:
                log.warning("skipping calibration audio: %s", exc)
                summary.skipped += 1
        summary.seconds[source.name] = sum(c.size for c in clips) / SAMPLE_RATE
        windows: list[tuple[np.ndarray, bool]] = []
        if packing in ("single", "both"):
            windows += [(c, False) for c in clips]
        if packing in ("packed", "both"):
            windows += [(w, True) for w in packed_windows(clips)]
        for window, packed in windows:
            summary.windows += 1
            summary.packed += packed
            summary.single += not packed
            yield window
            if augmenter is not None:
                augmented, what = augmenter(window, summary.windows)
                summary.augmented[what.split()[0]] = summary.augmented.get(what.split()[0], 0) + 1
                summary.windows += 1
                yield augmented[:N_SAMPLES]
