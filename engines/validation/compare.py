"""Numerical parity of an artifact's outputs against a float64 reference,
judged against float32 PyTorch's own error (the arithmetic noise).

A fixed element-wise tolerance is the wrong test for deep float32 graphs: two
correct float32 implementations differ by their summation order, and over
many layers at large widths that difference alone crosses any fixed bound on
some machine. So each output is compared with the float64 PyTorch run of the
same model, and so is the float32 PyTorch run (``noise``): the artifact
passes when its error is of the order of PyTorch's own (a declared multiple
plus a small floor, both relative to the output's RMS; see
:class:`liteasr_export.core.graphs.OutputTolerance`, declared per output and
precision in :data:`liteasr_export.core.graphs.PARITY_TOLERANCES`).

Statistics: the error quantile (p99.9 of ``|artifact - float64|``) and the
max / mean absolute errors are Polygraphy's comparator's
(``SimpleCompareFunc`` with ``check_error_stat="quantile"``; its verdict
decides the quantile check, with the limit as ``atol`` and ``rtol`` 0).
Polygraphy has no RMS error and no cosine: those two are computed here with
numpy (one line each).
numpy and Polygraphy's pure-Python comparator only: no torch, no TensorRT.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from polygraphy.comparator import IterationResult, SimpleCompareFunc
from polygraphy.logger import G_LOGGER

from liteasr_export.core.errors import OutputMismatchError, ShapeError, ToleranceError
from liteasr_export.core.graphs import OutputTolerance, tolerance_for


@dataclass
class OutputParity:
    """One output's errors against float64, all but ``max_abs`` / ``mean_abs``
    relative to ``scale`` (the float64 output's RMS)."""

    name: str
    shape: list[int]
    scale: float
    #: the artifact's relative RMS error against float64
    error: float
    #: float32 PyTorch's relative RMS error against float64 (the noise)
    noise: float
    #: error / noise (None when the noise is 0)
    ratio: float | None
    #: noise_multiple * noise + floor
    limit: float
    quantile: float
    #: the artifact's ``quantile`` of |error| / scale, PyTorch's, and its limit
    error_quantile: float
    noise_quantile: float
    quantile_limit: float
    cosine: float
    min_cosine: float
    max_abs: float
    mean_abs: float
    #: float32 PyTorch's max abs error against float64
    noise_max_abs: float
    noise_multiple: float
    passed: bool

    def describe(self) -> str:
        return (f"{self.name}: error {self.error:.3g} of its RMS against float64 (float32 PyTorch's {self.noise:.3g}, "
                f"{_ratio(self.ratio)}; limit {self.limit:.3g}), p{100 * self.quantile:g} {self.error_quantile:.3g} "
                f"(PyTorch's {self.noise_quantile:.3g}, limit {self.quantile_limit:.3g}), cosine {self.cosine:.6f} "
                f"(min {self.min_cosine:g}), max abs {self.max_abs:.3g} (PyTorch's {self.noise_max_abs:.3g})")


def _ratio(ratio: float | None) -> str:
    return "no ratio" if ratio is None else f"{ratio:.3g}x"


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
        return {"artifact": self.artifact, "precision": self.precision, "reference": "float64 PyTorch",
                "passed": self.passed, "outputs": [asdict(o) for o in self.outputs]}

    def raise_on_failure(self) -> None:
        bad = self.failures()
        if bad:
            raise ToleranceError(f"{self.artifact} ({self.precision}) fails parity: "
                                 + "; ".join(o.describe() for o in bad),
                                 "check the export settings, or skip the check (`validate=False`)")


def _polygraphy_quantile(name: str, reference: np.ndarray, actual: np.ndarray, quantile: float, atol: float):
    """Polygraphy's comparison of one output on the ``quantile`` of the
    absolute error (``rtol`` 0: the absolute limit alone decides), quietly."""
    compare_func = SimpleCompareFunc(atol={name: atol}, rtol={name: 0.0}, check_error_stat={name: "quantile"},
                                     error_quantile={name: quantile})
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):  # its per-output log lines would interleave with the CLI's
        return compare_func(IterationResult({name: actual}, runner_name="artifact"),
                            IterationResult({name: reference}, runner_name="float64"))[name]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def compare_output(name: str, reference: np.ndarray, actual: np.ndarray, noise: np.ndarray,
                   tol: OutputTolerance) -> OutputParity:
    """``actual`` against the float64 ``reference``, with float32 PyTorch's
    output ``noise`` (same shape) setting the noise level."""
    ref = np.ascontiguousarray(reference, dtype=np.float64)  # Polygraphy reshapes views
    act = np.ascontiguousarray(actual, dtype=np.float64)
    fp32 = np.ascontiguousarray(noise, dtype=np.float64)
    for label, other in (("output", act), ("float32 PyTorch output", fp32)):
        if other.shape != ref.shape:
            raise ShapeError(f"{label} {name} has shape {other.shape}, the float64 reference {ref.shape}",
                             "re-export the graph")
    if not ref.size:
        return OutputParity(name, list(ref.shape), 0.0, 0.0, 0.0, 1.0, tol.floor, tol.quantile, 0.0, 0.0,
                            tol.quantile_floor, 1.0, tol.min_cosine, 0.0, 0.0, 0.0, tol.noise_multiple, True)
    scale = _rms(ref) or 1.0  # an all-zero output: errors are absolute
    error, noise_error = _rms(act - ref) / scale, _rms(fp32 - ref) / scale
    noise_result = _polygraphy_quantile(name, ref, fp32, tol.quantile, math.inf)
    noise_q = float(noise_result.quantile_absdiff) / scale
    limit, quantile_limit = tol.limits(noise_error, noise_q)
    result = _polygraphy_quantile(name, ref, act, tol.quantile, quantile_limit * scale)
    denom = np.linalg.norm(ref) * np.linalg.norm(act)
    cosine = float(np.dot(ref.ravel(), act.ravel()) / denom) if denom > 0 else float(not act.any())
    finite = bool(np.isfinite(act).all())
    passed = finite and bool(result) and error <= limit and cosine >= tol.min_cosine
    ratio = error / noise_error if noise_error > 0 else None  # (stays valid JSON)
    return OutputParity(name, list(ref.shape), scale, error, noise_error, ratio, limit, tol.quantile,
                        float(result.quantile_absdiff) / scale, noise_q, quantile_limit, cosine, tol.min_cosine,
                        float(result.max_absdiff), float(result.mean_absdiff), float(noise_result.max_absdiff),
                        tol.noise_multiple, passed)


def compare(artifact: str, precision: str, reference: dict[str, np.ndarray], actual: dict[str, np.ndarray],
            noise: dict[str, np.ndarray]) -> ParityReport:
    """Compare every float64 ``reference`` output with ``actual`` under
    ``precision``'s tolerances; ``noise``: float32 PyTorch's outputs (names
    must match)."""
    for label, outputs in ((artifact, actual), ("the float32 PyTorch run", noise)):
        missing = sorted(set(reference) - set(outputs))
        if missing:
            raise OutputMismatchError(f"{label} lacks outputs {missing}", "re-export the artifacts")
    report = ParityReport(artifact, precision)
    for name, ref in reference.items():
        report.outputs.append(compare_output(name, ref, actual[name], noise[name], tolerance_for(precision, name)))
    return report
