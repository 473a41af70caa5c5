"""Opening an artifacts folder checks that its parts belong together, with or
without the checksums: manifest.json's fields have the types the runtimes
read, each graph has the inputs and outputs the manifest records, and
tokenizer.json has the vocabulary the decoder scores."""

from __future__ import annotations

import json
import shutil

import pytest

import engines.runtime.trt_transcriber as trt_transcriber
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
from liteasr_export.core.errors import ArtifactError
from liteasr_export.core.manifest import ENGINE_DIR, load_manifest
from liteasr_export.model.sources import BUNDLED
from liteasr_export.core.tokenizer import WhisperTokenizer


@pytest.fixture()
def artifacts(random_artifacts, tmp_path, copy_artifacts):
    return copy_artifacts(random_artifacts, tmp_path / "out")


def _edit(folder, change) -> None:
    data = json.loads((folder / "manifest.json").read_text())
    change(data)
    (folder / "manifest.json").write_text(json.dumps(data))


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_a_bundled_tokenizer_has_the_vocabulary_of_its_model(name):
    """tokenizer.json leaves the timestamp tokens out; CTranslate2's
    vocabulary.txt has one line per row of the model's logits."""
    folder = BUNDLED[name].files()[0]
    rows = len((folder / "vocabulary.txt").read_text(encoding="utf-8").splitlines())
    tokenizer = WhisperTokenizer(folder / "tokenizer.json")
    assert len(tokenizer) < rows and tokenizer.n_vocab == rows


def test_another_models_tokenizer_is_refused(artifacts):
    shutil.copy(BUNDLED["base"].files()[0] / "tokenizer.json", artifacts / "tokenizer.json")
    theirs = WhisperTokenizer(artifacts / "tokenizer.json").n_vocab
    ours = load_manifest(artifacts).logits_size
    assert theirs != ours
    with pytest.raises(ArtifactError, match=f"its vocabulary has {theirs} tokens, the decoder scores {ours}"):
        OnnxTranscriber(artifacts, verify=False)


def test_the_tensorrt_runtime_refuses_another_models_tokenizer(artifacts, monkeypatch):
    """Before any engine is loaded (TensorRT itself is not needed to get there)."""
    monkeypatch.setattr(trt_transcriber, "require_tensorrt", lambda: None)
    monkeypatch.setattr(trt_transcriber, "TrtEngine", lambda *a, **k: pytest.fail("an engine was loaded"))
    (artifacts / ENGINE_DIR).mkdir()
    for graph in ("encoder", "decoder"):
        (artifacts / ENGINE_DIR / f"{graph}.plan").write_bytes(b"plan")
    shutil.copy(BUNDLED["base"].files()[0] / "tokenizer.json", artifacts / "tokenizer.json")
    with pytest.raises(ArtifactError, match="tokenizer.json does not belong to this model"):
        trt_transcriber.TrtTranscriber(artifacts, verify=False)


def test_a_graph_from_another_export_is_refused(artifacts, foreign_artifacts):
    shutil.copy(foreign_artifacts / "decoder.onnx", artifacts / "decoder.onnx")
    with pytest.raises(ArtifactError, match=r"decoder\.onnx does not match manifest\.json: its input past_key\.0"):
        OnnxTranscriber(artifacts, verify=False)


def test_a_manifest_that_lists_another_tensor_is_refused(artifacts):
    _edit(artifacts, lambda m: m["graphs"]["encoder"]["outputs"][0].update(name="hidden"))
    with pytest.raises(ArtifactError, match="encoder.onnx does not match manifest.json: only the manifest has the "
                                            "output hidden"):
        OnnxTranscriber(artifacts, verify=False)


@pytest.mark.parametrize("change, field", [
    (lambda m: m.update(frontend=[80]), '"frontend" is a list'),
    (lambda m: m["model"].update(vocab_size=0), '"model"."vocab_size" is a number'),
    (lambda m: m["model"].update(head_dim=True), '"model"."head_dim" is a boolean'),
    (lambda m: m["graphs"].update(encoder="encoder.onnx"), '"graphs"."encoder" is a string'),
    (lambda m: m["graphs"]["decoder"].update(file=["decoder.onnx"]), '"graphs"."decoder"."file" is a list'),
    (lambda m: m["graphs"]["decoder"]["inputs"][0].update(name=None), r'"graphs"."decoder"."inputs"\[0\]."name" is null'),
    (lambda m: m["decoding"].update(eot="50256"), '"decoding"."eot" is a string'),
    (lambda m: m["decoding"].update(suppress=[1, "2"]), '"decoding"."suppress" is a list'),
    (lambda m: m["decoding"].update(timestamps="yes"), '"decoding"."timestamps" is a string'),
    (lambda m: m["frontend"].update(n_mels=80.5), '"frontend"."n_mels" is a number'),
    (lambda m: m["sha256"].update({"encoder.onnx": 7}), '"sha256" is an object'),
    (lambda m: m["decoding"].pop("eot"), '"decoding" lacks "eot"'),
])
def test_a_field_of_the_wrong_type_is_named(artifacts, change, field):
    _edit(artifacts, change)
    with pytest.raises(ArtifactError, match=field):
        load_manifest(artifacts)


def test_extra_frontend_fields_of_a_newer_manifest_are_ignored(artifacts):
    _edit(artifacts, lambda m: m["frontend"].update(dither=0.0))
    assert load_manifest(artifacts).frontend.n_mels == load_manifest(artifacts).data["frontend"]["n_mels"]
