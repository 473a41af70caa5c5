"""Language detection and translation after compression (multilingual models).

Per check set, against the dense model:

* *detection agreement*: how often the compressed model detects the same
  language as the dense one from a recording's first window (what
  ``--language auto`` does; one encoder pass and one decoder call per
  clip). Gated on the clips where the dense model detects the set's own
  language (all clips when the set states none): the gate refuses an
  export that keeps the dense model's detection on fewer than
  :data:`MIN_DETECTION_AGREEMENT` % of them, on any set, since a model that
  names the wrong language transcribes in it. The clips the dense model
  itself gets wrong (one-word telephone prompts, synthetic voices: near
  ties between languages) are left out of the verdict: a flip there is
  noise, or even a fix, not damage; agreement over every clip is reported.
* *translation disagreement*: the WER of the compressed model's
  ``--task translate`` output against the dense model's, on the first
  :data:`TRANSLATION_CLIPS` clips of each set not in English. Reported, not
  gated: free translations vary more between two sound models than
  transcripts do, and no reference translation says which is better.

The dense model's detections and translations are cached like its
transcripts (:class:`~engines.validation.quality_gate.TranscriptCache`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from liteasr_export.core.evaluation import score

from .quality_gate import CheckSet, TranscriptCache

#: the least detection agreement (percent of a set's clips) the gate accepts
MIN_DETECTION_AGREEMENT = 98.0
#: clips of each non-English set translated by both models
TRANSLATION_CLIPS = 16


@dataclass
class LanguageProbe:
    """What the language checks need of one model: ``detect`` (recordings ->
    the language code detected in each) and ``translate`` (recordings, their
    language -> English text)."""

    detect: Callable[[list[np.ndarray]], list[str]]
    translate: Callable[[list[np.ndarray], str], list[str]]


@dataclass
class LanguageCheck:
    """Detection and translation on one check set; per backend."""

    name: str
    language: str
    clips: int
    #: percent of the clips on which the dense model detects the set's language
    dense_detects_language: float
    #: per backend, percent of every clip detected as the dense model detects it (reported)
    detection_agreement: dict[str, float] = field(default_factory=dict)
    #: the clips the verdict counts: those where dense detects the set's language (all when none is stated)
    detection_clips: int = 0
    #: per backend, percent of those clips detected as the dense model detects them (gated)
    detection_kept: dict[str, float] = field(default_factory=dict)
    translation_clips: int = 0
    translation_disagreement: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def markdown_rows(self) -> list[str]:
        rows = []
        for backend, agreement in self.detection_agreement.items():
            translation = self.translation_disagreement.get(backend)
            kept = self.detection_kept.get(backend)
            rows.append(f"| {self.name} | {self.language} | {self.clips} | {self.dense_detects_language:.1f} | "
                        f"{backend} | {'-' if kept is None else f'{kept:.1f}'} of {self.detection_clips} | "
                        f"{agreement:.1f} | {self.translation_clips or '-'} | "
                        f"{'-' if translation is None else f'{translation:.2f}'} |")
        return rows


def detection_failures(check: LanguageCheck, minimum: float = MIN_DETECTION_AGREEMENT) -> list[str]:
    """Why ``check`` refuses the export: a backend that keeps the dense
    model's detection on less than ``minimum`` % of the counted clips."""
    return [f"{check.name}: the compressed model detects the dense model's language on {kept:.1f} % of the "
            f"{check.detection_clips} clips dense detects as {check.language} ({backend}; limit {minimum:g} %)"
            for backend, kept in check.detection_kept.items() if kept < minimum]


def _cached(cache: TranscriptCache, model_key: str, check: CheckSet, make: Callable[[], list[str]]) -> list[str]:
    texts = cache.get(model_key, check)
    if texts is None:
        texts = make()
        cache.put(model_key, check, texts)
    return texts


def check_language(check: CheckSet, dense: LanguageProbe, backends: dict[str, LanguageProbe], model_key: str,
                   cache: TranscriptCache | None = None, translation_clips: int = TRANSLATION_CLIPS) -> LanguageCheck:
    """Detection agreement and translation disagreement of each backend on ``check``."""
    cache = cache or TranscriptCache(None)
    language = check.language or "en"
    detecting = replace(check, name=f"{check.name}.detect", fingerprint=f"{check.fingerprint}|detect")
    reference = _cached(cache, model_key, detecting, lambda: dense.detect(check.audio))
    right = [c == language for c in reference]
    counted = right if check.language is not None else [True] * len(reference)
    result = LanguageCheck(check.name, language, len(check.audio), round(100.0 * float(np.mean(right)), 2),
                           detection_clips=sum(counted))
    for name, probe in backends.items():
        start = time.perf_counter()
        same = [a == b for a, b in zip(probe.detect(check.audio), reference)]
        result.detection_agreement[name] = round(100.0 * float(np.mean(same)), 2)
        if result.detection_clips:
            kept = sum(s for s, c in zip(same, counted) if c)
            result.detection_kept[name] = round(100.0 * kept / result.detection_clips, 2)
        result.seconds[name] = round(time.perf_counter() - start, 2)
    if language == "en" or translation_clips <= 0:
        return result
    count = min(translation_clips, len(check.audio))
    audio = check.audio[:count]
    translating = replace(check, name=f"{check.name}.translate", ids=check.ids[:count], audio=audio,
                          fingerprint=f"{check.fingerprint}|translate|{count}")
    english = _cached(cache, model_key, translating, lambda: dense.translate(audio, language))
    result.translation_clips = count
    for name, probe in backends.items():
        start = time.perf_counter()
        texts = probe.translate(audio, language)
        result.translation_disagreement[name] = round(score(translating.ids, english, texts).wer, 3)
        result.seconds[name] = round(result.seconds[name] + time.perf_counter() - start, 2)
    return result


def check_languages(checks: Sequence[CheckSet], dense: LanguageProbe, backends: dict[str, LanguageProbe],
                    model_key: str, cache: TranscriptCache | None = None, translation_clips: int = TRANSLATION_CLIPS,
                    progress: Callable[[str], None] | None = None) -> tuple[list[LanguageCheck], list[str]]:
    """:func:`check_language` on every set made of separate clips (not the
    long recording, whose first window says nothing of the rest); returns
    the results and the failures (:func:`detection_failures`)."""
    results, failures = [], []
    for check in checks:
        if check.block_seconds is not None:
            continue
        result = check_language(check, dense, backends, model_key, cache, translation_clips)
        results.append(result)
        failures += detection_failures(result)
        if progress is not None:
            worst = min(result.detection_agreement, key=result.detection_agreement.get)
            translation = result.translation_disagreement.get(worst)
            progress(f"  {check.name}: language detection agrees with dense on "
                     f"{result.detection_kept.get(worst, float('nan')):.1f} % of the {result.detection_clips} "
                     f"clips dense detects as {result.language} ({worst})"
                     + (f", translation disagreement {translation:.2f} %" if translation is not None else ""))
    return results, failures
