"""Numerical parity between a reference (PyTorch) and an artifact's outputs.

Per-output tolerances are data (:data:`PARITY_TOLERANCES`, per precision); an
element fails only when it exceeds both its absolute and its relative
tolerance (Polygraphy's rule). numpy only, so the torch-free runtimes can use
it; written here rather than taking Polygraphy's comparator because
Polygraphy ships with TensorRT's extra, which most installs do not have.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field

import numpy as np

from liteasr_export.errors import ToleranceError


@dataclass(frozen=True)
class OutputTolerance:
    atol: float
    rtol: float


#: precision -> output-name pattern -> tolerance. fp32 is the issue's parity
#: bar (1e-3); fp16 and int8 are looser, and WER is their real check.
PARITY_TOLERANCES: dict[str, dict[str, OutputTolerance]] = {
    "fp32": {"last_hidden_state": OutputTolerance(1e-3, 1e-3), "cross_*": OutputTolerance(1e-3, 1e-3),
             "logits": OutputTolerance(1e-3, 1e-3)},
    "fp16": {"last_hidden_state": OutputTolerance(5e-2, 5e-2), "cross_*": OutputTolerance(5e-2, 5e-2),
             "logits": OutputTolerance(1.5e-1, 5e-2)},
    "int8": {"last_hidden_state": OutputTolerance(1.0, 0.5), "cross_*": OutputTolerance(1.0, 0.5),
             "logits": OutputTolerance(4.0, 0.5)},
}


def tolerance_for(precision: str, output: str) -> OutputTolerance:
    for pattern, tol in PARITY_TOLERANCES[precision].items():
        if fnmatch.fnmatch(output, pattern):
            return tol
    raise KeyError(f"no {precision} tolerance declared for output {output!r}")


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
    failing: int  # elements over both tolerances

    @property
    def passed(self) -> bool:
        return self.failing == 0


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
            detail = "; ".join(f"{o.name}: max abs {o.max_abs:.3g} (atol {o.atol:g}), max rel {o.max_rel:.3g} "
                               f"(rtol {o.rtol:g}), {o.failing} elements over both" for o in bad)
            raise ToleranceError(f"{self.artifact} ({self.precision}) fails parity: {detail}",
                                 "check the export settings; rerun with --debug, or --no-validate to skip")


def compare_output(name: str, reference: np.ndarray, actual: np.ndarray, tol: OutputTolerance) -> OutputParity:
    ref = np.asarray(reference, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    if ref.shape != act.shape:
        from liteasr_export.errors import ShapeError

        raise ShapeError(f"output {name} has shape {act.shape}, the reference {ref.shape}", "re-export the graph")
    diff = np.abs(act - ref)
    rel = diff / np.maximum(np.abs(ref), np.finfo(np.float64).tiny)
    finite = np.isfinite(act)
    failing = int(np.count_nonzero(((diff > tol.atol) & (rel > tol.rtol)) | ~finite))
    denom = np.linalg.norm(ref) * np.linalg.norm(act)
    cosine = float(np.dot(ref.ravel(), act.ravel()) / denom) if denom > 0 else 1.0
    return OutputParity(name, list(ref.shape), float(diff.max(initial=0.0)), float(rel.max(initial=0.0)),
                        float(diff.mean()) if diff.size else 0.0, cosine, tol.atol, tol.rtol, failing)


def compare(artifact: str, precision: str, reference: dict[str, np.ndarray],
            actual: dict[str, np.ndarray]) -> ParityReport:
    """Compare every reference output (names must match) under ``precision``'s tolerances."""
    missing = sorted(set(reference) - set(actual))
    if missing:
        from liteasr_export.errors import OutputMismatchError

        raise OutputMismatchError(f"{artifact} lacks outputs {missing}", "re-export the artifacts")
    report = ParityReport(artifact, precision)
    for name, ref in reference.items():
        report.outputs.append(compare_output(name, ref, actual[name], tolerance_for(precision, name)))
    return report
