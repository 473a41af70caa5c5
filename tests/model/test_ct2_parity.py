"""tiny.en imported from CTranslate2 against CTranslate2 itself (issue 2's acceptance):
the same greedy tokens on >= 95% of the built-in evaluation set and encoder
outputs within 2e-3 on identical features. A few clips differ by more at the
speech/padding boundary; a float64 run shows that excess is CTranslate2's own
rounding, so the test also pins our float32 error below 2e-3 and below CT2's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ctranslate2")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_tiny_en_matches_ctranslate2(tmp_path):
    """Runs the measurement of bench/ct2_parity.py (tiny.en, the built-in set)
    as a script, writing its result here instead of bench/results."""
    output = tmp_path / "ct2_parity.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "ct2_parity.py"), "--output", str(output)],
                         cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(output.read_text())
    assert result["n"] == 48
    assert result["encoder_median_clip_max_abs_diff"] <= 2e-4
    assert result["clips_within_2e-3"] >= 0.9 * result["n"]
    assert result["ours_fp32_vs_fp64_max_abs_diff"] <= 2e-3
    assert result["ours_fp32_vs_fp64_max_abs_diff"] < result["ctranslate2_fp32_vs_fp64_max_abs_diff"]
    assert result["identical_share"] >= 0.95, result["mismatched"]
