"""Quality-targeted compression: the smallest encoder whose transcripts stay
within a WER increase of the dense model's.

Bisection over the budget policy's target size. Each size tried is
compressed from the same statistics and spectra (nothing is recalibrated),
transcribed with PyTorch on the check sets and compared with the dense
transcripts (computed once). The check sets are drawn with another seed than
the export's quality gate, so the gate still judges clips the search did not
choose on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from liteasr_export.core.errors import RankError

#: bisection steps: the size is found to within (1 - lowest) / 2**steps
DEFAULT_STEPS = 5
#: the smallest size the search considers (a fraction of the dense encoder)
LOWEST_SIZE = 0.5


@dataclass
class Trial:
    """One size tried: the size asked, the size reached and, per check set,
    the WER increase (labeled) or the disagreement (unlabeled)."""

    target_size: float
    size_ratio: float
    increase: dict[str, float] = field(default_factory=dict)
    disagreement: dict[str, float] = field(default_factory=dict)
    passed: bool = False


@dataclass
class SearchResult:
    target_wer_increase: float
    max_disagreement: float
    trials: list[Trial]
    chosen: float | None  # the smallest passing target size; None: none passed (use dense)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self, level: int = 2) -> list[str]:
        lines = [f"{'#' * level} Target search: WER increase <= {self.target_wer_increase:g} points", "",
                 "| target size | encoder size | worst WER increase | worst disagreement % | result |",
                 "|---:|---:|---:|---:|---|"]
        for t in sorted(self.trials, key=lambda t: t.target_size):
            inc = max(t.increase.values(), default=math.nan)
            dis = max(t.disagreement.values(), default=math.nan)
            lines.append(f"| {t.target_size:.3f} | {t.size_ratio:.3f} | {inc:+.2f} | {dis:.2f} | "
                         f"{'pass' if t.passed else 'fail'}{' (chosen)' if t.target_size == self.chosen else ''} |")
        if self.chosen is None:
            lines += ["", "No compressed size stayed within the limit: the dense encoder is kept."]
        return lines + [""]


def search_target_size(
    evaluate: Callable[[float], tuple[float, dict[str, float], dict[str, float]]],
    target_wer_increase: float,
    max_disagreement: float,
    lowest: float = LOWEST_SIZE,
    steps: int = DEFAULT_STEPS,
    note: Callable[[str], None] | None = None,
) -> SearchResult:
    """Bisection for the smallest passing size in ``[lowest, 1)``.

    ``evaluate(size)`` compresses at ``size`` and returns the size reached,
    the WER increase per labeled set and the disagreement per unlabeled set.
    A size passes when every increase is at most ``target_wer_increase`` and
    every disagreement at most ``max_disagreement``. Quality is assumed to
    fall as the size does (bisection's premise); every point tried is kept
    so the report shows the curve.
    """
    if not target_wer_increase >= 0:
        raise RankError(f"`target_wer_increase` must be >= 0, got {target_wer_increase}", "pass points, e.g. 1.0",
                        field="target_wer_increase")
    trials: list[Trial] = []

    def attempt(size: float) -> Trial:
        try:
            ratio, increase, disagreement = evaluate(size)
        except RankError:  # below the smallest reachable encoder
            trial = Trial(size, math.nan)
        else:
            passed = all(v <= target_wer_increase for v in increase.values()) and all(
                v <= max_disagreement for v in disagreement.values())
            trial = Trial(size, ratio, increase, disagreement, passed)
        trials.append(trial)
        if note is not None:
            worst = max(trial.increase.values(), default=math.nan)
            note(f"  target size {size:.3f}: encoder {trial.size_ratio:.3f} of dense, worst WER increase "
                 f"{worst:+.2f} -> {'pass' if trial.passed else 'fail'}")
        return trial

    low, high = lowest, 1.0  # invariant: high passes (dense), low is unknown or fails
    if attempt(low).passed:
        return SearchResult(target_wer_increase, max_disagreement, trials, low)
    for _ in range(steps):
        middle = round((low + high) / 2, 4)
        if attempt(middle).passed:
            high = middle
        else:
            low = middle
    chosen = high if high < 1.0 else None
    return SearchResult(target_wer_increase, max_disagreement, trials, chosen)
