"""The quality gate: does the exported model transcribe as well as the dense
one, on speech it was not calibrated on?

Every check set is transcribed by the dense PyTorch model (the reference,
cached per model and set) and by the exported artifacts. Per set:

* with references: both WERs and the increase (compressed minus dense, in
  points); the gate fails when an increase passes ``max_wer_increase``;
* always: the label-free *agreement*, the WER of the compressed transcripts
  measured against the dense model's own transcripts. It needs no
  references, so it works on any folder of the user's audio; on a set
  without references the gate fails when it passes ``max_disagreement``.

The default sets are real speech the default calibration never contains
(``fotaq-eval``: other characters and conversations than ``fotaq-calib``;
``asterisk-eval``: other prompts than ``asterisk-calib``), the user's
``--eval`` set, and one long recording made of evaluation clips back to back,
whose full 30 s windows break a compressed model sooner than short clips do.

A set has a language (its utterances'): it is scored with that language's
normalizer and, for a multilingual model, decoded with its language token
(``set_language``). A multilingual model is also checked on the other
languages' evaluation sets (the export's ``quality_stage``), each with the same
limit as English's, and on language detection and translation
(:mod:`engines.validation.languages`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from liteasr_export.core.errors import DatasetError
from liteasr_export.core.evaluation import errors_by_reference_word, score, word_errors
from liteasr_export.core.frontend import N_FRAMES, SAMPLE_RATE, load_audio
from liteasr_export.core.output_formats import write_atomic

#: built-in check sets added to ``--eval`` when installed, cheapest first (a
#: gate that stops at its first failure then spends the least on a bad model)
DEFAULT_GATE_SETS = ("long", "fotaq-eval", "asterisk-eval")
#: clips drawn (balanced per speaker) from each built-in check set
DEFAULT_GATE_CLIPS = 150
#: minutes of the long recording
LONG_MINUTES = 4.0
#: silence between clips of the long recording
LONG_GAP_SECONDS = 0.3
#: the long recording is scored in pieces of this much audio (about one decoding
#: window each) to estimate its sampling uncertainty
BLOCK_SECONDS = 30.0
#: a default the user did not choose must pass every set by more than this
#: many standard errors of its increase (see :meth:`GateResult.passed_with_margin`)
MARGIN_SE = 1.0
DEFAULT_MAX_WER_INCREASE = 1.0
DEFAULT_MAX_DISAGREEMENT = 10.0
#: clips transcribed between two looks at whether a set has failed already
STOP_CHUNK = 24
#: the largest share of a set's windows that a trimmed audio context
#: (``auto``) may send back to 30 s: more is a fallback storm (the model
#: loops or stops early on trimmed contexts), and costs more than full windows
MAX_CONTEXT_RETRY_SHARE = 0.10

TranscribeMany = Callable[[list[np.ndarray]], list[str]]


@dataclass
class CheckSet:
    """Recordings to compare the models on; ``references`` None when unlabeled."""

    name: str
    ids: list[str]
    audio: list[np.ndarray]
    references: list[str] | None
    fingerprint: str  # of the recordings' contents, for the transcript cache
    #: one recording scored in pieces of this many seconds (the long
    #: recording); None: each recording is one paired unit
    block_seconds: float | None = None
    #: the language spoken (a Whisper code; None: not stated, English)
    language: str | None = None

    @property
    def languages(self) -> list[str | None]:
        """The language of each recording, as the scoring takes it."""
        return [self.language] * len(self.ids)

    @property
    def seconds(self) -> float:
        return sum(a.size for a in self.audio) / SAMPLE_RATE


def _file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_set(name: str, utterances: Sequence, language: str | None = None) -> CheckSet:
    """A set of utterances (``.audio``, ``.text``, ``.id``, optionally
    ``.language``) in one ``language`` (default: the utterances' own, when
    they all state the same); labeled when every utterance has a reference."""
    labeled = all(u.text is not None for u in utterances)
    if language is None:
        stated = {getattr(u, "language", None) for u in utterances}
        language = stated.pop() if len(stated) == 1 else None
    digest = hashlib.sha256(name.encode())
    for u in utterances:
        digest.update(f"|{u.id}|{_file_digest(u.audio)}|{u.text}".encode())
    if language not in (None, "en"):  # decoded with its own token: English sets keep their cached transcripts
        digest.update(f"|language={language}".encode())
    return CheckSet(name, [u.id for u in utterances], [load_audio(u.audio) for u in utterances],
                    [u.text for u in utterances] if labeled else None, digest.hexdigest(), language=language)


def check_sets(name: str, utterances: Sequence) -> list[CheckSet]:
    """``utterances`` as check sets of one language each: one set when they
    share a language (or state none), else one per language, named
    ``name[code]`` (a manifest of several languages, e.g. ``--eval``)."""
    groups: dict[str | None, list] = {}
    for u in utterances:
        groups.setdefault(getattr(u, "language", None), []).append(u)
    if len(groups) <= 1:
        return [check_set(name, utterances)]
    return [check_set(f"{name}[{code or 'en'}]", group, code) for code, group in groups.items()]


def long_recording(utterances: Sequence, minutes: float = LONG_MINUTES, name: str = "long") -> CheckSet:
    """One recording of ``minutes``: the utterances back to back with short
    silences (repeated from the start if they run out), and their texts joined
    as its reference."""
    if not utterances:
        raise DatasetError("no clips to build the long check recording from", "pass an evaluation set with clips")
    gap = np.zeros(int(LONG_GAP_SECONDS * SAMPLE_RATE), np.float32)
    pieces, texts, used = [], [], []
    total, i = 0, 0
    while total < minutes * 60 * SAMPLE_RATE:
        u = utterances[i % len(utterances)]
        audio = load_audio(u.audio)
        pieces += [audio, gap]
        texts.append(u.text)
        used.append(u)
        total += audio.size + gap.size
        i += 1
    labeled = all(t is not None for t in texts)
    inner = check_set(name, used[: len(utterances)])
    return CheckSet(name, [f"{name}/{len(used)}-clips"], [np.concatenate(pieces)],
                    [" ".join(texts)] if labeled else None, f"{inner.fingerprint}|{minutes}", BLOCK_SECONDS)


def unit_errors(check: CheckSet, targets: list[str], texts: list[str]) -> np.ndarray:
    """Word errors of ``texts`` against ``targets`` per paired unit: per
    recording, or, for a set scored in blocks, per block of its text (the
    reference words split evenly into one block per ``block_seconds`` of
    audio: about one decoding window each)."""
    if check.block_seconds is None:
        return np.array([e for e, _ in word_errors(targets, texts, check.languages)], dtype=np.float64)
    units = []
    for target, text, audio in zip(targets, texts, check.audio):
        per_word = errors_by_reference_word(target, text, check.language)
        blocks = max(1, min(len(per_word), int(np.ceil(audio.size / SAMPLE_RATE / check.block_seconds))))
        units += [float(part.sum()) for part in np.array_split(per_word, blocks)]
    return np.array(units, dtype=np.float64)


def increase_uncertainty(check: CheckSet, targets: list[str], dense: list[str], texts: list[str]) -> tuple[float, int]:
    """Standard error (points) of the increase ``WER(texts) - WER(dense)``
    against ``targets``, paired per unit (:func:`unit_errors`): both models
    are scored on the same units, so the spread of their per-unit
    differences is the sampling noise of the increase. Also returns the
    number of units (inf when there is only one)."""
    difference = unit_errors(check, targets, texts) - unit_errors(check, targets, dense)
    words = score(check.ids, targets, targets, languages=check.languages).words
    if difference.size < 2:
        return float("inf"), int(difference.size)
    return float(100.0 * np.sqrt(difference.size * difference.var(ddof=1)) / max(words, 1)), int(difference.size)


@dataclass
class SetResult:
    """One check set: per backend, WER (labeled sets), increase over dense and agreement."""

    name: str
    labeled: bool
    utterances: int
    words: int  # reference words (labeled) or dense-transcript words
    seconds_of_audio: float
    dense_wer: float | None
    wer: dict[str, float] = field(default_factory=dict)
    increase: dict[str, float] = field(default_factory=dict)
    #: standard error of each increase (points), paired per utterance, or
    #: per block of the long recording; ``units``: how many were paired
    increase_se: dict[str, float] = field(default_factory=dict)
    units: int = 0
    agreement: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: seconds the dense reference took; None when its transcripts came from the cache
    dense_seconds: float | None = None
    #: when the gate stopped early: the set's full size (``utterances`` and
    #: every figure then cover only the clips transcribed before the stop)
    stopped_of: int | None = None
    #: per backend whose windows were watched (:class:`WindowWatch`): windows
    #: decoded, on a trimmed context, and decoded again on 30 s
    windows: dict[str, dict[str, int]] = field(default_factory=dict)
    #: the set's language (None: not stated, English)
    language: str | None = None


@dataclass
class GateResult:
    """The gate's verdict over every set and backend; ``skipped``: sets not
    transcribed because an earlier one had failed (``stop_early``).

    ``multilingual``: whether the model speaks more than English (None: not
    said); ``not_installed``: the other languages' check sets a multilingual
    model was not checked on, with why; ``languages``: language detection
    and translation per set (:mod:`engines.validation.languages`)."""

    sets: list[SetResult]
    max_wer_increase: float
    max_disagreement: float
    failures: list[str]
    allowed_degradation: bool = False
    skipped: list[str] = field(default_factory=list)
    multilingual: bool | None = None
    not_installed: dict[str, str] = field(default_factory=dict)
    languages: list = field(default_factory=list)

    @property
    def checked_languages(self) -> list[str]:
        """The languages of the sets transcribed (English for sets that state none)."""
        return sorted({s.language or "en" for s in self.sets})

    @property
    def passed(self) -> bool:
        return not self.failures

    def margin_shortfalls(self, margin_se: float = MARGIN_SE) -> list[str]:
        """The labeled sets a backend passes by no more than ``margin_se``
        standard errors of its increase (failed sets included): a verdict
        within the sampling noise, which another draw of clips could flip."""
        short = []
        for s in self.sets:
            for name, increase in s.increase.items():
                se = s.increase_se.get(name, float("inf"))
                if increase + margin_se * se > self.max_wer_increase:
                    short.append(f"{s.name}: {increase:+.2f} ± {se:.2f} points ({name}), "
                                 f"limit {self.max_wer_increase:g}")
        return short

    @property
    def passed_with_margin(self) -> bool:
        """Passed, and by more than :data:`MARGIN_SE` standard errors on every
        labeled set, with nothing skipped."""
        return self.passed and not self.skipped and not self.margin_shortfalls()

    def to_dict(self) -> dict:
        data = asdict(self)
        data["passed"] = self.passed
        data["passed_with_margin"] = self.passed_with_margin
        data["margin_se"] = MARGIN_SE
        data["checked_languages"] = self.checked_languages
        return data

    def to_markdown(self, level: int = 2) -> list[str]:
        head = "#" * level
        lines = [f"{head} Quality gate: compressed against dense", "",
                 f"Limits: WER increase <= {self.max_wer_increase:g} points on sets with references, "
                 f"disagreement with the dense transcripts <= {self.max_disagreement:g} % on sets without. "
                 f"Verdict: **{'pass' if self.passed else 'FAIL'}**"
                 + (" (written anyway: `--allow-degradation`)" if self.allowed_degradation and not self.passed else ""),
                 "", "Increase: compressed minus dense WER in points, ± its standard error (paired per clip; "
                 f"the long recording per {BLOCK_SECONDS:g}-s block of its text).", "",
                 "| set | clips | minutes | backend | dense WER % | WER % | increase ± se | disagreement % "
                 "| seconds (dense / backend) |",
                 "|---|---:|---:|---|---:|---:|---:|---:|---:|"]
        for s in self.sets:
            for backend in s.agreement:
                dense = f"{s.dense_wer:.2f}" if s.dense_wer is not None else "-"
                wer = f"{s.wer[backend]:.2f}" if backend in s.wer else "-"
                inc = (f"{s.increase[backend]:+.2f} ± {s.increase_se.get(backend, float('inf')):.2f}"
                       if backend in s.increase else "-")
                clips = f"{s.utterances} of {s.stopped_of} (stopped)" if s.stopped_of else f"{s.utterances}"
                dense_s = "cached" if s.dense_seconds is None else f"{s.dense_seconds:.1f}"
                lines.append(f"| {s.name} | {clips} | {s.seconds_of_audio / 60:.1f} | {backend} | {dense} | "
                             f"{wer} | {inc} | {s.agreement[backend]:.2f} | {dense_s} / "
                             f"{s.seconds.get(backend, 0.0):.1f} |")
        watched = [(s.name, b, c) for s in self.sets for b, c in s.windows.items() if c["trimmed"]]
        if watched:
            lines += ["", "Trimmed audio contexts (auto): windows decoded again on 30 s after their trimmed "
                      f"decode failed (limit {100 * MAX_CONTEXT_RETRY_SHARE:g} % of a set's windows): "
                      + "; ".join(f"{n} {c['retried']} of {c['windows']} ({b})" for n, b, c in watched) + "."]
        lines += self._languages_markdown()
        if self.failures:
            lines += ["", "Failures:", ""] + [f"- {f}" for f in self.failures]
        if self.skipped:
            lines += ["", f"Not checked after the first failure: {', '.join(self.skipped)}."]
        return lines + [""]


    def _languages_markdown(self) -> list[str]:
        """Which languages were checked and which not (and why); detection and translation."""
        if self.multilingual is None:
            return []
        if not self.multilingual:
            return ["", "Languages: English only (an English-only model); other languages were not checked."]
        lines = ["", f"Languages checked: {', '.join(self.checked_languages)} (each set scored with its "
                 "language's normalizer and decoded with its language token, limit as above)."]
        if self.not_installed:
            lines += ["", "Not installed, so not checked:", ""]
            lines += [f"- {name}: {why}" for name, why in self.not_installed.items()]
        if self.languages:
            lines += ["", "Language detection (first window, as `--language auto`): how often the compressed model "
                      "names the language the dense one names, on the clips where dense names the set's language "
                      "(refused below the limit) and on every clip (reported); translation (`--task translate`): "
                      "WER of the compressed model's English against the dense model's (reported, not gated).", "",
                      "| set | language | clips | dense detects the set's language % | backend | kept % of clips "
                      "| agreement on all clips % | translation clips | translation disagreement % |",
                      "|---|---|---:|---:|---|---:|---:|---:|---:|"]
            for check in self.languages:
                lines += check.markdown_rows()
        return lines


class WindowWatch:
    """A runner's ``transcribe_detailed`` as the gate's transcriber, counting
    how its windows were decoded (:meth:`take` per set): the gate then sees
    a trimmed audio context that falls back to 30 s, which texts alone hide."""

    def __init__(self, transcribe_detailed: Callable[[list[np.ndarray]], list]) -> None:
        self._transcribe = transcribe_detailed
        self._counts = {"windows": 0, "trimmed": 0, "retried": 0}

    def __call__(self, audios: list[np.ndarray]) -> list[str]:
        transcripts = self._transcribe(audios)
        for transcript in transcripts:
            for window in transcript.windows:
                self._counts["windows"] += 1
                self._counts["trimmed"] += int(window.full_context_retry or window.audio_context < N_FRAMES)
                self._counts["retried"] += int(window.full_context_retry)
        return [t.text for t in transcripts]

    def take(self) -> dict[str, int]:
        """The counts since the last call."""
        counts, self._counts = self._counts, dict.fromkeys(self._counts, 0)
        return counts


def context_failures(result: SetResult, name: str) -> list[str]:
    """A fallback storm of ``name``'s trimmed contexts on ``result``'s set."""
    counts = result.windows.get(name)
    if not counts or not counts["trimmed"] or counts["retried"] <= MAX_CONTEXT_RETRY_SHARE * counts["windows"]:
        return []
    return [f"{result.name}: {counts['retried']} of {counts['windows']} windows decoded on a trimmed audio context "
            f"failed and were decoded again on 30 s ({name}; limit {100 * MAX_CONTEXT_RETRY_SHARE:g} %)"]


class TranscriptCache:
    """The dense model's transcripts of each check set, on disk: they depend
    only on the model, the decoding options and the recordings, so every
    export of one model after the first skips half the gate's work."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def _path(self, model_key: str, check: CheckSet) -> Path | None:
        if self.directory is None:
            return None
        key = hashlib.sha256(f"{model_key}|{check.fingerprint}".encode()).hexdigest()[:24]
        return self.directory / f"{check.name.replace('/', '_')}-{key}.json"

    def get(self, model_key: str, check: CheckSet) -> list[str] | None:
        path = self._path(model_key, check)
        if path is None or not path.is_file():
            return None
        try:
            texts = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return texts if isinstance(texts, list) and len(texts) == len(check.audio) else None

    def put(self, model_key: str, check: CheckSet, texts: list[str]) -> None:
        path = self._path(model_key, check)
        if path is None:
            return
        write_atomic(path, json.dumps(texts))


def compare(check: CheckSet, dense: list[str], hypotheses: dict[str, list[str]],
            seconds: dict[str, float]) -> SetResult:
    """WER, increase and agreement of each backend's transcripts on one set."""
    agreement = {name: score(check.ids, dense, texts, languages=check.languages).wer
                 for name, texts in hypotheses.items()}
    dense_words = sum(len(t.split()) for t in dense)
    result = SetResult(check.name, check.references is not None, len(check.ids), dense_words, check.seconds,
                       None, agreement={k: round(v, 3) for k, v in agreement.items()},
                       seconds={k: round(v, 2) for k, v in seconds.items()}, language=check.language)
    if check.references is not None:
        base = score(check.ids, check.references, dense, languages=check.languages)
        result.dense_wer, result.words = round(base.wer, 3), base.words
        for name, texts in hypotheses.items():
            wer = score(check.ids, check.references, texts, languages=check.languages).wer
            result.wer[name] = round(wer, 3)
            result.increase[name] = round(wer - base.wer, 3)
            se, result.units = increase_uncertainty(check, check.references, dense, texts)
            result.increase_se[name] = round(se, 3)
    return result


def _subset(check: CheckSet, count: int) -> CheckSet:
    references = check.references[:count] if check.references is not None else None
    return replace(check, ids=check.ids[:count], audio=check.audio[:count], references=references)


def transcribe_until_failed(check: CheckSet, dense: list[str], transcribe: TranscribeMany, max_wer_increase: float,
                            max_disagreement: float) -> tuple[list[str], str | None]:
    """Transcribe ``check`` in chunks of :data:`STOP_CHUNK` clips and stop
    once the set has failed whatever the remaining clips give: errors only
    add up, so when the errors so far, over all of the set's words, already
    pass the limit, no rest can bring it back. Returns the transcripts of
    the clips done and, when stopped, the failure (with that lower bound)."""
    labeled = check.references is not None
    targets = check.references if labeled else dense
    words = score(check.ids, targets, targets, languages=check.languages).words
    base = score(check.ids, check.references, dense, languages=check.languages).wer if labeled else 0.0
    limit = base + max_wer_increase if labeled else max_disagreement
    texts: list[str] = []
    errors = 0  # corpus errors add up clip by clip, so each chunk is scored once
    for start in range(0, len(check.audio), STOP_CHUNK):
        chunk = transcribe(check.audio[start:start + STOP_CHUNK])
        errors += score(check.ids[start:start + len(chunk)], targets[start:start + len(chunk)], chunk,
                        languages=check.languages[start:start + len(chunk)]).errors
        texts += chunk
        if len(texts) == len(check.audio):
            break
        bound = 100.0 * errors / max(words, 1)
        if bound > limit:
            what = (f"WER at least {bound:.2f} % against dense {base:.2f} % (limit +{max_wer_increase:g})" if labeled
                    else f"at least {bound:.2f} % of the dense transcript's words differ (limit {max_disagreement:g} %)")
            return texts, f"{what}, certain after {len(texts)} of {len(check.audio)} clips"
    return texts, None


def _failures(result: SetResult, name: str, max_wer_increase: float, max_disagreement: float) -> list[str]:
    """Why ``name`` fails on ``result``'s set (nothing when it passes)."""
    if result.labeled and result.increase[name] > max_wer_increase:
        return [f"{result.name}: WER {result.dense_wer:.2f} % dense -> {result.wer[name]:.2f} % {name} "
                f"(+{result.increase[name]:.2f} points, limit {max_wer_increase:g})"]
    if not result.labeled and result.agreement[name] > max_disagreement:
        return [f"{result.name}: {result.agreement[name]:.2f} % of the dense transcript's words differ "
                f"in {name} (limit {max_disagreement:g} %)"]
    return []


def run_gate(
    checks: Sequence[CheckSet],
    dense: TranscribeMany,
    backends: dict[str, TranscribeMany],
    model_key: str,
    cache: TranscriptCache | None = None,
    max_wer_increase: float = DEFAULT_MAX_WER_INCREASE,
    max_disagreement: float = DEFAULT_MAX_DISAGREEMENT,
    progress: Callable[[str], None] | None = None,
    stop_early: bool = False,
    stop_short_of_margin: float | None = None,
    set_language: Callable[[str | None], None] | None = None,
) -> GateResult:
    """Transcribe every set with the dense reference (or take its cached
    transcripts) and with each backend, compare, and judge.

    ``stop_early``: the verdict is all that matters (the export is refused
    on a failure), so a set stops as soon as its failure is certain and the
    sets after a failed one are skipped. A broken model then fails in a
    fraction of the time; its loops would otherwise make every window fall
    back through every temperature.

    ``stop_short_of_margin``: also skip the sets after one that passes by
    no more than this many standard errors (a default size that will be
    stepped up anyway).

    ``set_language``: called with each set's language before it is
    transcribed (None: not stated), to decode it with its language token
    (a multilingual model; the transcribers follow the setting)."""
    cache = cache or TranscriptCache(None)
    results: list[SetResult] = []
    failures: list[str] = []
    skipped: list[str] = []
    short = False
    for check in checks:
        if (stop_early and failures) or short:
            skipped.append(check.name)
            continue
        if set_language is not None:
            set_language(check.language)
        reference, dense_seconds = cache.get(model_key, check), None
        if reference is None:
            start = time.perf_counter()
            reference = dense(check.audio)
            dense_seconds = round(time.perf_counter() - start, 2)
            cache.put(model_key, check, reference)
        hypotheses, seconds, stops = {}, {}, {}
        for name, transcribe in backends.items():
            start = time.perf_counter()
            if stop_early:
                hypotheses[name], stops[name] = transcribe_until_failed(check, reference, transcribe,
                                                                        max_wer_increase, max_disagreement)
            else:
                hypotheses[name] = transcribe(check.audio)
            seconds[name] = time.perf_counter() - start
        done = min(len(t) for t in hypotheses.values()) if hypotheses else len(check.audio)
        subset = check if done == len(check.audio) else _subset(check, done)
        result = compare(subset, reference[:done], {k: v[:done] for k, v in hypotheses.items()}, seconds)
        result.dense_seconds = dense_seconds
        if done < len(check.audio):
            result.stopped_of = len(check.audio)
        result.windows = {name: t.take() for name, t in backends.items() if isinstance(t, WindowWatch)}
        results.append(result)
        for name in result.agreement:
            failures += ([f"{check.name}: {stops[name]} ({name})"] if stops.get(name)
                         else _failures(result, name, max_wer_increase, max_disagreement))
            failures += context_failures(result, name)
        if stop_short_of_margin is not None:
            probe = GateResult([result], max_wer_increase, max_disagreement, [])
            short = bool(probe.margin_shortfalls(stop_short_of_margin))
        if progress is not None:
            worst = max(result.agreement, key=result.agreement.get)
            wer = (f"WER {result.dense_wer:.2f} -> {result.wer[worst]:.2f} ({result.increase[worst]:+.2f} ± "
                   f"{result.increase_se[worst]:.2f})" if result.labeled else "no references")
            part = f" (stopped after {done} of {len(check.audio)} clips)" if done < len(check.audio) else ""
            progress(f"  {check.name}: {wer}, disagreement {result.agreement[worst]:.2f} % ({worst}){part}")
    return GateResult(results, max_wer_increase, max_disagreement, failures, skipped=skipped)
