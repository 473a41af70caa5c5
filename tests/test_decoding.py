"""The shared greedy loop, driven by a scripted fake decoder."""

from __future__ import annotations

import numpy as np

from liteasr_export.decoding import DecodingOptions, greedy_decode

VOCAB = 10
EOT = 5


def scripted_step(plan: list[list[int]], seen: list[np.ndarray]):
    """Returns logits favouring plan[b][step] for each row b."""
    calls = {"n": 0}

    def step(tokens: np.ndarray) -> np.ndarray:
        seen.append(tokens.copy())
        logits = np.zeros((len(plan), VOCAB), dtype=np.float32)
        for b, row in enumerate(plan):
            want = row[min(calls["n"], len(row) - 1)]
            logits[b, want] = 10.0
            logits[b, 3] = 5.0  # runner-up, to expose suppression
        calls["n"] += 1
        return logits

    return step


def test_stops_per_row_and_feeds_only_new_tokens():
    seen: list[np.ndarray] = []
    options = DecodingOptions(prompt=[7, 8], eot=EOT)
    out = greedy_decode(scripted_step([[1, 2, EOT], [4, EOT, 9]], seen), 2, options)
    assert out == [[1, 2], [4]]
    assert seen[0].tolist() == [[7, 8], [7, 8]]
    assert seen[1].tolist() == [[1], [4]]
    assert seen[2].tolist() == [[2], [EOT]]  # finished rows keep feeding eot
    assert len(seen) == 3


def test_suppression_and_begin_suppression():
    options = DecodingOptions(prompt=[0], eot=EOT, suppress=[2], suppress_begin=[1])
    out = greedy_decode(scripted_step([[1, 2, EOT]], []), 1, options)
    assert out == [[3, 3]]  # 1 blocked at the first step, 2 always; 3 is the runner-up


def test_max_new_tokens_bounds_the_loop():
    options = DecodingOptions(prompt=[0], eot=EOT, max_new_tokens=4)
    out = greedy_decode(scripted_step([[1]], []), 1, options)
    assert out == [[1, 1, 1, 1]]


def test_options_round_trip_through_json():
    import json

    options = DecodingOptions(prompt=[1, 2], eot=3, suppress=[4], suppress_begin=[5], max_new_tokens=6)
    assert DecodingOptions.from_dict(json.loads(options.to_json())) == options
