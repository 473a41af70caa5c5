"""Numerical parity between a reference (PyTorch) and an artifact's outputs.

Per-output tolerances are data, declared with the graphs
(:data:`liteasr_export.graphs.PARITY_TOLERANCES`, per precision).
fp32 is checked element by element by Polygraphy's comparator
(``SimpleCompareFunc`` with per-output ``atol`` / ``rtol`` and
``check_error_stat="elemwise"``): an element fails only when it exceeds both
its absolute and its relative tolerance. fp16 and int8 are checked on error
statistics: their rounding puts a few elements far off by design (tiny.en
int8: max abs 14.5 on hidden states averaging 0.66 while WER is unchanged),
so the mean absolute error and the cosine similarity decide. Polygraphy's
``mean`` statistic passes when the mean absolute OR the mean relative error is
within tolerance, and relative errors explode on near-zero reference
elements, so that bound (``atol + rtol * mean |reference|``) and the cosine
are checked here (Polygraphy supplies the max absolute and relative errors).
numpy and Polygraphy's pure-Python comparator only: no torch, no TensorRT.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from polygraphy.comparator import IterationResult, SimpleCompareFunc
from polygraphy.logger import G_LOGGER

from liteasr_export.errors import OutputMismatchError, ShapeError, ToleranceError
from liteasr_export.graphs import OutputTolerance, tolerance_for


@dataclass
class OutputParity:
    name: str
    shape: list[int]
    max_abs: float
    max_rel: float
    mean_abs: float
    cosine: float
    atol: float
    rtol: float
    stat: str
    failing: int  # elements over both tolerances
    passed: bool


@dataclass
class ParityReport:
    artifact: str
    precision: str
    outputs: list[OutputParity] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def failures(self) -> list[OutputParity]:
        return [o for o in self.outputs if not o.passed]

    def to_dict(self) -> dict:
        return {"artifact": self.artifact, "precision": self.precision, "passed": self.passed,
                "outputs": [asdict(o) for o in self.outputs]}

    def raise_on_failure(self) -> None:
        bad = self.failures()
        if bad:
            detail = "; ".join(f"{o.name}: max abs {o.max_abs:.3g}, mean abs {o.mean_abs:.3g}, cosine {o.cosine:.6f} "
                               f"({o.stat} check, atol {o.atol:g}, rtol {o.rtol:g}), {o.failing} elements over both"
                               for o in bad)
            raise ToleranceError(f"{self.artifact} ({self.precision}) fails parity: {detail}",
                                 "check the export settings; rerun with --debug, or --no-validate to skip")


def _polygraphy_compare(name: str, reference: np.ndarray, actual: np.ndarray, tol: OutputTolerance):
    """Polygraphy's element-wise comparison of one output (its verdict, and
    its max / mean absolute and max relative errors), quietly."""
    compare_func = SimpleCompareFunc(atol={name: tol.atol}, rtol={name: tol.rtol},
                                     check_error_stat={name: "elemwise"})
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):  # its per-output log lines would interleave with the CLI's
        return compare_func(IterationResult({name: actual}, runner_name="artifact"),
                            IterationResult({name: reference}, runner_name="reference"))[name]


def compare_output(name: str, reference: np.ndarray, actual: np.ndarray, tol: OutputTolerance) -> OutputParity:
    ref = np.asarray(reference, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    if ref.shape != act.shape:
        raise ShapeError(f"output {name} has shape {act.shape}, the reference {ref.shape}", "re-export the graph")
    if tol.stat not in ("elemwise", "mean"):
        raise ValueError(f"unknown error statistic {tol.stat!r}")
    finite = np.isfinite(act)
    if ref.size:
        result = _polygraphy_compare(name, ref, act, tol)
        elementwise_ok, max_abs, max_rel = bool(result), float(result.max_absdiff), float(result.max_reldiff)
    else:
        elementwise_ok, max_abs, max_rel = True, 0.0, 0.0
    diff = np.abs(act - ref)
    mean_abs = float(diff.mean()) if diff.size else 0.0  # numpy's pairwise sum, as reports before Polygraphy
    failing = int(np.count_nonzero(((diff > tol.atol) & (diff > tol.rtol * np.abs(ref))) | ~finite))
    denom = np.linalg.norm(ref) * np.linalg.norm(act)
    cosine = float(np.dot(ref.ravel(), act.ravel()) / denom) if denom > 0 else 1.0
    if tol.stat == "elemwise":
        passed = elementwise_ok
    else:
        bound = tol.atol + tol.rtol * (float(np.abs(ref).mean()) if ref.size else 0.0)
        passed = bool(finite.all()) and mean_abs <= bound
    passed = passed and cosine >= tol.min_cosine
    return OutputParity(name, list(ref.shape), max_abs, max_rel, mean_abs, cosine, tol.atol, tol.rtol, tol.stat,
                        failing, passed)


def compare(artifact: str, precision: str, reference: dict[str, np.ndarray],
            actual: dict[str, np.ndarray]) -> ParityReport:
    """Compare every reference output (names must match) under ``precision``'s tolerances."""
    missing = sorted(set(reference) - set(actual))
    if missing:
        raise OutputMismatchError(f"{artifact} lacks outputs {missing}", "re-export the artifacts")
    report = ParityReport(artifact, precision)
    for name, ref in reference.items():
        report.outputs.append(compare_output(name, ref, actual[name], tolerance_for(precision, name)))
    return report
