"""The quality gate: WER increase and label-free agreement per check set, the
verdict, the dense transcript cache and the long recording; then, on the real
tiny.en weights, a broken compression (every rank forced to 16) must fail the
gate and a sound one must pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration.datasets import Utterance
from engines.validation.quality_gate import (
    CheckSet,
    TranscriptCache,
    check_set,
    compare,
    long_recording,
    run_gate,
)
from liteasr_export.core.errors import EXIT_QUALITY
from liteasr_export.core.frontend import SAMPLE_RATE


def _check(references: list[str] | None, name: str = "set") -> CheckSet:
    n = len(references) if references is not None else 3
    return CheckSet(name, [f"{name}/{i}" for i in range(n)], [np.zeros(SAMPLE_RATE, np.float32)] * n,
                    references, fingerprint=f"fp-{name}-{n}")


def test_compare_scores_wer_increase_and_agreement() -> None:
    refs = ["the cat sat on the mat", "hello there"]
    dense = ["the cat sat on the mat", "hello their"]  # 1 error in 8 words
    broken = ["the the the the", "hello"]  # many errors
    result = compare(_check(refs), dense, {"good": dense, "bad": broken}, {"good": 0.1, "bad": 0.2})
    assert result.dense_wer == pytest.approx(12.5)
    assert result.wer["good"] == pytest.approx(12.5) and result.increase["good"] == 0
    assert result.agreement["good"] == 0
    assert result.wer["bad"] > 50 and result.increase["bad"] == pytest.approx(result.wer["bad"] - 12.5)
    assert result.agreement["bad"] > 50  # measured against the dense transcripts, no references needed
    unlabeled = compare(_check(None), ["a b c", "d e", "f"], {"x": ["a b c", "d", "f"]}, {"x": 0.0})
    assert not unlabeled.labeled and unlabeled.dense_wer is None and unlabeled.wer == {}
    assert unlabeled.agreement["x"] == pytest.approx(100 / 6, abs=1e-3)


def test_gate_fails_past_either_limit_and_passes_within_them(tmp_path: Path) -> None:
    labeled, unlabeled = _check(["alpha beta gamma delta"] * 2, "refs"), _check(None, "mine")
    dense_texts = {"refs": ["alpha beta gamma delta"] * 2, "mine": ["a b c d"] * 3}
    calls = []

    def dense(audio):
        calls.append(len(audio))
        return dense_texts["refs" if len(audio) == 2 else "mine"]

    def backend(texts):
        return lambda audio: texts["refs" if len(audio) == 2 else "mine"]

    same = backend(dense_texts)
    worse = backend({"refs": ["alpha beta gamma"] * 2, "mine": ["a b c d"] * 3})  # +25 points on refs
    drifting = backend({"refs": dense_texts["refs"], "mine": ["a b x y"] * 3})  # 50 % disagreement
    cache = TranscriptCache(tmp_path / "transcripts")
    ok = run_gate([labeled, unlabeled], dense, {"same": same}, "model", cache, 1.0, 10.0)
    assert ok.passed and calls == [2, 3]
    bad = run_gate([labeled, unlabeled], dense, {"worse": worse, "drift": drifting}, "model", cache, 1.0, 10.0)
    assert calls == [2, 3]  # the dense transcripts came from the cache
    assert not bad.passed and len(bad.failures) == 2
    assert "refs: WER 0.00 % dense -> 25.00 % worse (+25.00 points, limit 1)" in bad.failures[0]
    assert "mine: 50.00 % of the dense transcript's words differ in drift (limit 10 %)" in bad.failures[1]
    assert bad.to_dict()["passed"] is False and "FAIL" in "\n".join(bad.to_markdown())
    loose = run_gate([labeled, unlabeled], dense, {"worse": worse}, "model", cache, 30.0, 10.0)
    assert loose.passed
    run_gate([labeled], dense, {"same": same}, "another model", cache)
    assert calls == [2, 3, 2]  # another model key is another cache entry


def test_stop_early_ends_a_failed_set_and_skips_the_rest(monkeypatch) -> None:
    import engines.validation.quality_gate as gate

    monkeypatch.setattr(gate, "STOP_CHUNK", 10)
    n = 100
    refs = [f"word{i} other{i}" for i in range(n)]
    labeled = CheckSet("refs", [f"r/{i}" for i in range(n)], [np.full(1, i, np.float32) for i in range(n)], refs, "fp")
    later = _check(None, "later")
    dense = lambda audio: [refs[int(a[0])] for a in audio] if len(audio) == n else ["a b c"] * len(audio)  # noqa: E731
    seen = []

    def broken(audio):  # every clip wrong: the set has failed for certain after 10 of 100 clips
        seen.append(len(audio))
        return ["nonsense"] * len(audio)

    full = run_gate([labeled, later], dense, {"broken": broken}, "m", None, 1.0, 10.0)
    assert seen == [n, 3] and not full.passed and not full.skipped and full.sets[0].stopped_of is None
    seen.clear()
    fast = run_gate([labeled, later], dense, {"broken": broken}, "m", None, 1.0, 10.0, stop_early=True)
    assert seen == [10] and fast.skipped == ["later"] and len(fast.failures) == 1
    assert "WER at least 10.00 % against dense 0.00 % (limit +1), certain after 10 of 100 clips" in fast.failures[0]
    assert fast.sets[0].utterances == 10 and fast.sets[0].stopped_of == n and fast.sets[0].wer["broken"] == 100.0
    assert "10 of 100 (stopped)" in "\n".join(fast.to_markdown())
    # a model that passes is transcribed in full, chunk by chunk, to the same verdict and figures
    good = lambda audio: [refs[int(a[0])] for a in audio]  # noqa: E731
    chunked = run_gate([labeled], dense, {"good": good}, "m", None, 1.0, 10.0, stop_early=True)
    assert chunked.passed and chunked.sets[0].utterances == n and chunked.sets[0].wer["good"] == 0.0


def test_cache_ignores_a_damaged_entry(tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path)
    check = _check(["a b"])
    cache.put("m", check, ["a b"])
    assert cache.get("m", check) == ["a b"]
    next(tmp_path.glob("*.json")).write_text("{not json")
    assert cache.get("m", check) is None
    assert TranscriptCache(None).get("m", check) is None


def _clip(path: Path, seconds: float, value: float) -> Path:
    sf.write(str(path), np.full(int(seconds * SAMPLE_RATE), value, np.float32), SAMPLE_RATE)
    return path


def test_long_recording_joins_clips_and_references(tmp_path: Path) -> None:
    utterances = [Utterance(str(_clip(tmp_path / f"{i}.wav", 10.0, 0.01 * (i + 1))), f"clip {i}", f"u{i}")
                  for i in range(3)]
    long = long_recording(utterances, minutes=1.0)
    assert len(long.audio) == 1 and long.audio[0].size >= 60 * SAMPLE_RATE
    assert long.references == [" ".join(f"clip {i % 3}" for i in range(6))]
    assert long.fingerprint != long_recording(utterances, minutes=2.0).fingerprint
    plain = check_set("plain", utterances)
    assert plain.references == ["clip 0", "clip 1", "clip 2"] and len(plain.audio) == 3
    _clip(tmp_path / "0.wav", 10.0, 0.5)  # new content: a new fingerprint
    assert check_set("plain", utterances).fingerprint != plain.fingerprint
    unlabeled = check_set("folder", [Utterance(u.audio, None, u.id) for u in utterances])
    assert unlabeled.references is None


@pytest.mark.slow
def test_gate_refuses_a_broken_compression_and_passes_a_sound_one(tmp_path: Path) -> None:
    """tiny.en with every encoder matrix at rank 16 must fail; rank 16 on one
    matrix only must pass. Both are judged against dense tiny.en on the
    built-in evaluation clips, through the export's own gate."""
    from liteasr_export.app.cli import export_main
    from liteasr_export.app.export.pipeline import ExportOptions

    def run(ranks: str, out: Path, *extra: str) -> int:
        return export_main(["--model", "tiny.en", "--output", str(out), "--policy", "profile", "--ranks", ranks,
                            "--calib", "builtin", "--calib-samples", "8", "--eval-limit", "16", "--gate-sets", "none",
                            "--parity-clips", "1", "--quiet", "--cache-dir", str(tmp_path / "cache"), *extra])

    layers = 4
    broken = tmp_path / "broken.json"
    broken.write_text(str([{n: 16 for n in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")}] * layers)
                      .replace("'", '"'))
    assert run(str(broken), tmp_path / "out-broken") == EXIT_QUALITY
    assert not (tmp_path / "out-broken").exists()
    assert run(str(broken), tmp_path / "out-forced", "--allow-degradation") == 0
    import json

    manifest = json.loads((tmp_path / "out-forced" / "manifest.json").read_text())
    assert manifest["degraded"] is True and manifest["validation"]["quality"]["passed"] is False
    assert "DEGRADED" in (tmp_path / "out-forced" / "report.md").read_text()
    mild = tmp_path / "mild.json"
    mild.write_text('[{"q_proj": 128}, {}, {}, {}]')
    assert run(str(mild), tmp_path / "out-mild") == 0
    manifest = json.loads((tmp_path / "out-mild" / "manifest.json").read_text())
    assert manifest["degraded"] is False and manifest["validation"]["quality"]["passed"] is True
    assert ExportOptions.__dataclass_fields__["max_wer_increase"].default == 1.0


def test_increase_uncertainty_is_paired_per_utterance() -> None:
    refs = ["red green blue white"] * 6
    dense = list(refs)
    # the same +2 errors on every clip: a real shift, no spread, so no uncertainty
    shifted = ["red green"] * 6
    result = compare(_check(refs), dense, {"shift": shifted}, {})
    assert result.increase["shift"] == pytest.approx(50.0) and result.increase_se["shift"] == 0.0
    assert result.units == 6
    # +4 errors on one clip only: the same increase would be +16.7 points, but it rests on one clip
    lumpy = ["", *refs[1:]]
    lumped = compare(_check(refs), dense, {"lumpy": lumpy}, {})
    diffs = np.array([4, 0, 0, 0, 0, 0], float)
    expected = 100 * np.sqrt(6 * diffs.var(ddof=1)) / 24
    assert lumped.increase["lumpy"] == pytest.approx(100 * 4 / 24, abs=1e-3)
    assert lumped.increase_se["lumpy"] == pytest.approx(expected, abs=1e-3)


def test_long_recording_is_scored_per_block_of_its_text() -> None:
    words = [f"w{i}" for i in range(40)]
    reference = " ".join(words)
    # 120 s of audio: four 30-s blocks of 10 reference words each
    long = CheckSet("long", ["long/1"], [np.zeros(120 * SAMPLE_RATE, np.float32)], [reference], "fp",
                    block_seconds=30.0)
    damaged = " ".join(words[:30])  # the last block deleted: 10 errors, all in one block
    result = compare(long, [reference], {"c": [damaged]}, {})
    assert result.units == 4 and result.increase["c"] == pytest.approx(25.0)
    diffs = np.array([0, 0, 0, 10], float)
    assert result.increase_se["c"] == pytest.approx(100 * np.sqrt(4 * diffs.var(ddof=1)) / 40, abs=1e-3)
    whole = CheckSet("long", ["long/1"], long.audio, [reference], "fp")  # one unit: no estimate
    assert compare(whole, [reference], {"c": [damaged]}, {}).increase_se["c"] == float("inf")


def test_margin_separates_a_clear_pass_from_one_within_the_noise() -> None:
    refs = ["alpha beta gamma delta epsilon"] * 20  # 100 words: one error is 1 point
    clear = list(refs)
    clear[0] = "alpha beta gamma delta"  # +1 error on one clip: +1.0, at the limit, but within noise
    within = run_gate([_check(refs)], lambda a: list(refs), {"c": lambda a: clear}, "m", None, 1.0, 10.0)
    assert within.passed and not within.passed_with_margin
    assert "set: +1.00 ± 1.00 points (c), limit 1" in within.margin_shortfalls()[0]
    same = run_gate([_check(refs)], lambda a: list(refs), {"c": lambda a: list(refs)}, "m", None, 1.0, 10.0)
    assert same.passed_with_margin and same.to_dict()["passed_with_margin"] is True
    # stopping short of the margin skips the sets after the first one that falls short
    later = _check(["x y"], "later")
    stopped = run_gate([_check(refs), later], lambda a: list(refs) if len(a) == 20 else ["x y"],
                       {"c": lambda a: clear if len(a) == 20 else ["x y"]}, "m", None, 1.0, 10.0,
                       stop_short_of_margin=1.0)
    assert stopped.skipped == ["later"] and not stopped.passed_with_margin
    assert "± 1.00" in "\n".join(stopped.to_markdown())


def test_a_fallback_storm_of_trimmed_contexts_fails_the_gate_even_with_equal_texts(tmp_path: Path) -> None:
    from engines.validation.quality_gate import MAX_CONTEXT_RETRY_SHARE, WindowWatch
    from liteasr_export.core.windowed import Transcript, WindowReport

    check = _check(["alpha beta"] * 10, "short")
    texts = ["alpha beta"] * 10

    def detailed(retried: int):
        def run(audio):
            def window(i):
                return WindowReport(0.0, 1.0, 0.0, False, "ok", -0.1, 1.0, 0.0, [0.0], audio_context=300 if i >= retried
                                    else 3000, full_context_retry=i < retried)
            return [Transcript(t, 1.0, None, None, [], [window(i)]) for i, t in enumerate(texts[: len(audio)])]
        return run

    allowed = int(MAX_CONTEXT_RETRY_SHARE * 10)
    calm = run_gate([check], lambda a: texts, {"auto": WindowWatch(detailed(allowed))}, "m", None, 1.0, 10.0)
    assert calm.passed and calm.sets[0].windows["auto"] == {"windows": 10, "trimmed": 10, "retried": allowed}
    storm = run_gate([check], lambda a: texts, {"auto": WindowWatch(detailed(allowed + 1))}, "m", None, 1.0, 10.0)
    assert storm.sets[0].increase["auto"] == 0 and not storm.passed
    assert storm.failures == [f"short: {allowed + 1} of 10 windows decoded on a trimmed audio context failed and "
                              f"were decoded again on 30 s (auto; limit {100 * MAX_CONTEXT_RETRY_SHARE:g} %)"]
    assert f"short {allowed + 1} of 10 (auto)" in "\n".join(storm.to_markdown())
    # full 30 s windows are not watched: the same retry flags on untrimmed windows cannot occur, and no
    # trimmed window means no storm to judge
    full = run_gate([check], lambda a: texts, {"full": lambda a: texts}, "m", None, 1.0, 10.0)
    assert full.passed and full.sets[0].windows == {}
