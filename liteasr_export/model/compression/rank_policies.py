"""Rank policies: from the spectra of the encoder matrices to a ``low_rank_config``.

* :class:`LiteASRPolicy`: the published rule (the LiteASR paper): per matrix,
  the smallest multiple of 16 whose explained-variance share reaches theta;
  dense where that does not pay (``k > 0.5 d`` attention, ``k > 0.8 d`` MLP).
* :class:`BudgetPolicy`: one global size (or FLOPs) budget shared by all
  matrices; ranks minimise the summed predicted output error, by a Lagrangian
  search over every matrix's options then a greedy fill of the slack.
* :class:`ProfilePolicy`: explicit ranks from a JSON ``low_rank_config``.

Presets (``acc``, ``plain``, ``fast``) are plain data in :data:`PRESETS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from liteasr_export.model.compression.report import encoder_cost, matrix_cost, pays_off
from liteasr_export.core.errors import RankError
from liteasr_export.model.lowrank import ATTENTION, COMPRESSIBLE, validate_low_rank_config

RANK_MULTIPLE = 16
#: the default: a budget of 90 % of the dense encoder's parameters, spent where
#: the measured sensitivities say the output needs it (see the README's
#: held-out figures for how it was chosen)
DEFAULT_POLICY = "budget"
DEFAULT_TARGET_SIZE = 0.9
#: encoders this narrow (Whisper tiny, d_model 384) keep more by default. The
#: default must pass the quality gate by more than the sampling noise in every
#: environment the README supports; on a fresh machine without the Asterisk
#: prompts tiny.en at 0.95 lost 1.18 ± 0.83 points on the gate's 4-minute
#: recording, at 0.975 -0.59 ± 0.42 (bench/results/default_ladder_tiny.en_no-asterisk.json)
SMALL_ENCODER_WIDTH = 384
SMALL_ENCODER_TARGET_SIZE = 0.975


def default_target_size(config=None) -> float:
    """The budget policy's size when ``--target-size`` is not given, for a
    model of this ``WhisperConfig`` (None: the general default)."""
    if config is not None and int(getattr(config, "d_model", 0) or 0) <= SMALL_ENCODER_WIDTH:
        return SMALL_ENCODER_TARGET_SIZE
    return DEFAULT_TARGET_SIZE


#: the largest size the default steps up to (see :func:`default_size_ladder`)
LADDER_TOP = 0.99


def default_size_ladder(config=None) -> list[float]:
    """The sizes an export tries when the user chose none: the default, then
    each time halfway to dense (0.9 -> 0.95 -> 0.975 -> 0.9875), while at most
    :data:`LADDER_TOP`. The quality gate moves to the next when a size does
    not pass with margin."""
    sizes = [default_target_size(config)]
    while 1.0 - (1.0 - sizes[-1]) / 2 <= LADDER_TOP:
        sizes.append(round(1.0 - (1.0 - sizes[-1]) / 2, 4))
    return sizes


@dataclass
class MatrixSpectrum:
    """What a policy sees of one encoder matrix: its shape and output spectrum."""

    layer: int
    name: str
    d_in: int
    d_out: int
    #: eigenvalues of the output covariance, descending, >= 0 (length min(d_in, d_out))
    eigenvalues: np.ndarray
    #: per-component share of the per-channel-normalised variance (sums to the
    #: number of active channels): component i contributes
    #: ``lambda_i * sum_j V_ji^2 / C_jj``. Outlier channels weigh one channel each.
    standardized: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: measured output error per unit of predicted error share (1: not measured;
    #: see :mod:`liteasr_export.model.compression.sensitivity`)
    sensitivity: float = 1.0

    def kept(self, rank: int | None, weights: str = "variance") -> float:
        """Share of the total kept by the top ``rank`` components (1.0 for dense)."""
        values = self.eigenvalues if weights == "variance" else self.standardized
        total = float(values.sum())
        if rank is None or total <= 0:
            return 1.0
        return float(values[:rank].sum()) / total

    def tail(self, rank: int, weights: str = "standardized") -> float:
        """Predicted error share of truncating to ``rank`` under a weighting of
        :data:`WEIGHTINGS` ("mixed": the mean of the other two)."""
        kinds = ("standardized", "variance") if weights == "mixed" else (weights,)
        return float(np.mean([1.0 - self.kept(rank, kind) for kind in kinds]))


class RankPolicy(Protocol):
    name: str

    def choose(self, spectra: Sequence[MatrixSpectrum], config) -> list[dict[str, int]]:
        """One ``{matrix: rank}`` dict per encoder layer (absent = dense)."""

    def describe(self) -> dict[str, Any]:
        """Plain-data settings, written to the report and manifest."""


def _empty_plan(config) -> list[dict[str, int]]:
    return [{} for _ in range(config.encoder_layers)]


def _finish(plan: list[dict[str, int]]) -> list[dict[str, int]]:
    """Canonical order of names inside each layer (stable JSON bytes)."""
    return [{name: layer[name] for name in COMPRESSIBLE if name in layer} for layer in plan]


# -- liteasr --------------------------------------------------------------------
def parse_theta(text: str | float) -> tuple[float, float]:
    """``"A:M"`` (attention : MLP) or one value for both; each in (0, 1]."""
    parts = str(text).split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise RankError(f"cannot read theta {text!r}", "write it as A:M, e.g. 0.99:0.999", field="theta") from None
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise RankError(f"theta {text!r} has {len(parts)} parts", "write it as A:M, e.g. 0.99:0.999", field="theta")
    for value in values:
        if not (0.0 < value <= 1.0) or math.isnan(value):
            raise RankError(f"`theta` {value} is outside (0, 1]", "use thresholds such as 0.99:0.999", field="theta")
    return values[0], values[1]


def variance_rank(eigenvalues: np.ndarray, theta: float, multiple: int = RANK_MULTIPLE) -> int | None:
    """Smallest multiple of ``multiple`` whose explained-variance share reaches
    ``theta``; None when no rank below the full one does."""
    total = float(np.sum(eigenvalues))
    n = len(eigenvalues)
    if total <= 0:
        return min(multiple, n)  # a constant output: any rank reproduces its mean
    cumulative = np.cumsum(eigenvalues) / total
    for k in range(multiple, n, multiple):
        if cumulative[k - 1] >= theta - 1e-12:
            return k
    return None


@dataclass(frozen=True)
class LiteASRPolicy:
    theta_attn: float = 0.99
    theta_mlp: float = 0.999
    multiple: int = RANK_MULTIPLE
    name: str = "liteasr"

    def __post_init__(self) -> None:
        parse_theta(f"{self.theta_attn}:{self.theta_mlp}")

    @staticmethod
    def keeps_low_rank(name: str, rank: int, d_in: int, d_out: int) -> bool:
        """The published break-even rule: ``k <= 0.5 d`` (attention), ``k <= 0.8 d`` (fc1/fc2),
        with ``d`` the model width (the smaller side of fc1 and fc2)."""
        limit = 0.5 if name in ATTENTION else 0.8
        return rank <= limit * min(d_in, d_out)

    def choose(self, spectra: Sequence[MatrixSpectrum], config) -> list[dict[str, int]]:
        plan = _empty_plan(config)
        for s in spectra:
            theta = self.theta_attn if s.name in ATTENTION else self.theta_mlp
            rank = variance_rank(s.eigenvalues, theta, self.multiple)
            if rank is not None and self.keeps_low_rank(s.name, rank, s.d_in, s.d_out):
                plan[s.layer][s.name] = rank
        return _finish(plan)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "theta_attn": self.theta_attn, "theta_mlp": self.theta_mlp,
                "multiple": self.multiple}


# -- budget ---------------------------------------------------------------------
WEIGHTINGS = ("standardized", "variance", "mixed")


def _tail_share(values: np.ndarray) -> np.ndarray:
    """``tail[k]``: share of ``values`` beyond the first ``k`` (k = 0..len)."""
    total = float(values.sum())
    if total <= 0:
        return np.zeros(len(values) + 1)
    return np.clip((total - np.concatenate([[0.0], np.cumsum(values)])) / total, 0.0, 1.0)


@dataclass(frozen=True)
class BudgetPolicy:
    """Ranks under one global budget: ``target_size`` x the dense encoder's
    parameters (``metric="params"``) or FLOPs per window (``"flops"``).

    Each matrix's predicted error at rank k is the share of its output
    ``weights`` the discarded components hold ("standardized": per-channel
    normalised variance, robust to outlier channels; "variance": plain
    variance, as the published rule; "mixed": the mean of both). The summed error is minimised over all
    matrices at once; a rank is only used where it is strictly cheaper than
    the dense matrix.
    """

    target_size: float
    metric: str = "params"
    weights: str = "standardized"
    multiple: int = RANK_MULTIPLE
    name: str = "budget"

    def __post_init__(self) -> None:
        if not isinstance(self.target_size, (int, float)) or not (0.0 < self.target_size <= 1.0):
            raise RankError(f"`target_size` {self.target_size} is outside (0, 1]",
                            "give a fraction of the dense size, such as 0.6", field="target_size")
        if self.metric not in ("params", "flops"):
            raise RankError(f"unknown budget metric {self.metric!r}", "use params or flops")
        if self.weights not in WEIGHTINGS:
            raise RankError(f"unknown error weighting {self.weights!r}", f"use one of {', '.join(WEIGHTINGS)}")

    def _options(self, s: MatrixSpectrum, config) -> tuple[list[int | None], np.ndarray, np.ndarray]:
        """Candidate ranks (None = dense), their predicted errors and costs."""
        kinds = ("standardized", "variance") if self.weights == "mixed" else (self.weights,)
        tail = np.mean([_tail_share(s.standardized if k == "standardized" else s.eigenvalues) for k in kinds], axis=0)
        ranks: list[int | None] = [
            k for k in range(self.multiple, min(s.d_in, s.d_out) + 1, self.multiple) if pays_off(s.d_in, s.d_out, k)
        ]
        errors = [s.sensitivity * max(float(tail[k]), 0.0) for k in ranks] + [0.0]
        ranks.append(None)
        costs = [matrix_cost(config, s.name, k, self.metric) for k in ranks]
        return ranks, np.array(errors), np.array(costs, dtype=np.float64)

    def choose(self, spectra: Sequence[MatrixSpectrum], config) -> list[dict[str, int]]:
        fixed = encoder_cost(config, None, self.metric) - sum(
            matrix_cost(config, s.name, None, self.metric) for s in spectra
        )
        budget = self.target_size * encoder_cost(config, None, self.metric) - fixed
        options = [self._options(s, config) for s in spectra]
        smallest = fixed + sum(float(costs.min()) for _, _, costs in options)
        if budget + fixed < smallest - 0.5:
            dense = encoder_cost(config, None, self.metric)
            raise RankError(
                f"`target_size` {self.target_size} is below the smallest reachable encoder "
                f"({smallest / dense:.3f} of dense {self.metric})",
                f"pass `target_size={math.ceil(smallest / dense * 100) / 100:.2f}` or more", field="target_size",
            )

        def pick(mu: float) -> list[int]:
            # per matrix: minimise error + mu * cost; ties go to the cheaper option
            return [int(np.lexsort((costs, errors + mu * costs))[0]) for _, errors, costs in options]

        def spent(choice: list[int]) -> float:
            return sum(float(options[m][2][i]) for m, i in enumerate(choice))

        choice = pick(0.0)
        if spent(choice) > budget:
            lo, hi = 0.0, 1e-12
            while spent(pick(hi)) > budget:
                hi *= 4.0
            for _ in range(100):  # bisection on the price of one unit of cost
                mid = (lo + hi) / 2
                lo, hi = (mid, hi) if spent(pick(mid)) > budget else (lo, mid)
            choice = pick(hi)
            choice = self._fill(options, choice, budget - spent(choice))
        plan = _empty_plan(config)
        for s, (ranks, _, _), i in zip(spectra, options, choice):
            if ranks[i] is not None:
                plan[s.layer][s.name] = int(ranks[i])
        return _finish(plan)

    @staticmethod
    def _fill(options: list, choice: list[int], slack: float) -> list[int]:
        """Spend what the Lagrangian step left over: repeatedly take the upgrade
        (to any costlier option of one matrix) with the best error drop per unit
        cost that still fits."""
        choice = list(choice)
        while True:
            best, best_gain = None, 0.0
            for m, (_, errors, costs) in enumerate(options):
                i = choice[m]
                extra = costs - costs[i]
                drop = errors[i] - errors
                fits = (extra > 0) & (extra <= slack) & (drop > 0)
                if fits.any():
                    gain = np.where(fits, drop / np.where(extra > 0, extra, 1.0), -1.0)
                    j = int(np.argmax(gain))
                    if gain[j] > best_gain:
                        best, best_gain = (m, j), float(gain[j])
            if best is None:
                return choice
            m, j = best
            slack -= float(options[m][2][j] - options[m][2][choice[m]])
            choice[m] = j

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "target_size": self.target_size, "metric": self.metric,
                "weights": self.weights, "multiple": self.multiple}


# -- explicit profile -----------------------------------------------------------
@dataclass(frozen=True)
class ProfilePolicy:
    """Ranks given per layer (LiteASR's ``low_rank_config``); spectra are ignored."""

    ranks: tuple[tuple[tuple[str, int], ...], ...]
    source: str = ""
    name: str = "profile"

    @classmethod
    def from_config(cls, low_rank_config: Sequence[Mapping[str, int]], source: str = "") -> ProfilePolicy:
        if isinstance(low_rank_config, Mapping) or not isinstance(low_rank_config, Sequence):
            raise RankError(
                f"rank profile {source or ''} is not a list of per-layer {{matrix: rank}} dicts".replace("  ", " "),
                'write [{"q_proj": 64, ...}, ...] or a config.json with "low_rank_config"',
            )
        for index, layer in enumerate(low_rank_config):
            if not isinstance(layer, Mapping):
                raise RankError(f"rank profile entry {index} is not a mapping", 'write {"q_proj": 64, ...}')
        return cls(tuple(tuple(sorted(dict(layer).items())) for layer in low_rank_config), source)

    @classmethod
    def from_file(cls, path: str | Path) -> ProfilePolicy:
        """A JSON list (one dict per encoder layer) or an object with ``low_rank_config``
        (a lite-whisper ``config.json``)."""
        path = Path(path)
        if not path.is_file():
            raise RankError(f"rank profile not found: {path}", "check the path", field="path")
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RankError(f"rank profile {path} is not valid JSON ({exc})", "fix the file") from None
        if isinstance(data, Mapping):
            if "low_rank_config" not in data:
                raise RankError(f"{path} has no low_rank_config", 'write a list or {"low_rank_config": [...]}')
            data = data["low_rank_config"]
        return cls.from_config(data, str(path))

    def choose(self, spectra: Sequence[MatrixSpectrum], config) -> list[dict[str, int]]:
        return validate_low_rank_config([dict(layer) for layer in self.ranks], config)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "source": self.source}


# -- presets and construction -----------------------------------------------------
#: named presets, as data: the policy and its settings
PRESETS: dict[str, dict[str, Any]] = {
    "acc": {"policy": "budget", "target_size": 0.8},
    "plain": {"policy": "liteasr", "theta": "0.99:0.999"},
    "fast": {"policy": "budget", "target_size": 0.6},
}


def make_policy(
    policy: str = DEFAULT_POLICY,
    theta: str | None = None,
    target_size: float | None = None,
    ranks: str | Path | None = None,
    metric: str = "params",
    preset: str | None = None,
    config=None,
) -> RankPolicy:
    """Build a policy from its settings (``policy``, ``theta``,
    ``target_size``, ``ranks``; errors name them) or a named preset; ``config`` (the
    model's ``WhisperConfig``) picks the default size (:func:`default_target_size`)."""
    if preset is not None:
        if preset not in PRESETS:
            raise RankError(f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}", field="preset")
        settings = PRESETS[preset]
        policy, theta, target_size = settings["policy"], settings.get("theta", theta), settings.get("target_size")
    elif theta is not None and policy != "liteasr":
        raise RankError(f"`theta` is a threshold of the liteasr policy, not of {policy}",
                        "add `policy=liteasr`, or drop `theta`", field="theta")
    elif target_size is not None and policy != "budget":
        raise RankError(f"`target_size` sets the budget policy's size, not the {policy} policy's",
                        "add `policy=budget` (the default), or drop `target_size`", field="target_size")
    if policy == "liteasr":
        attn, mlp = parse_theta(theta if theta is not None else "0.99:0.999")
        return LiteASRPolicy(attn, mlp)
    if policy == "budget":
        return BudgetPolicy(float(target_size if target_size is not None else default_target_size(config)),
                            metric=metric)
    if policy == "profile":
        if ranks is None:
            raise RankError("the profile policy needs a rank file", "pass `ranks` FILE (a low_rank_config JSON)",
                            field="ranks")
        try:
            return ProfilePolicy.from_file(ranks)
        except RankError as exc:
            raise exc.given_as("ranks") from None
    raise RankError(f"unknown rank policy {policy!r}", "use liteasr, budget or profile", field="policy")
