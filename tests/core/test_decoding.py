"""The shared decoding (liteasr_export/decoding.py), driven by fake decoders:
greedy loop, logit rules, timestamp rules, beam search, sampling, language
detection and the temperature fallback."""

from __future__ import annotations

import numpy as np
import pytest

from liteasr_export.core.decoding import (KEPT_BEST, NO_SPEECH, OK, REPETITIVE, DecodingOptions, RowOwners, SearchOptions,
                                     apply_rules, compression_ratio, decode_with_fallback, fill_from_tail, greedy_decode,
                                     search)
from liteasr_export.core.windowed import timestamp_segments

VOCAB = 10
EOT = 5


class ScriptedStep:
    """Logits favouring plan[b][call] for each row b; greedy decoding reorders
    only to drop the rows of finished windows (``kept`` records each)."""

    def __init__(self, plan: list[list[int]], seen: list[np.ndarray]) -> None:
        self.plan, self.seen, self.calls, self.kept = plan, seen, 0, []

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        self.seen.append(tokens.copy())
        logits = np.zeros((len(self.plan), VOCAB), dtype=np.float32)
        for b, row in enumerate(self.plan):
            logits[b, row[min(self.calls, len(row) - 1)]] = 10.0
            logits[b, 3] = 5.0  # runner-up, to expose suppression
        self.calls += 1
        return logits

    def reorder(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows).tolist()
        assert rows == sorted(set(rows)) and len(rows) < len(self.plan), "greedy decoding only drops rows"
        self.kept.append(rows)
        self.plan = [self.plan[r] for r in rows]


def test_stops_per_row_and_feeds_only_new_tokens():
    seen: list[np.ndarray] = []
    options = DecodingOptions(prompt=[7, 8], eot=EOT)
    step = ScriptedStep([[1, 2, EOT], [4, EOT, 9]], seen)
    out = greedy_decode(step, 2, options)
    assert out == [[1, 2], [4]]
    assert seen[0].tolist() == [[7, 8], [7, 8]]
    assert seen[1].tolist() == [[1], [4]]
    assert step.kept == [[0]]  # the finished window left the batch
    assert seen[2].tolist() == [[2]]
    assert len(seen) == 3


def test_suppression_and_begin_suppression():
    options = DecodingOptions(prompt=[0], eot=EOT, suppress=[2], suppress_begin=[1])
    out = greedy_decode(ScriptedStep([[1, 2, EOT]], []), 1, options)
    assert out == [[3, 3]]  # 1 blocked at the first step, 2 always; 3 is the runner-up


def test_max_new_tokens_bounds_the_loop():
    options = DecodingOptions(prompt=[0], eot=EOT, max_new_tokens=4)
    out = greedy_decode(ScriptedStep([[1]], []), 1, options)
    assert out == [[1, 1, 1, 1]]


def test_options_round_trip_through_json():
    import json

    options = DecodingOptions(prompt=[1, 2], eot=3, suppress=[4], suppress_begin=[5], max_new_tokens=6, sot=1,
                              no_speech=7, no_timestamps=8, timestamp_begin=9, timestamps=True, language_tokens=[2])
    assert DecodingOptions.from_dict(json.loads(options.to_json())) == options
    old = {"prompt": [1, 2], "eot": 3, "suppress": [4], "suppress_begin": [5], "max_new_tokens": 6}
    assert DecodingOptions.from_dict(old).timestamps is False  # manifests written before timestamps load


# ---------------------------------------------------------------- a toy language model with a KV cache

class ToyLM:
    """A decoder whose logits depend on each row's whole history and its
    window's "audio" (a bias per window), held like a KV cache: reorder()
    must move it, or later logits are wrong. ``table[prev]`` gives the
    logits after token ``prev`` (-1: after the prompt)."""

    def __init__(self, table: dict[int, list[float]], bias: np.ndarray | None = None, log: list | None = None) -> None:
        self.table, self.log = table, log if log is not None else []
        self.bias = np.zeros((1, len(next(iter(table.values()))))) if bias is None else np.asarray(bias, float)
        self.history: list[list[int]] = [[] for _ in range(len(self.bias))]
        self.window = np.arange(len(self.bias))

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        assert tokens.shape[0] == len(self.history), "rows fed differ from the rows the cache holds"
        self.log.append(tokens.shape)
        for row, new in zip(self.history, tokens.tolist()):
            row.extend(new)
        logits = [np.asarray(self.table.get(h[-1] if len(h) > 1 else -1, self.table[-1]), float) + self.bias[w]
                  for h, w in zip(self.history, self.window)]
        return np.asarray(logits, dtype=np.float32)

    def reorder(self, rows: np.ndarray) -> None:
        self.history = [list(self.history[r]) for r in rows]
        self.window = self.window[rows]


def _probs(*pairs: tuple[int, float], vocab: int = 8) -> list[float]:
    """Logits whose softmax puts these probabilities on these tokens (the
    rest shared by the other tokens)."""
    p = np.full(vocab, (1 - sum(q for _, q in pairs)) / (vocab - len(pairs)))
    for token, q in pairs:
        p[token] = q
    return np.log(p).tolist()


# after the prompt: 1 (0.45) beats 2 (0.40); after 1 nothing is sure, after 2 the end is
GARDEN = {-1: _probs((1, 0.45), (2, 0.40)), 1: _probs((3, 0.3), (4, 0.3)), 2: _probs((5, 0.95)),
          3: _probs((5, 0.9)), 4: _probs((5, 0.9))}


def test_beam_search_finds_the_likelier_sequence_that_greedy_misses():
    options = DecodingOptions(prompt=[0], eot=5, max_new_tokens=6)
    greedy = search(ToyLM(GARDEN), np.array([[0]]), options)[0]
    beam = search(ToyLM(GARDEN), np.array([[0]]), options, beam_size=3)[0]
    assert greedy.tokens[0] == 1 and beam.tokens == [2]
    assert beam.sum_logprob == pytest.approx(np.log(0.40) + np.log(0.95), abs=1e-5)
    assert beam.sum_logprob / 1 > greedy.sum_logprob / len(greedy.tokens)


def test_beam_search_reorders_the_cache_and_batches_windows_independently():
    # window 1's audio favours token 1 after the prompt: its best path differs from window 0's
    bias = np.zeros((2, 8))
    bias[1, 1] = 3.0
    options = DecodingOptions(prompt=[0], eot=5, max_new_tokens=6)
    together = search(ToyLM(GARDEN, bias), np.array([[0], [0]]), options, beam_size=3)
    alone = [search(ToyLM(GARDEN, bias[i:i + 1]), np.array([[0]]), options, beam_size=3)[0] for i in range(2)]
    assert [h.tokens for h in together] == [h.tokens for h in alone]
    assert together[0].tokens != together[1].tokens


@pytest.mark.parametrize("how", [dict(beam_size=3), dict(beam_size=3, patience=0.5), dict(beam_size=3, patience=2.0),
                                 dict(), dict(temperature=1.0, best_of=3)])
def test_finished_windows_leave_the_batch_without_changing_any_result(how):
    # windows 0 and 1 end within a few tokens; window 2's audio loops on token 6 until max_new_tokens
    bias = np.zeros((3, 8))
    bias[1, 1] = 1.0
    bias[2, 6] = 8.0
    options = DecodingOptions(prompt=[0], eot=5, max_new_tokens=8)

    def run(windows, log):
        rngs = [np.random.default_rng(w) for w in windows] if "temperature" in how else None
        step = ToyLM(GARDEN, bias[windows], log)
        return search(step, np.zeros((len(windows), 1), dtype=np.int64), options, rngs=rngs, **how)

    log: list = []
    together = run([0, 1, 2], log)
    alone = [run([w], [])[0] for w in range(3)]
    assert [(h.tokens, h.sum_logprob) for h in together] == [(h.tokens, h.sum_logprob) for h in alone]
    assert len(together[2].tokens) == 8 and len(together[0].tokens) < 8
    group = how.get("beam_size", how.get("best_of", 1))
    rows = [shape[0] for shape in log]
    assert rows[0] == 3  # the prompts, before they expand into beams or samples
    assert rows[1] == 3 * group and rows[-1] == group  # only the looping window is still fed at the end
    assert rows[1:] == sorted(rows[1:], reverse=True)


def test_length_penalty_changes_what_is_ranked():
    # the empty path ends at once (log 0.5); the other needs three tokens (log 0.45 + 2 log 0.99)
    table = {-1: _probs((5, 0.5), (1, 0.45)), 1: _probs((2, 0.99)), 2: _probs((5, 0.99))}
    options = DecodingOptions(prompt=[0], eot=5, max_new_tokens=6)
    normalized = search(ToyLM(table), np.array([[0]]), options, beam_size=2, patience=2.0)[0]
    assert normalized.tokens == [1, 2]  # length normalization favours the longer sequence
    by_sum = search(ToyLM(table), np.array([[0]]), options, beam_size=2, patience=2.0, length_penalty=0.0)[0]
    assert by_sum.tokens == []  # alpha 0: raw log-probability: ending at once is likelier


def test_sampling_is_reproducible_and_per_window():
    options = DecodingOptions(prompt=[0], eot=5, max_new_tokens=8)
    table = {-1: _probs((1, 0.3), (2, 0.3), (5, 0.1))}

    def run(seeds):
        rngs = [np.random.default_rng(s) for s in seeds]
        prompts = np.zeros((len(seeds), 1), dtype=np.int64)
        return [h.tokens for h in search(ToyLM(table, np.zeros((len(seeds), 8))), prompts, options,
                                         temperature=1.0, best_of=3, rngs=rngs)]

    assert run([1, 2]) == run([1, 2])
    assert run([1, 2])[1] == run([2])[0]  # a window's samples do not depend on its batch
    assert len({tuple(t) for t in run(list(range(6)))}) > 1  # and they do vary with the seed


def test_row_owners_tell_which_cross_rows_to_gather():
    owners = RowOwners(2)  # one copy of the cross K/V per row
    assert owners.reorder(np.array([0, 0, 1, 1])).tolist() == [0, 0, 1, 1]  # expanding into beams
    assert owners.reorder(np.array([1, 0, 3, 2])) is None  # beams swapping within a window
    assert owners.reorder(np.array([0, 1])).tolist() == [0, 0]  # picking rows of the first window
    assert owners.owners.tolist() == [0, 0]


def test_shared_row_owners_gather_only_when_the_windows_change():
    owners = RowOwners(3, shared=True)  # rows share their window's copy
    assert owners.reorder(np.repeat(np.arange(3), 4)) is None  # expanding into beams: no copy
    assert owners.reorder(np.array([1, 0, 2, 2, 5, 4, 6, 6, 8, 9, 9, 8])) is None  # beams swapping
    assert owners.reorder(np.array([4, 5, 6, 7])).tolist() == [1]  # one window's beams: keep its copy
    assert owners.cross_windows.tolist() == [1]
    owners = RowOwners(3, shared=True)
    assert owners.reorder(np.array([2, 0, 0])).tolist() == [2, 0, 0]  # unequal groups: one copy per row
    assert owners.reorder(np.array([1, 2])).tolist() == [1]  # both rows read window 0: one copy again


def test_leaving_windows_are_replaced_from_the_tail():
    assert fill_from_tail(np.array([0, 1, 0, 0, 1, 0], bool)).tolist() == [0, 5, 2, 3]  # 5 fills 1's gap
    assert fill_from_tail(np.array([1, 1, 0, 0], bool)).tolist() == [2, 3]
    assert fill_from_tail(np.array([0, 0, 1], bool)).tolist() == [0, 1]  # the last left: nothing moves
    assert fill_from_tail(np.array([1, 1], bool)).tolist() == []


def _numpy_take(tensor, index):
    return tensor[index]


def _torch_take(tensor, index):
    import torch

    return tensor.index_select(0, torch.as_tensor(index))


@pytest.mark.parametrize("kind", ["numpy", "torch"])  # the ONNX Runtime step's tensors, and TensorRT's
def test_cross_rows_shrink_in_place_after_one_copy(kind):
    original = np.arange(6 * 3, dtype=np.float32).reshape(6, 3)
    if kind == "torch":
        torch = pytest.importorskip("torch")
        cross, take = torch.from_numpy(original.copy()), _torch_take

        def shares(a, b):
            return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    else:
        cross, take, shares = original.copy(), _numpy_take, np.shares_memory

    def values(tensor):
        return np.asarray(tensor)

    owners = RowOwners(6, shared=True)
    index = owners.reorder(np.arange(5))  # the last window leaves: a view, nothing copied
    view = owners.gather([cross], index, take)[0]
    assert shares(view, cross) and np.array_equal(values(view), original[:5])
    index = owners.reorder(np.array([0, 4, 2, 3]))  # window 1 leaves and 4 fills its gap
    first = owners.gather([view], index, take)[0]
    assert np.array_equal(values(cross), original)  # the caller's tensor is never written: copied once
    assert not shares(first, cross) and np.array_equal(values(first), original[[0, 4, 2, 3]])
    index = owners.reorder(np.array([0, 3, 2]))  # window 4 leaves, 3 fills its gap
    second = owners.gather([first], index, take)[0]
    assert shares(second, first)  # moved in place: one window copied, not all
    assert np.array_equal(values(second), original[[0, 3, 2]])
    index = owners.reorder(np.array([2, 1, 0]))  # not a shrink: gathered into a new tensor
    third = owners.gather([second], index, take)[0]
    assert not shares(third, second) and np.array_equal(values(third), original[[2, 3, 0]])


# ---------------------------------------------------------------- timestamp rules

TB = 20  # <|0.00|> in a toy vocabulary of 40: text 0..9, eot 10, specials 11..19, timestamps 20..39
TS_OPTIONS = DecodingOptions(prompt=[11], eot=10, suppress=list(range(11, 19)), no_timestamps=19, timestamp_begin=TB,
                             timestamps=True, max_initial_timestamp_index=3)


def _allowed(history: list[int], logits: np.ndarray | None = None) -> set[int]:
    """Tokens the rules leave possible after ``history``; by default text is
    far likelier than any timestamp, so the last rule stays out of the way."""
    if logits is None:
        logits = np.zeros((1, 40), dtype=np.float32)
        logits[0, :TB] = 5.0
    logits = logits.copy()
    hist = np.asarray([history], dtype=np.int64).reshape(1, -1)
    stamps = [t for t in history if t >= TB]
    apply_rules(logits, hist, np.asarray([stamps[-1] if stamps else -1]), TS_OPTIONS)
    return set(np.flatnonzero(np.isfinite(logits[0])).tolist())


def test_a_window_starts_with_an_early_timestamp():
    assert _allowed([]) == {TB, TB + 1, TB + 2, TB + 3}  # max_initial_timestamp_index 3


def test_timestamps_come_in_pairs_and_never_go_back():
    after_pair = _allowed([TB, 1, 2, TB + 5, TB + 5])
    assert after_pair == set(range(10)) | {10}  # text or the end, no timestamp
    after_single = _allowed([TB, 1, 2, TB + 5])
    assert after_single == {10} | set(range(TB + 5, 40))  # its partner (>= itself) or the end
    after_text = _allowed([TB, 1, 2])
    assert after_text == set(range(10)) | {10} | set(range(TB + 1, 40))  # a segment has a nonzero length
    assert 19 not in _allowed([TB, 1])  # <|notimestamps|> never


def test_likelier_timestamps_silence_text():
    logits = np.zeros((1, 40), dtype=np.float32)
    logits[0, TB + 4:] = 2.0  # 16 timestamps: their total beats any single text token
    assert _allowed([TB, 1], logits) == set(range(TB + 1, 40))  # no text, no end; timestamps after the first


def test_segments_and_seek_follow_openai_whisper():
    # two complete segments, then an unfinished one: move to the last complete end
    tokens = [TB, 1, 2, TB + 50, TB + 50, 3, TB + 100, TB + 100, 4]
    segments, advance = timestamp_segments(tokens, TB, 10.0, 3000)
    assert [(s, e) for s, e, _ in segments] == [(10.0, 11.0), (11.0, 12.0)]
    assert advance == 100 * 2
    # ending in a single timestamp: everything heard, the whole window is consumed
    segments, advance = timestamp_segments([TB, 1, TB + 50, TB + 60, 2, TB + 90], TB, 0.0, 3000)
    assert [(s, e) for s, e, _ in segments] == [(0.0, 1.0), (1.2, 1.8)] and advance == 3000
    # no pair: one segment up to the last timestamp
    segments, advance = timestamp_segments([TB, 1, 2, TB + 40], TB, 5.0, 1000)
    assert [(s, e) for s, e, _ in segments] == [(5.0, 5.8)] and advance == 1000


# ---------------------------------------------------------------- fallback

class LoopStep:
    """Greedy (temperature 0) loops on token 1 forever, with high probability;
    any sample ends quickly. ``decoded`` counts the windows decoded per call
    of the factory, to check only failing windows are decoded again."""

    def __init__(self, windows: int, looping: set[int], no_speech: float = 0.0, sure: float = 0.9) -> None:
        self.n, self.looping, self.no_speech, self.sure = windows, looping, no_speech, sure
        self.rows = np.arange(windows)
        self.fed = 0

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        self.fed += 1
        logits = np.zeros((len(self.rows), 12), dtype=np.float32)
        for i, w in enumerate(self.rows):
            if self.fed == 1:  # at <|startoftranscript|>: the no-speech token is 11
                logits[i, 11] = np.log(self.no_speech / (1 - self.no_speech) * 11) if self.no_speech else -30
            elif w in self.looping:
                logits[i, 1] = 8.0
                logits[i, 5] = 6.0
            else:
                logits[i, 2 if self.fed < 4 else 5] = 8.0
        return logits

    def reorder(self, rows: np.ndarray) -> None:
        self.rows = self.rows[rows]


def _fallback(step_factory, n, settings, text_of=lambda ids: " ".join(f"w{t}" for t in ids)):
    options = DecodingOptions(prompt=[0, 9], eot=5, sot=0, no_speech=11, max_new_tokens=40)
    prompts = np.tile([0, 9], (n, 1))
    return decode_with_fallback(step_factory, prompts, options, settings, text_of)


def test_fallback_decodes_again_only_the_looping_windows():
    made: list[LoopStep] = []

    def factory():  # the first attempt (temperature 0) loops on window 1, later attempts do not
        made.append(LoopStep(3, looping={1} if not made else set()))
        return made[-1]

    out = _fallback(factory, 3, SearchOptions(beam_size=1))
    assert [w.outcome for w in out] == [OK, OK, OK]
    assert out[0].temperatures_tried == [0.0] and out[2].temperatures_tried == [0.0]
    assert out[1].fell_back and out[1].temperature == 0.2 and out[1].tokens == [2, 2]
    assert out[1].compression_ratio <= 2.4 < compression_ratio(" ".join(["w1"] * 40))
    assert len(made) == 2 and made[1].rows.tolist() == [1] * 5  # only window 1, as best_of 5 samples


class AlwaysLoops(LoopStep):
    def __call__(self, tokens):
        logits = super().__call__(tokens)
        if self.fed > 1:
            logits[:, 1] = 60.0  # even sampling at temperature 1 keeps looping
        return logits


def test_a_window_that_loops_at_every_temperature_is_not_emitted():
    out = _fallback(lambda: AlwaysLoops(1, looping={0}), 1, SearchOptions(beam_size=1))
    assert out[0].outcome == REPETITIVE and out[0].tokens == [] and len(out[0].temperatures_tried) == 6
    off = _fallback(lambda: AlwaysLoops(1, looping={0}), 1, SearchOptions(compression_ratio_threshold=None))
    assert off[0].outcome == OK and len(off[0].tokens) == 40  # the check off: the loop is what it is


class Unsure(LoopStep):
    def __call__(self, tokens):
        logits = super().__call__(tokens)
        return logits * (0.02 if self.fed > 1 else 1.0)  # nearly flat: low log-probabilities


def test_when_every_temperature_fails_the_likeliest_attempt_is_kept():
    out = _fallback(lambda: Unsure(1, looping=set()), 1, SearchOptions(beam_size=1))
    assert out[0].outcome == KEPT_BEST and out[0].tokens and len(out[0].temperatures_tried) == 6
    assert out[0].avg_logprob < -1 and out[0].compression_ratio <= 2.4


def test_no_speech_windows_are_skipped_only_when_unsure():
    silent = _fallback(lambda: Unsure(1, looping=set(), no_speech=0.9), 1, SearchOptions(beam_size=1))
    assert silent[0].outcome == NO_SPEECH and silent[0].tokens == [] and silent[0].no_speech_prob > 0.6
    assert silent[0].temperatures_tried == [0.0]  # silence needs no fallback
    sure = _fallback(lambda: LoopStep(1, looping=set(), no_speech=0.9), 1, SearchOptions(beam_size=1))
    assert sure[0].outcome == OK and sure[0].tokens  # confident text is kept despite the no-speech probability
    off = _fallback(lambda: Unsure(1, looping=set(), no_speech=0.9), 1, SearchOptions(beam_size=1).without_fallback())
    assert off[0].outcome == OK and off[0].tokens and off[0].temperatures_tried == [0.0]


def test_fallback_results_are_reproducible_and_seeded():
    def run(seed):
        return [w.tokens for w in _fallback(lambda: LoopStep(2, looping={0, 1}), 2, SearchOptions(seed=seed))]

    assert run(3) == run(3)


# ---------------------------------------------------------------- language detection

def test_language_is_detected_at_the_start_token_and_written_into_the_prompt():
    seen: list[np.ndarray] = []

    class Lang(ScriptedStep):
        def __call__(self, tokens):
            logits = super().__call__(tokens)
            if self.calls == 1:  # at <|startoftranscript|>: row 0 says language 7, row 1 language 8
                logits[0, 7], logits[1, 8] = 20.0, 20.0
            return logits

    options = DecodingOptions(prompt=[6, 7, 9], eot=EOT, sot=6, language_tokens=[7, 8])
    out = search(Lang([[1, EOT], [2, EOT]], seen), np.array([[6, 7, 9], [6, 7, 9]]), options,
                 detect=np.array([True, True]))
    assert seen[0].tolist() == [[6], [6]]  # the start token alone first
    assert seen[1].tolist() == [[7, 9], [8, 9]]  # the rest of the prompt, with the detected languages
    assert [h.language_token for h in out] == [7, 8] and all(h.language_probability > 0.5 for h in out)
