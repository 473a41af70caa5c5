"""tiny.en imported from CTranslate2 against CTranslate2 itself (issue 2's acceptance):
the same greedy tokens on >= 95% of the built-in evaluation set and encoder
outputs within 2e-3 on identical features. A few clips differ by more at the
speech/padding boundary; a float64 run shows that excess is CTranslate2's own
rounding, so the test also pins our float32 error below 2e-3 and below CT2's."""

from __future__ import annotations

import pytest

pytest.importorskip("ctranslate2")


@pytest.mark.slow
def test_tiny_en_matches_ctranslate2():
    from bench.ct2_parity import measure

    result = measure("tiny.en", "builtin")
    assert result["n"] == 48
    assert result["encoder_median_clip_max_abs_diff"] <= 2e-4
    assert result["clips_within_2e-3"] >= 0.9 * result["n"]
    assert result["ours_fp32_vs_fp64_max_abs_diff"] <= 2e-3
    assert result["ours_fp32_vs_fp64_max_abs_diff"] < result["ctranslate2_fp32_vs_fp64_max_abs_diff"]
    assert result["identical_share"] >= 0.95, result["mismatched"]
