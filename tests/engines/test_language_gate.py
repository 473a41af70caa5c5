"""The gate in several languages: each set scored with its language's
normalizer and decoded with its language token, language detection gated
against the dense model, translation reported; an export that keeps English
but breaks another language is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration.datasets import Utterance
from engines.validation.languages import (MIN_DETECTION_AGREEMENT, LanguageProbe, check_language, check_languages,
                                          detection_failures)
from engines.validation.quality_gate import CheckSet, GateResult, TranscriptCache, check_set, check_sets, run_gate
from liteasr_export.core.frontend import SAMPLE_RATE


def _set(name: str, references: list[str], language: str | None) -> CheckSet:
    # clip i holds the value i, so a fake model knows which clip it transcribes
    return CheckSet(name, [f"{name}/{i}" for i in range(len(references))],
                    [np.full(SAMPLE_RATE, i, np.float32) for i in range(len(references))], references,
                    f"fp-{name}", language=language)


def _clips(tmp_path: Path, n: int, language: str | None, text: str = "hola") -> list[Utterance]:
    out = []
    for i in range(n):
        path = tmp_path / f"{language}-{i}.wav"
        sf.write(str(path), np.full(SAMPLE_RATE, 0.01 * (i + 1), np.float32), SAMPLE_RATE)
        out.append(Utterance(str(path), text, f"{language}/{i}", None, language))
    return out


def test_a_set_takes_its_utterances_language_and_is_scored_with_its_normalizer(tmp_path) -> None:
    spanish = check_set("es-set", _clips(tmp_path, 2, "es", "ten cuidado"))
    assert spanish.language == "es"
    english_normalized = CheckSet("same", spanish.ids, spanish.audio, spanish.references, "fp")
    # Whisper's English normalizer reads "ten" as the number 10; the Spanish set keeps words as written
    run = {"c": lambda audio: ["10 cuidado"] * len(audio)}
    dense = lambda audio: ["ten cuidado"] * len(audio)  # noqa: E731
    assert run_gate([english_normalized], dense, run, "m").sets[0].wer["c"] == 0.0
    assert run_gate([spanish], dense, run, "m").sets[0].wer["c"] == pytest.approx(50.0)


def test_only_another_language_changes_a_sets_fingerprint(tmp_path) -> None:
    clips = _clips(tmp_path, 2, None, "hello")
    english = [Utterance(u.audio, u.text, u.id, u.speaker, "en") for u in clips]
    spanish = [Utterance(u.audio, u.text, u.id, u.speaker, "es") for u in clips]
    # English sets keep the dense transcripts cached before sets had a language
    assert check_set("s", clips).fingerprint == check_set("s", english).fingerprint
    assert check_set("s", spanish).fingerprint != check_set("s", english).fingerprint


def test_a_manifest_of_several_languages_becomes_one_set_per_language(tmp_path) -> None:
    mixed = _clips(tmp_path, 2, "es") + _clips(tmp_path, 3, "fr")
    sets = check_sets("mine.jsonl", mixed)
    assert [(s.name, s.language, len(s.ids)) for s in sets] == [("mine.jsonl[es]", "es", 2), ("mine.jsonl[fr]", "fr", 3)]
    assert [s.name for s in check_sets("one", mixed[:2])] == ["one"]


class _Model:
    """A fake model whose transcripts depend on the language it is set to, as
    a multilingual model's do: ``broken`` languages come out wrong."""

    def __init__(self, texts: dict[str, list[str]], broken: tuple[str, ...] = ()) -> None:
        self.texts, self.broken, self.language = texts, broken, None
        self.seen: list[str | None] = []

    def set_language(self, code: str | None) -> None:
        self.language = code

    def __call__(self, audio: list[np.ndarray]) -> list[str]:
        self.seen.append(self.language)
        texts = [self.texts[self.language or "en"][int(a[0])] for a in audio]
        return ["la la la" for _ in texts] if self.language in self.broken else texts


TEXTS = {"en": ["the cat sat on the mat", "good morning to you"],
         "es": ["el gato se sentó", "buenos días a todos"]}


def test_an_export_that_keeps_english_but_breaks_spanish_is_refused() -> None:
    """The gate decodes each set in its own language: English alone (what an
    English-only calibration would be checked on) passes, the Spanish set
    fails the same limit."""
    english, spanish = _set("asterisk-eval", TEXTS["en"], "en"), _set("asterisk-es-eval", TEXTS["es"], "es")
    dense, compressed = _Model(TEXTS), _Model(TEXTS, broken=("es",))

    def set_language(code):
        dense.set_language(code)
        compressed.set_language(code)

    alone = run_gate([english], dense, {"onnx": compressed}, "m", set_language=set_language)
    assert alone.passed
    both = run_gate([english, spanish], dense, {"onnx": compressed}, "m", set_language=set_language)
    assert not both.passed and len(both.failures) == 1
    assert both.failures[0].startswith("asterisk-es-eval: WER 0.00 % dense -> 100.00 % onnx")
    assert compressed.seen == ["en", "en", "es"] and dense.seen == ["en", "en", "es"]
    assert [s.language for s in both.sets] == ["en", "es"] and both.checked_languages == ["en", "es"]


def _probe(detected: list[str], translations: list[str] | None = None, calls: list | None = None) -> LanguageProbe:
    def detect(audio):
        if calls is not None:
            calls.append("detect")
        return [detected[int(a[0])] for a in audio]

    return LanguageProbe(detect, lambda audio, language: [(translations or [""] * len(detected))[int(a[0])]
                                                           for a in audio])


def test_detection_that_drops_below_the_limit_refuses_and_translation_is_only_reported(tmp_path) -> None:
    n = 100
    spanish = _set("asterisk-es-eval", ["hola"] * n, "es")
    dense_detected = ["es"] * (n - 1) + ["pt"]  # dense's own mistake on the last clip
    counted = n - 1  # the verdict counts the clips dense detects as Spanish
    allowed = int(counted * (100 - MIN_DETECTION_AGREEMENT) // 100)  # of those, how many may flip
    english = ["good morning"] * n
    dense = _probe(dense_detected, english)
    within = ["en"] * allowed + dense_detected[allowed:-1] + ["it"]  # a flip where dense was wrong is not counted
    below = ["en"] * (allowed + 1) + dense_detected[allowed + 1:]
    calls: list[str] = []
    cache = TranscriptCache(tmp_path)
    kept = check_language(spanish, _probe(dense_detected, english, calls), {"onnx": _probe(within, english)}, "m",
                          cache)
    assert kept.detection_clips == counted and kept.dense_detects_language == pytest.approx(100.0 * counted / n)
    assert kept.detection_kept["onnx"] == pytest.approx(100.0 * (counted - allowed) / counted, abs=0.01)
    assert kept.detection_agreement["onnx"] == pytest.approx(100.0 * (n - allowed - 1) / n)  # reported
    assert detection_failures(kept) == [] and calls == ["detect"]
    lost = check_language(spanish, _probe(dense_detected, english, calls), {"onnx": _probe(below, english)}, "m",
                          cache, translation_clips=4)
    assert calls == ["detect"]  # the dense detections came from the cache
    assert lost.detection_kept["onnx"] < MIN_DETECTION_AGREEMENT
    assert detection_failures(lost) == [f"asterisk-es-eval: the compressed model detects the dense model's language "
                                        f"on {lost.detection_kept['onnx']:.1f} % of the {counted} clips dense detects "
                                        f"as es (onnx; limit {MIN_DETECTION_AGREEMENT:g} %)"]
    # a set that states no language: every clip counts
    unstated = check_language(_set("mine", ["x"] * n, None), dense, {"onnx": _probe(within, english)}, "m")
    assert unstated.detection_clips == n and unstated.detection_kept == unstated.detection_agreement
    # translation: the compressed model's English against the dense model's, reported and never a failure
    garbled = check_language(spanish, dense, {"onnx": _probe(dense_detected, ["bad evening"] * n)}, "m", None,
                             translation_clips=4)
    assert garbled.translation_clips == 4 and garbled.translation_disagreement["onnx"] == pytest.approx(100.0)
    assert detection_failures(garbled) == []
    # English sets are not translated; the long recording is not probed (its first window is not the set)
    long = CheckSet("long", ["long/1"], [np.zeros(SAMPLE_RATE, np.float32)], ["x"], "fp-long", block_seconds=30.0)
    results, failures = check_languages([_set("asterisk-eval", ["hi"] * n, "en"), long],
                                        _probe(["en"] * n), {"onnx": _probe(["en"] * n)}, "m")
    assert [r.name for r in results] == ["asterisk-eval"] and results[0].translation_clips == 0 and not failures


def test_the_report_says_which_languages_were_checked_and_which_were_not() -> None:
    english, spanish = _set("asterisk-eval", TEXTS["en"], "en"), _set("asterisk-es-eval", TEXTS["es"], "es")
    dense = _Model(TEXTS)
    gate = run_gate([english, spanish], dense, {"onnx": dense}, "m", set_language=dense.set_language)
    gate.multilingual = True
    gate.not_installed = {"asterisk-it-eval": "speech set asterisk-it: the Asterisk prompts are not installed"}
    gate.languages, _ = check_languages([spanish], _probe(["es", "es"], ["hi", "ho"]), {"onnx": _probe(["es", "es"],
                                                                                                      ["hi", "ho"])}, "m")
    text = "\n".join(gate.to_markdown())
    assert "Languages checked: en, es" in text
    assert "- asterisk-it-eval: speech set asterisk-it: the Asterisk prompts are not installed" in text
    assert "| asterisk-es-eval | es | 2 | 100.0 | onnx | 100.0 of 2 | 100.0 | 2 | 0.00 |" in text
    data = gate.to_dict()
    assert data["languages"][0]["detection_agreement"] == {"onnx": 100.0} and data["multilingual"] is True
    english_only = GateResult(gate.sets[:1], 1.0, 10.0, [], multilingual=False)
    assert "English only" in "\n".join(english_only.to_markdown())
    assert "Languages" not in "\n".join(GateResult(gate.sets[:1], 1.0, 10.0, []).to_markdown())
