"""Word and character error rates of a transcriber on an evaluation set.

Corpus-level WER (total errors / total reference words) and CER, computed
with jiwer after Whisper's text normalizers, chosen per item by its
language: the English normalizer for English (and items of no stated
language), the basic normalizer for every other language
(:func:`normalizer_for`). The normalizers come from the
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
from whisper_normalizer.basic import BasicTextNormalizer
from whisper_normalizer.english import EnglishTextNormalizer

from liteasr_export.core.errors import AudioError, DatasetError
from liteasr_export.core.frontend import load_audio
from liteasr_export.core.languages import NO_SPACE_LANGUAGES

#: the key of items whose language is not stated (scored as English)
UNSTATED = "unknown"


@lru_cache(maxsize=None)
def normalizer_for(language: str | None) -> Callable[[str], str]:
    """Whisper's normalizer for ``language`` (a code; None: not stated).

    English and unstated: ``EnglishTextNormalizer`` (lower case, numbers
    and currencies as digits, British spellings as American, fillers and
    punctuation out). Any other language: ``BasicTextNormalizer`` (lower
    case, text in brackets and parentheses out, punctuation and symbols to
    spaces) with ``remove_diacritics=True``: accents are dropped on both
    sides (NFKD, then the combining marks; "contraseña" and "contrasena",
    "numéro" and "numero" score as the same word). Reference transcripts
    often lose accents (the Spanish Asterisk prompts are written without
    them) and a missing accent is not a misheard word; the price is that
    words told apart only by an accent ("sí"/"si", "où"/"ou", "è"/"e")
    count as equal. Numbers are left as written: "1" and "uno" differ.
    ``split_letters`` stays off: languages written without spaces are
    scored by CER too (:func:`char_errors`)."""
    if language in (None, "en"):
        return EnglishTextNormalizer()
    return BasicTextNormalizer(remove_diacritics=True, split_letters=False)


def normalize(text: str, language: str | None = None) -> str:
    """Whisper's normalization of ``text`` for ``language`` (None: English):
    see :func:`normalizer_for`."""
    return normalizer_for(language)(text)


def char_errors(reference: str, hypothesis: str, language: str | None = None) -> tuple[int, int]:
    """(character errors, reference characters) on normalized text: edits
    over the characters, the single spaces between words included, except
    for languages written without spaces (``NO_SPACE_LANGUAGES``), whose
    spaces are dropped first (they are the normalizer's, not the text's)."""
    ref, hyp = normalize(reference, language), normalize(hypothesis, language)
    join = "" if language in NO_SPACE_LANGUAGES else " "
    ref, hyp = join.join(ref.split()), join.join(hyp.split())
    if not ref:
        return len(hyp), 0
    if not hyp:
        return len(ref), len(ref)
    m = jiwer.process_characters(ref, hyp)
    return m.substitutions + m.deletions + m.insertions, len(ref)


@dataclass
class EvalItem:
    audio: str
    reference: str
    hypothesis: str
    errors: int
    words: int
    error: str | None = None  # why the utterance could not be transcribed (then not scored)
    language: str | None = None  # the item's language (None: not stated, scored as English)
    char_errors: int = 0
    chars: int = 0


@dataclass
class LanguageResult:
    """The scores of one language's items."""

    wer: float  # percent
    cer: float  # percent
    n: int
    errors: int
    words: int
    char_errors: int
    chars: int
    failed: int = 0


@dataclass
class EvalResult:
    wer: float  # percent
    n: int
    errors: int
    words: int
    seconds: float
    items: list[EvalItem] = field(default_factory=list)
    failed: int = 0  # utterances that could not be transcribed (not in the WER)
    cer: float = 0.0  # percent, over every scored item
    languages: dict[str, LanguageResult] = field(default_factory=dict)  # by code (UNSTATED: none stated)

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """The per-language results as a text table, one row a language."""
        rows = [("language", "n", "words", "WER %", "CER %", "failed")]
        for code, r in sorted(self.languages.items()):
            rows.append((code, str(r.n), str(r.words), f"{r.wer:.2f}", f"{r.cer:.2f}", str(r.failed)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                         for row in rows)


def by_language(items: list[EvalItem]) -> dict[str, LanguageResult]:
    """The items' scores summed per language (an item with ``error`` counts
    as failed, not scored)."""
    out: dict[str, LanguageResult] = {}
    for item in items:
        r = out.setdefault(item.language or UNSTATED, LanguageResult(0.0, 0.0, 0, 0, 0, 0, 0))
        if item.error is not None:
            r.failed += 1
            continue
        r.n += 1
        r.errors, r.words = r.errors + item.errors, r.words + item.words
        r.char_errors, r.chars = r.char_errors + item.char_errors, r.chars + item.chars
    for r in out.values():
        r.wer, r.cer = 100.0 * r.errors / max(r.words, 1), 100.0 * r.char_errors / max(r.chars, 1)
    return out


def word_errors(references: list[str], hypotheses: list[str],
                languages: Sequence[str | None] | None = None) -> list[tuple[int, int]]:
    """(errors, reference words) per pair, on text normalized for the pair's
    language (``languages``: one per pair; None: English)."""
    out = []
    for i, (ref, hyp) in enumerate(zip(references, hypotheses)):
        language = languages[i] if languages is not None else None
        ref_n, hyp_n = normalize(ref, language), normalize(hyp, language)
        words = len(ref_n.split())
        if words == 0:
            out.append((len(hyp_n.split()), 0))
            continue
        m = jiwer.process_words(ref_n, hyp_n if hyp_n.strip() else "")
        out.append((m.substitutions + m.deletions + m.insertions, words))
    return out


def errors_by_reference_word(reference: str, hypothesis: str, language: str | None = None) -> np.ndarray:
    """Errors attributed to the words of the normalized ``reference`` (in
    ``language``; None: English): a substitution or deletion to its word, an
    insertion to the reference word it precedes (the last word at the end).
    Sums to the pair's word errors; lets one long recording be scored in
    pieces (by position in its text)."""
    ref_n, hyp_n = normalize(reference, language).split(), normalize(hypothesis, language).split()
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


def score(audio: list[str], references: list[str], hypotheses: list[str], seconds: float = 0.0,
          languages: Sequence[str | None] | None = None) -> EvalResult:
    """Corpus WER and CER of given transcripts, and per language
    (``languages``: one code per transcript, None where not stated; default
    all None, scored as English)."""
    languages = list(languages) if languages is not None else [None] * len(audio)
    counts = word_errors(references, hypotheses, languages)
    chars = [char_errors(r, h, lang) for r, h, lang in zip(references, hypotheses, languages)]
    items = [EvalItem(a, r, h, e, w, None, lang, ce, c)
             for a, r, h, (e, w), lang, (ce, c) in zip(audio, references, hypotheses, counts, languages, chars)]
    errors, words = sum(e for e, _ in counts), sum(w for _, w in counts)
    cer = 100.0 * sum(e for e, _ in chars) / max(sum(c for _, c in chars), 1)
    return EvalResult(100.0 * errors / max(words, 1), len(items), errors, words, seconds, items,
                      cer=cer, languages=by_language(items))


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
             chunk: int = 32, language: str | None = None) -> EvalResult:
    """Transcribe every utterance (``.audio`` path, ``.text`` reference) and score.

    Each item is scored in its ``.language`` (where the utterance has one),
    else in ``language`` (None: English); see :func:`normalizer_for`.

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
    languages = [getattr(u, "language", None) or language for u in utterances]
    result = score([utterances[i].audio for i in done], [utterances[i].text for i in done],
                   [hypotheses[i] for i in done], seconds, [languages[i] for i in done])
    if failures:
        scored = iter(result.items)
        result.items = [EvalItem(u.audio, u.text, "", 0, 0, failures[i], languages[i]) if i in failures
                        else next(scored) for i, u in enumerate(utterances)]
        result.failed = len(failures)
        result.languages = by_language(result.items)
    return result


def merge(parts: Sequence[tuple[Sequence[int], EvalResult]]) -> EvalResult:
    """One result from the results of disjoint groups of one evaluation set
    (each given with the set positions of its items, e.g. the set decoded
    one language at a time): items back in set order, totals summed."""
    placed = sorted((index, item) for indices, part in parts for index, item in zip(indices, part.items))
    items = [item for _, item in placed]
    scored = [item for item in items if item.error is None]
    errors, words = sum(i.errors for i in scored), sum(i.words for i in scored)
    char_errors, chars = sum(i.char_errors for i in scored), sum(i.chars for i in scored)
    return EvalResult(100.0 * errors / max(words, 1), len(scored), errors, words,
                      sum(part.seconds for _, part in parts), items, len(items) - len(scored),
                      100.0 * char_errors / max(chars, 1), by_language(items))
