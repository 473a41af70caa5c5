"""The export's check sets for a multilingual model: the other languages'
sets join the default when installed, those that are not are listed with
why, and an English-only model's sets are unchanged."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from calibration.datasets import Utterance
from engines.validation.quality_gate import DEFAULT_GATE_SETS
from liteasr_export.app.export import quality_stage
from liteasr_export.app.export.options import ExportOptions
from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import SAMPLE_RATE

NOT_INSTALLED = "asterisk-it-eval"


@pytest.fixture
def fake_sets(tmp_path, monkeypatch) -> list[str]:
    """Every set two clips in its language (from its name), except
    :data:`NOT_INSTALLED`; returns the names asked for."""
    asked: list[str] = []

    def resolve(name: str, purpose: str) -> list[Utterance]:
        asked.append(name)
        if name.startswith("asterisk-it"):
            raise DatasetError("speech set asterisk-it: the Asterisk prompts are not installed", "apt-get install")
        language = next((code for code in ("es", "fr", "it") if f"-{code}" in name), None)
        out = []
        for i in range(2):
            path = tmp_path / f"{name}-{i}.wav"
            sf.write(str(path), np.full(SAMPLE_RATE, 0.01 * (i + 1), np.float32), SAMPLE_RATE)
            out.append(Utterance(str(path), "words", f"{name}/{i}", None, language))
        return out

    monkeypatch.setattr(quality_stage, "resolve_set", resolve)
    monkeypatch.setattr(quality_stage, "long_recording", lambda clips, minutes: quality_stage.check_set("long", clips))
    return asked


def _opts(tmp_path: Path, **extra) -> ExportOptions:
    return ExportOptions(output=tmp_path / "out", eval_set="builtin", gate_clips=2, progress=False, **extra)


def test_a_multilingual_model_is_checked_in_every_installed_language(tmp_path, fake_sets) -> None:
    english = quality_stage.gate_checks(_opts(tmp_path), note=lambda _: None)
    assert {c.name for c in english} == {"builtin", *DEFAULT_GATE_SETS} and len(english) == 4
    assert not english.missing and not set(fake_sets) & set(quality_stage.LANGUAGE_GATE_SETS)
    notes: list[str] = []
    checks = quality_stage.gate_checks(_opts(tmp_path), note=notes.append, multilingual=True)
    languages = {c.name: c.language for c in checks if c.language not in (None, "en")}
    expected = [n for n in quality_stage.LANGUAGE_GATE_SETS if n != NOT_INSTALLED]
    assert list(languages) == expected and languages["synth-fr-eval"] == "fr"
    assert list(checks.missing) == [NOT_INSTALLED] and "not installed" in checks.missing[NOT_INSTALLED]
    assert any(NOT_INSTALLED in n for n in notes)
    none = quality_stage.gate_checks(_opts(tmp_path, gate_sets="none"), note=notes.append, multilingual=True)
    assert [c.name for c in none] == ["builtin"]  # none means none, in every language


def test_checks_built_for_english_get_the_languages_of_a_multilingual_model_once(tmp_path, fake_sets) -> None:
    opts = _opts(tmp_path)
    checks = quality_stage.gate_checks(opts, note=lambda _: None)
    english_only = SimpleNamespace(tokenizer=SimpleNamespace(is_multilingual=False))
    assert quality_stage.with_language_checks(checks, english_only, opts) is checks and len(checks) == 4
    multilingual = SimpleNamespace(tokenizer=SimpleNamespace(is_multilingual=True))
    fake_sets.clear()
    grown = quality_stage.with_language_checks(checks, multilingual, opts, note=lambda _: None)
    assert grown is checks and len(checks) == 4 + len(quality_stage.LANGUAGE_GATE_SETS) - 1
    assert fake_sets == list(quality_stage.LANGUAGE_GATE_SETS) and NOT_INSTALLED in checks.missing
    fake_sets.clear()
    assert quality_stage.with_language_checks(checks, multilingual, opts) is checks and fake_sets == []



def _validate(loaded, artifacts: Path, tmp_path: Path, gate_sets: str):
    opts = ExportOptions(output=tmp_path / "out", eval_limit=2, gate_sets=gate_sets, gate_clips=2, parity_clips=1,
                         max_wer_increase=100000.0, max_disagreement=100.0, allow_degradation=True, progress=False,
                         cache_dir=tmp_path / "cache")
    return quality_stage.validate(loaded, loaded, artifacts, opts, note=lambda _: None)["quality"]


@pytest.mark.slow
def test_validation_of_a_multilingual_model_reports_each_language(tmp_path, random_loaded,
                                                                  tiny_en_tokenizer_json) -> None:
    """Plumbing on random tiny models (their verdict means nothing, so
    degradation is allowed): a multilingual one (base's tokenizer) has its
    Spanish and French sets decoded in their language through ONNX Runtime,
    probed for detection and translation, and reported; an English-only one
    is reported as checked in English only."""
    from calibration.datasets import resolve_set
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.sources import BUNDLED

    try:
        resolve_set("asterisk-es", "eval"), resolve_set("synth-fr", "eval")
    except DatasetError as exc:
        pytest.skip(f"the Spanish or French speech is not installed: {exc}")
    loaded = random_loaded(BUNDLED["base"].files()[0] / "tokenizer.json", seed=5, vocab_size=51865)
    export_artifacts(loaded, tmp_path / "multilingual")
    gate = _validate(loaded, tmp_path / "multilingual", tmp_path, "asterisk-es-eval,synth-fr-eval")
    assert gate.multilingual is True and gate.not_installed == {}
    assert [(s.name, s.language) for s in gate.sets] == [("builtin", None), ("asterisk-es-eval", "es"),
                                                         ("synth-fr-eval", "fr")]
    probed = {c.name: c for c in gate.languages}
    assert set(probed) == {"builtin", "asterisk-es-eval", "synth-fr-eval"}
    assert all(c.clips == 2 and set(c.detection_agreement) == {"onnxruntime fp32"} for c in probed.values())
    assert probed["asterisk-es-eval"].translation_clips == 2 and probed["builtin"].translation_clips == 0
    report = "\n".join(gate.to_markdown())
    assert "Languages checked: en, es, fr" in report and "| asterisk-es-eval | es | 2 |" in report
    english = random_loaded(tiny_en_tokenizer_json, seed=5)
    export_artifacts(english, tmp_path / "english")
    gate = _validate(english, tmp_path / "english", tmp_path, "none")
    assert gate.multilingual is False and gate.languages == [] and [s.language for s in gate.sets] == [None]
    assert "English only" in "\n".join(gate.to_markdown())


class _Runner:
    """A stand-in gate runner: every clip is heard as "words", in the language it was last configured with."""

    def __init__(self) -> None:
        from liteasr_export.core.windowed import TranscribeOptions

        self.settings, self.heard = TranscribeOptions(), []

    def configure(self, settings) -> "_Runner":
        self.settings = settings
        return self

    def transcribe_many(self, audio: list) -> list[str]:
        self.heard.append((self.settings.language, len(audio)))
        return ["words"] * len(audio)


@pytest.mark.parametrize("multilingual", [True, False])
def test_the_size_search_decodes_each_language_as_the_gate_does(tmp_path, fake_sets, monkeypatch,
                                                                multilingual) -> None:
    """``--target-wer-increase`` judges sizes on every installed language of
    a multilingual model, each set in its own language (dense and candidate),
    and on the English sets alone for an English-only model."""
    from liteasr_export.app.export import compression_stage

    runners: list[_Runner] = []

    def runner(_loaded) -> _Runner:
        runners.append(_Runner())
        return runners[-1]

    monkeypatch.setattr(compression_stage, "select_spectra", lambda *args: None)
    monkeypatch.setattr(compression_stage, "gate_key", lambda loaded: "dense")
    monkeypatch.setattr(compression_stage, "gate_transcriber", runner)
    monkeypatch.setattr(compression_stage, "build",
                        lambda loaded, stats, policy, *rest: ("candidate", SimpleNamespace(size_ratio=0.8)))
    judged: list = []

    def search(evaluate, *args, **kwargs):
        judged.append(evaluate(0.8))
        return SimpleNamespace(chosen=0.8)

    monkeypatch.setattr(compression_stage, "search_target_size", search)
    loaded = SimpleNamespace(tokenizer=SimpleNamespace(is_multilingual=multilingual))
    opts = _opts(tmp_path, target_wer_increase=0.5, cache_dir=tmp_path / "cache")
    model, _, _ = compression_stage.search_compression(loaded, None, opts, note=lambda _: None)
    assert model == "candidate"
    dense, candidate = runners
    installed = [n for n in quality_stage.LANGUAGE_GATE_SETS if n != NOT_INSTALLED]
    sets = ["builtin", *DEFAULT_GATE_SETS, *(installed if multilingual else [])]
    assert set(judged[0][1]) == set(sets)  # the WER increase of every labeled set was judged
    languages = [language for language, _ in candidate.heard]
    assert len(languages) == len(sets) and languages == [language for language, _ in dense.heard]
    if multilingual:
        assert languages[-len(installed):] == [n.split("-")[1] for n in installed]
    else:
        assert set(languages) == {None}
