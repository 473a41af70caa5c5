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


def _export(model_dir: Path, out: Path, *extra: str) -> dict:
    from liteasr_export.app.cli import export_main

    # random weights: the verdict means nothing, so the export is written anyway; what is checked is
    # that each language's set is decoded, probed and reported
    code = export_main(["--model", str(model_dir), "--output", str(out), "--no-compress", "--eval-limit", "2",
                        "--gate-clips", "2", "--parity-clips", "1", "--quiet", "--cache-dir", str(out.parent / "cache"),
                        "--max-wer-increase", "100000", "--max-disagreement", "100", "--allow-degradation", *extra])
    assert code == 0
    import json

    return json.loads((out / "manifest.json").read_text())["validation"]["quality"]


@pytest.mark.slow
def test_an_export_of_a_multilingual_model_reports_each_language(tmp_path, random_whisper, tiny_en_tokenizer_json,
                                                                 random_hf_dir) -> None:
    """Plumbing on a random tiny multilingual model (base's tokenizer): the
    Spanish and French sets are decoded in their language through ONNX
    Runtime, probed for detection and translation, and the report says so;
    an English-only model's report says it was checked in English only."""
    import shutil

    from calibration.datasets import resolve_set
    from liteasr_export.model.sources import BUNDLED

    try:
        resolve_set("asterisk-es", "eval"), resolve_set("synth-fr", "eval")
    except DatasetError as exc:
        pytest.skip(f"the Spanish or French speech is not installed: {exc}")
    model_dir = tmp_path / "multilingual"
    random_whisper(seed=2, vocab_size=51865).save_pretrained(str(model_dir))
    shutil.copy(BUNDLED["base"].files()[0] / "tokenizer.json", model_dir / "tokenizer.json")
    quality = _export(model_dir, tmp_path / "out", "--gate-sets", "asterisk-es-eval,synth-fr-eval")
    assert quality["multilingual"] is True and quality["not_installed"] == {}
    assert [(s["name"], s["language"]) for s in quality["sets"]] == [("builtin", None), ("asterisk-es-eval", "es"),
                                                                   ("synth-fr-eval", "fr")]
    probed = {c["name"]: c for c in quality["languages"]}
    assert set(probed) == {"builtin", "asterisk-es-eval", "synth-fr-eval"}
    assert all(c["clips"] == 2 and set(c["detection_agreement"]) == {"onnxruntime fp32"} for c in probed.values())
    assert probed["asterisk-es-eval"]["translation_clips"] == 2 and probed["builtin"]["translation_clips"] == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Languages checked: en, es, fr" in report and "| asterisk-es-eval | es | 2 |" in report
    english = _export(random_hf_dir, tmp_path / "english", "--gate-sets", "none")
    assert english["multilingual"] is False and english["languages"] == []
    assert "English only" in (tmp_path / "english" / "report.md").read_text()
