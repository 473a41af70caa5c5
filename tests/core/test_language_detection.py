"""``detect_languages``: the language ``language="auto"`` would decode in,
from one decoder call on each recording's first window, on every backend."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from exporters.artifacts import export_artifacts
from liteasr_export.core.errors import LiteASRError
from liteasr_export.core.frontend import SAMPLE_RATE
from liteasr_export.core.windowed import TranscribeOptions
from liteasr_export.model.sources import BUNDLED

MULTILINGUAL_VOCAB = 51865


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory, random_loaded):
    """A random tiny model with base's multilingual tokenizer, and its artifacts."""
    folder, _ = BUNDLED["base"].files()
    loaded = random_loaded(folder / "tokenizer.json", seed=5, vocab_size=MULTILINGUAL_VOCAB)
    assert loaded.tokenizer.is_multilingual
    out = tmp_path_factory.mktemp("multilingual-artifacts")
    export_artifacts(loaded, out)
    return loaded, out


def _recordings() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    # a long one: only its first 30 s window decides
    return [(scale * rng.standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)
            for scale, seconds in ((0.05, 1.0), (0.3, 3.0), (0.1, 40.0), (0.02, 7.0), (0.5, 2.0))]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_detection_names_the_language_auto_decodes_in(multilingual, transcriber_on, backend) -> None:
    loaded, artifacts = multilingual
    auto = transcriber_on(backend, loaded, artifacts, settings=TranscribeOptions(language="auto"), batch_size=2)
    audio = _recordings()
    expected = [(t.language, t.language_probability) for t in auto.transcribe_detailed(audio)]
    plain = transcriber_on(backend, loaded, artifacts, batch_size=2)  # its own language setting is not used
    found = plain.detect_languages(audio)
    assert [code for code, _ in found] == [code for code, _ in expected]
    assert [p for _, p in found] == pytest.approx([p for _, p in expected], rel=1e-4)
    alone = plain.detect_languages(audio[2:3])[0]  # batching does not change a recording's answer
    assert alone[0] == found[2][0] and alone[1] == pytest.approx(found[2][1], rel=1e-4)
    assert plain.detect_languages([audio[2][: 30 * SAMPLE_RATE]])[0][0] == found[2][0]


def test_an_english_only_model_detects_no_language(tiny_en_tokenizer_json, random_loaded, transcriber_on) -> None:
    loaded = random_loaded(tiny_en_tokenizer_json, seed=5)
    with pytest.raises(LiteASRError, match="English-only model detects no language"):
        transcriber_on("torch", loaded, None).detect_languages(_recordings()[:1])


def test_detection_follows_a_trimmed_audio_context(multilingual, transcriber_on) -> None:
    loaded, artifacts = multilingual
    full = transcriber_on("torch", loaded, artifacts)
    trimmed = transcriber_on("torch", loaded, artifacts, settings=replace(TranscribeOptions(), audio_context=400))
    audio = _recordings()
    # a 4 s context sees another first window, encoded at another length: the probabilities move
    assert [p for _, p in trimmed.detect_languages(audio)] != pytest.approx([p for _, p in full.detect_languages(audio)])
