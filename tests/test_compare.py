"""The parity comparator: elementwise for fp32, error statistics for fp16/int8."""

from __future__ import annotations

import numpy as np
import pytest

from engines.validation.compare import compare
from liteasr_export.graphs import tolerance_for
from liteasr_export.errors import OutputMismatchError, ShapeError, ToleranceError


@pytest.fixture()
def reference():
    return np.random.default_rng(0).standard_normal((2, 50, 8)).astype(np.float32)


def test_an_element_fails_only_over_both_tolerances(reference):
    near = reference.copy()
    near[0, 0, 0] += 5e-4  # within atol
    big = reference.copy()
    big.flat[np.argmax(np.abs(reference))] *= 1.0005  # over atol, within rtol
    assert compare("g", "fp32", {"last_hidden_state": reference}, {"last_hidden_state": near}).passed
    assert compare("g", "fp32", {"last_hidden_state": reference}, {"last_hidden_state": big}).passed
    bad = reference.copy()
    bad[1, 2, 3] += 0.1
    report = compare("g", "fp32", {"last_hidden_state": reference}, {"last_hidden_state": bad})
    assert not report.passed and report.outputs[0].failing == 1
    with pytest.raises(ToleranceError, match=r"last_hidden_state: max abs 0\.1"):
        report.raise_on_failure()


def test_int8_tolerates_a_few_outliers_but_not_a_wrong_output(reference):
    outlier = reference.copy()
    outlier[0, 0, 0] += 3.0  # one element far off: normal for int8, fatal for fp32
    assert compare("g", "int8", {"logits": reference}, {"logits": outlier}).passed
    assert not compare("g", "fp32", {"logits": reference}, {"logits": outlier}).passed
    noise = reference + np.random.default_rng(1).normal(0, 0.5, reference.shape).astype(np.float32)
    assert not compare("g", "int8", {"logits": reference}, {"logits": noise}).passed
    nan = reference.copy()
    nan[0, 0, 0] = np.nan
    assert not compare("g", "fp16", {"logits": reference}, {"logits": nan}).passed


def test_tolerances_are_declared_per_precision_and_output():
    assert tolerance_for("fp32", "cross_key.3").stat == "elemwise"
    assert tolerance_for("int8", "logits").stat == "mean"
    with pytest.raises(KeyError):
        tolerance_for("fp32", "unknown")


def test_shape_and_name_mismatches_are_typed(reference):
    with pytest.raises(ShapeError):
        compare("g", "fp32", {"logits": reference}, {"logits": reference[:1]})
    with pytest.raises(OutputMismatchError):
        compare("g", "fp32", {"logits": reference}, {})


def test_polygraphy_compares_quietly(reference, capsys):
    """The element-wise verdict is Polygraphy's comparator's; it prints nothing."""
    bad = reference.copy()
    bad[0, 1, 2] += 0.1
    assert not compare("g", "fp32", {"logits": reference}, {"logits": bad}).passed
    assert compare("g", "fp32", {"logits": reference}, {"logits": reference.copy()}).passed
    out = capsys.readouterr()
    assert out.out == "" and "Polygraphy" not in out.err
