"""Word error rate of a transcriber on an evaluation set.

Corpus-level WER (total errors / total reference words) after Whisper's
English text normalizer, computed with jiwer. The normalizer comes from the
``whisper-normalizer`` package (OpenAI's code with its British-to-American
spelling table) rather than transformers' copy, which ships without that
table and would pull transformers onto the torch-free ONNX Runtime path.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import jiwer
import numpy as np
from tqdm import tqdm
from whisper_normalizer.english import EnglishTextNormalizer

from liteasr_export.core.errors import AudioError, DatasetError
from liteasr_export.core.frontend import load_audio


@lru_cache(maxsize=1)
def _normalizer():
    return EnglishTextNormalizer()


def normalize(text: str) -> str:
    """Whisper's English normalization (lower case, numbers, punctuation)."""
    return _normalizer()(text)


@dataclass
class EvalItem:
    audio: str
    reference: str
    hypothesis: str
    errors: int
    words: int
    error: str | None = None  # why the utterance could not be transcribed (then not scored)


@dataclass
class EvalResult:
    wer: float  # percent
    n: int
    errors: int
    words: int
    seconds: float
    items: list[EvalItem] = field(default_factory=list)
    failed: int = 0  # utterances that could not be transcribed (not in the WER)

    def to_dict(self) -> dict:
        return asdict(self)


def word_errors(references: list[str], hypotheses: list[str]) -> list[tuple[int, int]]:
    """(errors, reference words) per pair, on normalized text."""
    out = []
    for ref, hyp in zip(references, hypotheses):
        ref_n, hyp_n = normalize(ref), normalize(hyp)
        words = len(ref_n.split())
        if words == 0:
            out.append((len(hyp_n.split()), 0))
            continue
        m = jiwer.process_words(ref_n, hyp_n if hyp_n.strip() else "")
        out.append((m.substitutions + m.deletions + m.insertions, words))
    return out


def errors_by_reference_word(reference: str, hypothesis: str) -> np.ndarray:
    """Errors attributed to the words of the normalized ``reference``: a
    substitution or deletion to its word, an insertion to the reference word
    it precedes (the last word at the end). Sums to the pair's word errors;
    lets one long recording be scored in pieces (by position in its text)."""
    ref_n, hyp_n = normalize(reference).split(), normalize(hypothesis).split()
    counts = np.zeros(max(len(ref_n), 1), dtype=np.int64)
    if not ref_n:
        counts[0] = len(hyp_n)
        return counts
    if not hyp_n:
        return counts + 1
    for chunk in jiwer.process_words(" ".join(ref_n), " ".join(hyp_n)).alignments[0]:
        if chunk.type in ("substitute", "delete"):
            counts[chunk.ref_start_idx:chunk.ref_end_idx] += 1
        elif chunk.type == "insert":
            counts[min(chunk.ref_start_idx, len(ref_n) - 1)] += chunk.hyp_end_idx - chunk.hyp_start_idx
    return counts


def score(audio: list[str], references: list[str], hypotheses: list[str], seconds: float = 0.0) -> EvalResult:
    """Corpus WER of given transcripts."""
    counts = word_errors(references, hypotheses)
    items = [EvalItem(a, r, h, e, w) for a, r, h, (e, w) in zip(audio, references, hypotheses, counts)]
    errors, words = sum(e for e, _ in counts), sum(w for _, w in counts)
    return EvalResult(100.0 * errors / max(words, 1), len(items), errors, words, seconds, items)


def with_references(utterances: Iterable, source: str) -> list:
    """The utterances that have a reference text; :class:`DatasetError` when
    none has (``source`` names them in the message): a WER over no reference
    is no result."""
    utterances = list(utterances)
    labeled = [u for u in utterances if u.text is not None]
    if not labeled:
        raise DatasetError(f"{source} has no reference transcripts ({len(utterances)} recording(s), none with a "
                           "text), so there is no word error rate to compute",
                           'evaluate a .jsonl manifest with one {"audio": "a.wav", "text": "what is said"} per line, '
                           "or transcribe the recordings with liteasr-transcribe")
    return labeled


def evaluate(transcribe: Callable[[np.ndarray], str], utterances: Iterable, progress: bool = True,
             audio: Sequence[np.ndarray] | None = None, keep_going: bool = False,
             transcribe_many: Callable[[list[np.ndarray]], list[str]] | None = None,
             chunk: int = 32) -> EvalResult:
    """Transcribe every utterance (``.audio`` path, ``.text`` reference) and score.

    ``audio``: the utterances' samples, already decoded (to compare several
    backends on one decode); the time then covers transcription only.
    ``keep_going``: an utterance whose audio cannot be used (AudioError) is
    recorded as an item with ``error`` and left out of the WER, instead of
    ending the evaluation; ``failed`` counts them.
    ``transcribe_many``: transcribe ``chunk`` recordings per call instead
    (their windows are batched together: see ``WindowedTranscriber``)."""
    utterances = with_references(utterances, "the utterances given")
    if audio is not None and len(audio) != len(utterances):
        raise ValueError(f"{len(audio)} decoded clips for {len(utterances)} utterances")
    hypotheses: list[str | None] = [None] * len(utterances)
    failures: dict[int, str] = {}
    start = time.perf_counter()
    many = transcribe_many if transcribe_many is not None else (lambda clips: [transcribe(a) for a in clips])
    step = chunk if transcribe_many is not None else 1
    with tqdm(total=len(utterances), desc="transcribing", unit="utt", disable=not progress, leave=False) as bar:
        for first in range(0, len(utterances), step):
            indices, samples = [], []
            for index in range(first, min(first + step, len(utterances))):
                try:
                    samples.append(audio[index] if audio is not None else load_audio(utterances[index].audio))
                    indices.append(index)
                except AudioError as exc:
                    if not keep_going:
                        raise
                    failures[index] = str(exc)
            try:
                texts = many(samples)
            except AudioError:
                if not keep_going:
                    raise
                texts = []  # a bad recording in the chunk: find it one by one
                for index, sample in zip(indices, samples):
                    try:
                        texts.append(many([sample])[0])
                    except AudioError as one:
                        failures[index] = str(one)
                        texts.append(None)
            for index, text in zip(indices, texts):
                if index not in failures:
                    hypotheses[index] = text
            bar.update(min(step, len(utterances) - first))
    seconds = time.perf_counter() - start
    done = [i for i in range(len(utterances)) if i not in failures]
    result = score([utterances[i].audio for i in done], [utterances[i].text for i in done],
                   [hypotheses[i] for i in done], seconds)
    if failures:
        scored = iter(result.items)
        result.items = [EvalItem(u.audio, u.text, "", 0, 0, failures[i]) if i in failures else next(scored)
                        for i, u in enumerate(utterances)]
        result.failed = len(failures)
    return result
