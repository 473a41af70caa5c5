"""Decoding shared by every backend (numpy only).

A backend supplies a :class:`DecoderStep`: it holds its own KV cache, maps
the newest tokens to next-token logits and reorders its rows (beam search).
Everything else lives here once, so PyTorch, ONNX Runtime and TensorRT
decode identically:

* the logit rules: suppressed tokens, suppressed blanks at the start and
  openai-whisper's timestamp rules (``ApplyTimestampRules``);
* greedy decoding, beam search (with patience and length penalty) and
  best-of-N sampling at a temperature, ranked like openai-whisper's
  ``MaximumLikelihoodRanker``;
* the no-speech probability and language detection, both read from the
  logits at the ``<|startoftranscript|>`` position;
* the temperature fallback of openai-whisper's ``transcribe`` (compression
  ratio, average log-probability and no-speech thresholds), batched: only the
  windows that fail are decoded again.

Written here rather than taken from openai-whisper (torch-only, one decode
per call) or faster-whisper (inside CTranslate2): the runtime path must stay
numpy-only and drive any backend's decoder. The semantics follow
openai-whisper's ``decoding.py`` and ``transcribe.py``; where all
temperatures fail, the choice among the attempts follows faster-whisper.
"""

from __future__ import annotations

import json
import math
import zlib
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from liteasr_export.core.choices import check_value
from liteasr_export.core.errors import LiteASRError

#: openai-whisper's sample_len: at most this many new tokens per 30 s window
DEFAULT_MAX_NEW_TOKENS = 224
#: openai-whisper's max_initial_timestamp (1.0 s) in 20 ms timestamp steps
DEFAULT_MAX_INITIAL_TIMESTAMP_INDEX = 50
#: seconds per timestamp token (30 s / 1500 encoder positions)
TIME_PRECISION = 0.02
#: openai-whisper's and faster-whisper's fallback temperatures
DEFAULT_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass(frozen=True)
class DecodingOptions:
    """The token-level rules of one decode, as plain data (also written to
    manifest.json, where C++ reads them).

    ``timestamps``: apply openai-whisper's timestamp rules (the prompt then
    has no ``<|notimestamps|>``); ``timestamp_begin`` is ``<|0.00|>``.
    ``sot`` / ``no_speech``: the no-speech probability is read at the
    position of ``sot`` in the prompt. ``language_tokens``: the candidates of
    language detection (empty for English-only models).
    """

    prompt: list[int]
    eot: int
    suppress: list[int] = field(default_factory=list)
    suppress_begin: list[int] = field(default_factory=list)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    sot: int | None = None
    no_speech: int | None = None
    no_timestamps: int | None = None
    timestamp_begin: int | None = None
    timestamps: bool = False
    max_initial_timestamp_index: int | None = DEFAULT_MAX_INITIAL_TIMESTAMP_INDEX
    language_tokens: list[int] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "DecodingOptions":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @property
    def sot_index(self) -> int | None:
        """Position of ``<|startoftranscript|>`` in the prompt (None: unknown)."""
        return self.prompt.index(self.sot) if self.sot is not None and self.sot in self.prompt else None


def build_options(
    tokenizer: "WhisperTokenizer",  # noqa: F821  (only the attributes are used)
    vocab_size: int,
    suppress_ids: Sequence[int],
    suppress_begin_ids: Sequence[int],
    language: str | None = "en",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    task: str = "transcribe",
    timestamps: bool = False,
) -> DecodingOptions:
    """Options for one language, task and timestamp mode.

    Suppressed: the model's own non-speech list (its ids below
    <|endoftext|>) and every special token after <|endoftext|> (task,
    language, <|nospeech|>...), except the timestamp tokens when
    ``timestamps`` (the timestamp rules govern those and <|notimestamps|>).
    ``suppress_ids`` may be an earlier options' ``suppress`` list: its special
    ids are recomputed here."""
    timestamp_begin = tokenizer.no_timestamps + 1  # <|0.00|> follows <|notimestamps|> in every Whisper vocabulary
    specials = set(range(tokenizer.eot + 1, timestamp_begin if timestamps else vocab_size))
    if timestamps:
        specials.discard(tokenizer.no_timestamps)  # the rules suppress it; keep the list what the mode allows
    suppress = {int(i) for i in suppress_ids if 0 <= i < tokenizer.eot} | specials
    language_tokens = sorted(tokenizer.language_ids.values()) if tokenizer.is_multilingual else []
    return DecodingOptions(
        prompt=tokenizer.prompt(language, task=task, timestamps=timestamps),
        eot=tokenizer.eot,
        suppress=sorted(suppress),
        suppress_begin=sorted(set(int(i) for i in suppress_begin_ids if 0 <= i < vocab_size)),
        max_new_tokens=max_new_tokens,
        sot=tokenizer.sot,
        no_speech=tokenizer.no_speech,
        no_timestamps=tokenizer.no_timestamps,
        timestamp_begin=timestamp_begin,
        timestamps=timestamps,
        language_tokens=language_tokens,
    )


class DecoderStep(Protocol):
    """One backend's decoder over one batch of encoded windows."""

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """Feed ``tokens`` (B, T) int64 after everything fed before; return the
        logits of the last position, (B, vocab) float."""
        ...

    def reorder(self, rows: np.ndarray) -> None:
        """Row ``i`` becomes what row ``rows[i]`` was (self-attention cache
        and encoder outputs alike); the number of rows may change. Used to
        expand windows into beams, keep the surviving beams, and pick the
        windows a fallback decodes again."""
        ...


class RowOwners:
    """Which encoded window each decoder row reads, and which windows the
    encoder-side tensors (cross K/V) hold, one per cross row. A step's
    ``reorder`` asks it which cross rows to gather, if any: none when beams
    of one window swap places (every step of a beam search).

    ``shared``: the decoder graph lets a window's rows share one copy
    (:func:`liteasr_export.core.graphs.shares_cross`): row ``r`` reads cross row
    ``r // (rows / windows)``. Rows grouped window by window in equal numbers
    (beams, samples) then need each window once, and expanding into beams
    gathers nothing; any other layout falls back to one copy per row, which
    the same graph also takes."""

    def __init__(self, n_rows: int, shared: bool = False) -> None:
        self.owners = np.arange(n_rows)
        self.cross_windows = self.owners
        self.shared = shared
        self.owns_cross = False  # the cross tensors came from the caller, who may pass them to another step

    def gather(self, cross: list, index: np.ndarray, take: Callable[[Any, np.ndarray], Any]) -> list:
        """The cross tensors (numpy arrays or torch tensors, cross rows
        first) after :meth:`reorder` returned ``index``. When the rows only
        shrink, each kept row that lies beyond the new end moves into a
        freed row, in place, and the tensors become views of their first
        rows: a window leaving the batch copies one window, not all.
        ``take(tensor, index)`` gathers into a new tensor otherwise, and the
        first time a row has to move: the caller's tensors are never
        written."""
        size = len(index)
        moves = [(row, int(source)) for row, source in enumerate(index.tolist()) if row != source]
        if moves and not (self.owns_cross and all(source >= size for _, source in moves)):
            self.owns_cross = True
            return [take(tensor, index) for tensor in cross]
        for tensor in cross:  # the last windows left (views only), or kept ones move into freed rows
            for row, source in moves:
                tensor[row] = tensor[source]
        return [tensor[:size] for tensor in cross]

    def reorder(self, rows: np.ndarray) -> np.ndarray | None:
        """Row ``i`` becomes what row ``rows[i]`` was; returns the cross rows
        to gather (indices into the current ones), or None to keep them."""
        self.owners = self.owners[np.asarray(rows, dtype=np.int64)]
        target = self.owners
        if self.shared and len(target):
            windows = target[np.sort(np.unique(target, return_index=True)[1])]  # in order of appearance
            group = len(target) // len(windows)
            if np.array_equal(target, np.repeat(windows, group)):
                target = windows
        if np.array_equal(target, self.cross_windows):
            return None
        position = {int(w): i for i, w in reversed(list(enumerate(self.cross_windows.tolist())))}
        self.cross_windows = target
        return np.asarray([position[int(w)] for w in target], dtype=np.int64)


def fill_from_tail(leaving: np.ndarray) -> np.ndarray:
    """Positions that stay when those marked ``leaving`` go, in their new
    order: the gaps are filled, in order, by the staying positions beyond the new
    end, the others keep their place. Then only the movers' cross K/V are
    copied (:meth:`RowOwners.gather`), not every staying window's."""
    leaving = np.asarray(leaving, dtype=bool)
    size = int((~leaving).sum())
    order = np.arange(size)
    gaps = np.flatnonzero(leaving[:size])
    order[gaps] = np.flatnonzero(~leaving[size:]) + size
    return order


# ---------------------------------------------------------------- logit rules

def _logsumexp(x: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp; -inf for rows that are all -inf."""
    top = x.max(axis=-1)
    safe = np.where(np.isfinite(top), top, 0.0)
    shifted = np.subtract(x, safe[:, None])
    np.exp(shifted, out=shifted)  # in place: one temporary of the logits' size per step, not two
    with np.errstate(divide="ignore"):
        return np.log(shifted.sum(axis=-1)) + safe


def log_softmax(x: np.ndarray) -> np.ndarray:
    return x - _logsumexp(x)[:, None]


def apply_rules(logits: np.ndarray, history: np.ndarray, last_timestamp: np.ndarray, options: DecodingOptions) -> None:
    """openai-whisper's logit filters, in place, in its order: blanks at the
    first step (SuppressBlank), the suppress list (SuppressTokens), then the
    timestamp rules (ApplyTimestampRules). ``history``: the tokens sampled so
    far per row, (rows, steps); ``last_timestamp``: each row's last
    timestamp token, or -1."""
    first = history.shape[1] == 0
    if first and options.suppress_begin:
        logits[:, options.suppress_begin] = -np.inf
    if options.suppress:
        logits[:, options.suppress] = -np.inf
    if not options.timestamps:
        return
    begin = options.timestamp_begin
    if options.no_timestamps is not None:
        logits[:, options.no_timestamps] = -np.inf
    if first:
        logits[:, :begin] = -np.inf  # a window starts with a timestamp
        if options.max_initial_timestamp_index is not None:
            logits[:, begin + options.max_initial_timestamp_index + 1:] = -np.inf
    else:
        # timestamps come in pairs (start, end), except a single one right before <|endoftext|>
        last_is = history[:, -1] >= begin
        penultimate_is = history[:, -2] >= begin if history.shape[1] >= 2 else np.ones_like(last_is)
        for row in np.flatnonzero(last_is & penultimate_is):
            logits[row, begin:] = -np.inf  # after a pair: text
        for row in np.flatnonzero(last_is & ~penultimate_is):
            logits[row, : options.eot] = -np.inf  # after a single one: its partner or the end
        # timestamps never decrease, and a segment has a nonzero length
        for row in np.flatnonzero(last_timestamp >= 0):
            limit = last_timestamp[row] + (0 if last_is[row] and not penultimate_is[row] else 1)
            logits[row, begin:limit] = -np.inf
    # when timestamps together are likelier than any text token, sample a timestamp
    # (log-softmax's normalizer cancels from both sides, so raw logits compare the same)
    text_best = logits[:, :begin].max(axis=-1)
    for row in np.flatnonzero(_logsumexp(logits[:, begin:]) > text_best):
        logits[row, :begin] = -np.inf


# ---------------------------------------------------------------- one decode

@dataclass
class Hypothesis:
    """The decode of one window at one temperature."""

    tokens: list[int]  # without the prompt and <|endoftext|>
    sum_logprob: float
    no_speech_prob: float = float("nan")
    language_token: int | None = None  # detected, when asked to
    language_probability: float | None = None

    @property
    def avg_logprob(self) -> float:
        return self.sum_logprob / (len(self.tokens) + 1)  # openai-whisper counts <|endoftext|>


def _rank(candidates: list[tuple[list[int], float]], length_penalty: float | None) -> int:
    """Index of the best candidate: log-probability over length, or over
    Google NMT's ((5 + length) / 6) ** alpha (openai-whisper's ranker)."""
    scores = []
    for tokens, logprob in candidates:
        length = len(tokens)
        penalty = length if length_penalty is None else ((5 + length) / 6) ** length_penalty
        scores.append(logprob / penalty if penalty else (-np.inf if logprob < 0 else np.inf))
    return int(np.argmax(scores))


def _sample(logits: np.ndarray, temperature: float, uniform: np.ndarray) -> np.ndarray:
    """One token per row from softmax(logits / temperature), by inverse CDF on
    the given uniforms (one per row)."""
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    cdf = np.cumsum(probs, axis=-1)
    picks = [int(np.searchsorted(row, u * row[-1], side="right")) for row, u in zip(cdf, uniform)]
    return np.minimum(np.asarray(picks, dtype=np.int64), logits.shape[1] - 1)


def _likeliest_language(at_sot: np.ndarray, options: DecodingOptions) -> tuple[np.ndarray, np.ndarray]:
    """Per row of the logits at <|startoftranscript|>: the likeliest language
    token and its probability among the language tokens (openai-whisper's
    ``detect_language``)."""
    candidates = np.asarray(options.language_tokens)
    language_probs = np.exp(log_softmax(np.asarray(at_sot)[:, candidates].astype(np.float64)))
    best = np.argmax(language_probs, axis=-1)
    return candidates[best], language_probs[np.arange(len(best)), best]


def detect_language(step: DecoderStep, prompts: np.ndarray, options: DecodingOptions) -> tuple[np.ndarray, np.ndarray]:
    """The language of each window of a decoder ``step`` as ``--language
    auto`` detects it, for one decoder call: the prompts fed up to and
    including <|startoftranscript|>; returns the language tokens and their
    probabilities. A multilingual model's options only (``language_tokens``)."""
    sot = options.sot_index
    if sot is None or not options.language_tokens:
        raise ValueError("language detection needs a multilingual model's decoding options")
    return _likeliest_language(np.asarray(step(np.asarray(prompts)[:, : sot + 1]), dtype=np.float32), options)


def _first_call(step: DecoderStep, prompts: np.ndarray, options: DecodingOptions,
                detect: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, list]:
    """Feed the prompts. When the no-speech probability or the language is
    wanted, the prompt is fed in two calls, up to and including
    <|startoftranscript|> and then the rest: the logits at that position give
    both (openai-whisper reads them from the same position), and a detected
    language token is written into the rest. Returns the logits of the last
    position, the prompts as fed, no-speech probabilities, language tokens
    and their probabilities (None where not detected)."""
    rows = prompts.shape[0]
    no_speech = np.full(rows, np.nan)
    languages: list = [None] * rows
    probabilities: list = [None] * rows
    sot = options.sot_index
    wants_language = detect is not None and bool(np.any(detect)) and bool(options.language_tokens)
    if sot is None or (options.no_speech is None and not wants_language):
        return step(prompts), prompts, no_speech, languages, probabilities
    at_sot = np.asarray(step(prompts[:, : sot + 1]), dtype=np.float32)
    probs = np.exp(log_softmax(at_sot.astype(np.float64)))
    if options.no_speech is not None and options.no_speech < probs.shape[1]:
        no_speech = probs[:, options.no_speech]
    if wants_language:
        prompts = prompts.copy()
        tokens, chances = _likeliest_language(at_sot, options)
        for row in np.flatnonzero(detect):
            languages[row], probabilities[row] = int(tokens[row]), float(chances[row])
            prompts[row, sot + 1] = tokens[row]  # the language token follows <|startoftranscript|>
    rest = prompts[:, sot + 1:]
    logits = step(rest) if rest.shape[1] else at_sot
    return logits, prompts, no_speech, languages, probabilities


def search(
    step: DecoderStep,
    prompts: np.ndarray,
    options: DecodingOptions,
    *,
    beam_size: int = 1,
    patience: float = 1.0,
    length_penalty: float | None = None,
    temperature: float = 0.0,
    best_of: int = 1,
    rngs: Sequence[np.random.Generator] | None = None,
    detect: np.ndarray | None = None,
) -> list[Hypothesis]:
    """Decode a batch of windows (one row of ``prompts`` each): greedy
    (``temperature`` 0, ``beam_size`` 1), beam search (``temperature`` 0) or
    the best of ``best_of`` samples (``temperature`` > 0, drawn from each
    window's generator in ``rngs``, so a window's result does not depend on
    the rest of the batch). ``detect``: windows whose language is detected
    and written into their prompt (multilingual models).

    A window leaves the batch as soon as its result is final (its rows
    ended, or its beam search has its candidates), through ``step.reorder``:
    a batch costs the sum of its windows' lengths, not its longest times its
    size, and each window's result is the one it gets when decoded alone."""
    prompts = np.asarray(prompts, dtype=np.int64)
    n_windows = prompts.shape[0]
    sampling = temperature > 0
    if sampling and (rngs is None or len(rngs) != n_windows):
        raise ValueError("sampling needs one random generator per window")
    beam = not sampling and beam_size > 1
    group = best_of if sampling else beam_size
    logits, prompts, no_speech, languages, probabilities = _first_call(step, prompts, options, detect)
    logits = np.asarray(logits, dtype=np.float32)
    if group > 1:
        expand = np.repeat(np.arange(n_windows), group)
        step.reorder(expand)
        logits = logits[expand]
    rows = n_windows * group
    live = np.arange(n_windows)  # windows still decoding, in row order, ``group`` rows each
    history = np.zeros((rows, 0), dtype=np.int64)
    last_timestamp = np.full(rows, -1, dtype=np.int64)
    sum_logprobs = np.zeros(rows)
    finished = np.zeros(rows, dtype=bool)
    # beam search state (openai-whisper's BeamSearchDecoder): finished candidates per window
    max_candidates = max(1, round(beam_size * patience))
    done: list[dict[tuple, float]] = [{} for _ in range(n_windows)]
    prefix = np.repeat(np.arange(n_windows), group)  # rows with equal ids hold equal sequences
    next_prefix = n_windows
    timestamp_begin = options.timestamp_begin if options.timestamp_begin is not None else np.iinfo(np.int64).max
    next_tokens = np.zeros(rows, dtype=np.int64)  # fed back from the second step on
    outcomes: dict[int, list[tuple[list[int], float]]] = {}  # candidates of windows that left the batch

    def candidates_of(position: int) -> list[tuple[list[int], float]]:
        """The final candidates of the window at ``position`` in ``live``."""
        window, block = int(live[position]), range(position * group, (position + 1) * group)
        if beam:
            pairs = dict(done[window])
            if len(pairs) < beam_size:  # not enough finished: add the live beams, best first
                for row in sorted(block, key=lambda r: sum_logprobs[r], reverse=True):
                    pairs.setdefault(tuple(history[row].tolist()), float(sum_logprobs[row]))
                    if len(pairs) >= beam_size:
                        break
            return [(list(seq), lp) for seq, lp in pairs.items()]
        out = []
        for row in block:
            seq = history[row].tolist()
            out.append((seq[: seq.index(options.eot)] if options.eot in seq else seq, float(sum_logprobs[row])))
        return out

    for index in range(options.max_new_tokens):
        if index:
            logits = np.asarray(step(next_tokens[:, None]), dtype=np.float32)
        logits = np.array(logits, dtype=np.float32, copy=True)
        apply_rules(logits, history, last_timestamp, options)
        normalizer = _logsumexp(logits)  # log-probabilities are logits minus this (no full log-softmax needed)
        source = np.arange(rows)
        if not beam:
            if sampling:
                uniform = np.concatenate([rngs[w].random(group) for w in live])
                next_tokens = _sample(logits, temperature, uniform)
            else:
                next_tokens = logits.argmax(axis=-1)
            chosen = logits[np.arange(rows), next_tokens] - normalizer
            sum_logprobs += np.where(finished, 0.0, chosen)
            next_tokens[finished] = options.eot
            finished |= next_tokens == options.eot
            history = np.concatenate([history, next_tokens[:, None]], axis=1)
            last_timestamp = np.where(next_tokens >= timestamp_begin, next_tokens, last_timestamp)
            complete = finished.reshape(-1, group).all(axis=1)
        else:
            # beam search: each beam proposes its beam_size + 1 likeliest tokens
            # (partitioned for the largest in place of the smallest of -logits: no negated copy of the logits)
            top = np.argpartition(logits, -(beam_size + 1), axis=-1)[:, -(beam_size + 1):]
            top_logprobs = np.take_along_axis(logits, top, axis=-1) - normalizer[:, None]
            sources, tokens, scores = [], [], []
            for position, window in enumerate(live.tolist()):
                candidates: dict[tuple[int, int], tuple[float, int]] = {}
                for row in range(position * group, (position + 1) * group):
                    for token, logprob in zip(top[row].tolist(), top_logprobs[row].tolist()):
                        candidates[(int(prefix[row]), token)] = (sum_logprobs[row] + logprob, row)
                saved, finished_now = 0, {}
                for key in sorted(candidates, key=lambda k: candidates[k][0], reverse=True):
                    score, row = candidates[key]
                    if key[1] == options.eot:
                        finished_now[tuple(history[row].tolist())] = score
                        continue
                    sources.append(row)
                    tokens.append(key[1])
                    scores.append(score)
                    saved += 1
                    if saved == beam_size:
                        break
                for sequence in sorted(finished_now, key=finished_now.get, reverse=True):
                    if len(done[window]) >= max_candidates:
                        break
                    done[window][sequence] = finished_now[sequence]
            source = np.asarray(sources, dtype=np.int64)
            next_tokens = np.asarray(tokens, dtype=np.int64)
            sum_logprobs = np.asarray(scores, dtype=np.float64)
            history = np.concatenate([history[source], next_tokens[:, None]], axis=1)
            last_timestamp = np.where(next_tokens >= timestamp_begin, next_tokens, last_timestamp[source])
            prefix = np.arange(next_prefix, next_prefix + rows)
            next_prefix += rows
            # complete: the window's candidates are final (with patience < 1 its live beams join them now,
            # as when it is decoded alone: a window's result does not depend on the rest of the batch)
            complete = np.asarray([len(done[w]) >= max_candidates for w in live])
        if complete.all():
            break
        if complete.any():
            # a finished window leaves the batch: later steps no longer compute its rows
            for position in np.flatnonzero(complete):
                outcomes[int(live[position])] = candidates_of(int(position))
            stay = fill_from_tail(complete)
            keep = (stay[:, None] * group + np.arange(group)).ravel()
            source, history, last_timestamp = source[keep], history[keep], last_timestamp[keep]
            next_tokens, sum_logprobs, finished, prefix = next_tokens[keep], sum_logprobs[keep], finished[keep], prefix[keep]
            live, rows = live[stay], len(keep)
        if len(source) != len(logits) or not np.array_equal(source, np.arange(len(source))):
            step.reorder(source)

    for position in range(len(live)):
        outcomes[int(live[position])] = candidates_of(position)
    results = []
    for window in range(n_windows):
        pairs = outcomes[window]
        best = _rank(pairs, length_penalty) if len(pairs) > 1 else 0
        results.append(Hypothesis(pairs[best][0], pairs[best][1], float(no_speech[window]),
                                  languages[window], probabilities[window]))
    return results


def greedy_decode(step: DecoderStep, batch_size: int, options: DecodingOptions) -> list[list[int]]:
    """Greedy decoding of a batch; returns the new tokens of each sequence
    without the prompt and without <|endoftext|>."""
    prompts = np.tile(np.asarray(options.prompt, dtype=np.int64), (batch_size, 1))
    return [h.tokens for h in search(step, prompts, options)]


# ---------------------------------------------------------------- fallback

def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression (openai-whisper's
    repetition measure: a loop compresses well)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class SearchOptions:
    """How windows are searched and when they are decoded again, with
    openai-whisper's defaults (beam size 5 as its CLI and faster-whisper).

    ``temperatures``: tried in turn while a window fails a threshold; the
    first is 0 (greedy or beam search), later ones sample ``best_of``
    candidates with a generator seeded from ``seed`` and the window.
    A threshold of None disables its check."""

    beam_size: int = 5
    patience: float = 1.0
    length_penalty: float | None = None
    temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES
    best_of: int = 5
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    seed: int = 0

    @classmethod
    def greedy(cls) -> "SearchOptions":
        """One greedy pass, no fallback and no no-speech skipping."""
        return cls(beam_size=1, temperatures=(0.0,), compression_ratio_threshold=None,
                   logprob_threshold=None, no_speech_threshold=None)

    def without_fallback(self) -> "SearchOptions":
        """These search settings decoded once at temperature 0, every window kept."""
        return replace(self, temperatures=(0.0,), compression_ratio_threshold=None,
                       logprob_threshold=None, no_speech_threshold=None)

    def check(self) -> None:
        """Every number in range; an error names the field (``beam_size``)."""
        check_value(self.beam_size, "beam_size", "count")
        check_value(self.best_of, "best_of", "count")
        if not (isinstance(self.patience, (int, float)) and math.isfinite(self.patience) and self.patience > 0):
            raise LiteASRError(f"`patience` must be a number > 0, got {self.patience!r}", "pass 1.0 (the default)",
                               field="patience")
        if self.length_penalty is not None and not (math.isfinite(self.length_penalty)
                                                    and 0 <= self.length_penalty <= 1):
            raise LiteASRError(f"`length_penalty` must lie between 0 and 1, got {self.length_penalty!r}",
                               "pass an ALPHA in [0, 1], or leave it out to divide by the length",
                               field="length_penalty")
        if not self.temperatures or self.temperatures[0] != 0:
            raise LiteASRError(f"the first fallback temperature must be 0, got {list(self.temperatures)}",
                               "start `temperatures` with 0 (greedy or beam search), e.g. 0,0.2,0.4",
                               field="temperatures")
        check_value(self.seed, "seed", "count_or_zero")

    @property
    def max_rows(self) -> int:
        """Decoder rows per window at most (beams or samples)."""
        sampling = any(t > 0 for t in self.temperatures)
        return max(self.beam_size if 0 in self.temperatures else 1, self.best_of if sampling else 1)


#: outcomes of a window's decode
OK, NO_SPEECH, KEPT_BEST, REPETITIVE = "ok", "no-speech", "fallback-exhausted", "dropped-repetitive"


@dataclass
class WindowDecode:
    """A window's final decode and how it was reached."""

    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    temperatures_tried: list[float]
    outcome: str  # OK, NO_SPEECH (skipped: silence), KEPT_BEST (every temperature failed), REPETITIVE (dropped)
    language_token: int | None = None
    language_probability: float | None = None
    audio_context: int = 3000  # mel frames the window was encoded with (30 s unless trimmed)
    full_context_retry: bool = False  # decoded again on 30 s after its trimmed context failed

    @property
    def fell_back(self) -> bool:
        return len(self.temperatures_tried) > 1


def _needs_fallback(h: Hypothesis, ratio: float, s: SearchOptions) -> bool:
    """openai-whisper's test: too repetitive or too unlikely, unless the
    window is silence (no-speech probability high and log-probability low)."""
    low = s.logprob_threshold is not None and h.avg_logprob < s.logprob_threshold
    repetitive = s.compression_ratio_threshold is not None and ratio > s.compression_ratio_threshold
    silent = s.no_speech_threshold is not None and h.no_speech_prob > s.no_speech_threshold and low
    return (repetitive or low) and not silent


def decode_with_fallback(
    make_step: Callable[[], DecoderStep],
    prompts: np.ndarray,
    options: DecodingOptions,
    settings: SearchOptions,
    text_of: Callable[[list[int]], str],
    window_keys: Sequence[int] | None = None,
    detect: np.ndarray | None = None,
) -> list[WindowDecode]:
    """Decode every window at the first temperature, then again at the next
    temperature only those that failed (``make_step()`` gives a fresh decoder
    step over the whole batch; it is reordered to the failing windows).

    The result of a window: its first passing attempt; when every
    temperature failed, the likeliest attempt under the compression-ratio
    threshold (faster-whisper's choice), or nothing when each attempt was a
    repetition loop (this project's addition: a loop is never emitted). A
    window whose no-speech probability passes its threshold, without a
    confident decode, is skipped as silence (openai-whisper's transcribe).
    ``window_keys``: one integer per window that, with ``settings.seed`` and
    the temperature, seeds its sampling (e.g. its position in the recording),
    so results do not depend on how windows are batched."""
    prompts = np.array(prompts, dtype=np.int64)  # a copy: detected languages are written into it
    n = prompts.shape[0]
    keys = list(window_keys) if window_keys is not None else list(range(n))
    attempts: list[list[tuple[Hypothesis, float, float]]] = [[] for _ in range(n)]  # (hypothesis, ratio, temperature)
    passed = np.zeros(n, dtype=bool)
    languages: list[tuple[int | None, float | None]] = [(None, None)] * n
    pending = np.arange(n)
    for t_index, temperature in enumerate(settings.temperatures):
        step = make_step()
        if len(pending) != n:
            step.reorder(pending)
        sampling = temperature > 0
        rngs = [np.random.default_rng([settings.seed, keys[i] & 0xFFFFFFFF, t_index]) for i in pending] if sampling else None
        hypotheses = search(step, prompts[pending], options, beam_size=settings.beam_size, patience=settings.patience,
                            length_penalty=settings.length_penalty, temperature=temperature,
                            best_of=settings.best_of if sampling else 1, rngs=rngs,
                            detect=detect[pending] if detect is not None and t_index == 0 else None)
        still = []
        for i, h in zip(pending, hypotheses):
            if h.language_token is not None:  # later attempts keep the detected language
                languages[i] = (h.language_token, h.language_probability)
                prompts[i, options.sot_index + 1] = h.language_token
            ratio = compression_ratio(text_of(h.tokens))
            attempts[i].append((h, ratio, temperature))
            if _needs_fallback(h, ratio, settings):
                still.append(i)
            else:
                passed[i] = True
        pending = np.asarray(still, dtype=np.int64)
        if not len(pending):
            break

    out = []
    for i in range(n):
        tried = [t for _, _, t in attempts[i]]
        outcome = OK
        if passed[i]:
            h, ratio, temperature = attempts[i][-1]
        else:
            threshold = settings.compression_ratio_threshold
            usable = [a for a in attempts[i] if threshold is None or a[1] <= threshold]
            if usable:
                h, ratio, temperature = max(usable, key=lambda a: a[0].avg_logprob)
                outcome = KEPT_BEST
            else:
                h, ratio, temperature = max(attempts[i], key=lambda a: a[0].avg_logprob)
                outcome = REPETITIVE
        if outcome != REPETITIVE and settings.no_speech_threshold is not None:
            silent = h.no_speech_prob > settings.no_speech_threshold
            if silent and not (settings.logprob_threshold is not None and h.avg_logprob > settings.logprob_threshold):
                outcome = NO_SPEECH
        tokens = h.tokens if outcome in (OK, KEPT_BEST) else []
        out.append(WindowDecode(tokens, temperature, h.avg_logprob, ratio, h.no_speech_prob, tried, outcome,
                                *languages[i]))
    return out
