"""Checksums of an artifacts folder are verified when a runtime loads it:
a corrupted graph is refused, the fast path (size + mtime after a full check)
skips hashing only unchanged files, --no-verify turns the check off."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import copy_artifacts, corrupt_weights

import liteasr_export.integrity as integrity
from engines.runtime.ort_transcriber import OnnxTranscriber
from liteasr_export.manifest import load_manifest, update_manifest
from liteasr_export.errors import ArtifactError, IntegrityError
from liteasr_export.integrity import STAMP_NAME, checksums, verify_files

OLD = 60.0  # seconds: files older than the racy window


@pytest.fixture()
def artifacts(random_artifacts, tmp_path):
    return copy_artifacts(random_artifacts, tmp_path / "out", age_s=OLD)


def test_export_records_every_loaded_file(random_artifacts):
    manifest = load_manifest(random_artifacts)
    assert set(manifest.data["sha256"]) == {"frontend.onnx", "encoder.onnx", "decoder.onnx", "tokenizer.json"}
    assert manifest.data["sha256"] == checksums(random_artifacts)


def test_corrupted_graph_is_refused(artifacts):
    corrupt_weights(artifacts / "encoder.onnx")
    with pytest.raises(IntegrityError, match=r"encoder\.onnx is corrupt or was modified.*--no-verify"):
        OnnxTranscriber(artifacts)
    OnnxTranscriber(artifacts, verify=False).transcribe(np.zeros(16000, np.float32))  # the check is what refused it


def test_fast_path_hashes_only_what_changed(artifacts, monkeypatch):
    OnnxTranscriber(artifacts)  # full check, recorded
    stamp = json.loads((artifacts / STAMP_NAME).read_text())
    assert set(stamp["files"]) == {"frontend.onnx", "encoder.onnx", "decoder.onnx", "tokenizer.json"}
    hashed = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: hashed.append(os.path.basename(p)) or real(p))
    OnnxTranscriber(artifacts)
    assert hashed == []
    old = (artifacts / "decoder.onnx").stat().st_mtime - 5
    os.utime(artifacts / "decoder.onnx", (old, old))  # touched: same bytes, another mtime
    OnnxTranscriber(artifacts)
    assert hashed == ["decoder.onnx"]


def test_fast_path_does_not_hide_a_modification(artifacts):
    OnnxTranscriber(artifacts)
    corrupt_weights(artifacts / "decoder.onnx", size=4096)  # same size, new mtime
    with pytest.raises(IntegrityError, match="decoder.onnx"):
        OnnxTranscriber(artifacts)


def test_recently_written_files_are_not_stamped(random_artifacts, tmp_path):
    fresh = copy_artifacts(random_artifacts, tmp_path / "fresh", age_s=OLD)
    os.utime(fresh / "encoder.onnx")  # now: inside the racy window
    expected = load_manifest(fresh).data["sha256"]
    verify_files(fresh, expected, list(expected))
    stamped = json.loads((fresh / STAMP_NAME).read_text())["files"]
    assert "encoder.onnx" not in stamped and "decoder.onnx" in stamped


def test_stamp_goes_to_the_cache_when_the_folder_cannot_hold_it(artifacts, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (artifacts / STAMP_NAME).mkdir()  # stands in for a read-only folder: the stamp cannot be written there
    OnnxTranscriber(artifacts)
    cached = list((tmp_path / "cache" / "liteasr-export" / "verified").glob("*.json"))
    assert len(cached) == 1 and "encoder.onnx" in json.loads(cached[0].read_text())["files"]


def test_manifest_without_checksums_is_refused(artifacts):
    data = json.loads((artifacts / "manifest.json").read_text())
    del data["sha256"]
    (artifacts / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="records no sha256 for .*--no-verify"):
        OnnxTranscriber(artifacts)


def test_forged_stamp_entry_for_other_content_is_not_trusted(artifacts):
    """A stamp records the digest it saw: it vouches for a file only while the
    manifest still expects that digest."""
    OnnxTranscriber(artifacts)
    manifest = load_manifest(artifacts)
    update_manifest(artifacts, sha256={**manifest.data["sha256"], "encoder.onnx": "0" * 64})
    with pytest.raises(IntegrityError, match="encoder.onnx"):
        OnnxTranscriber(artifacts)


def test_stamp_file_is_not_part_of_the_checksums(artifacts):
    OnnxTranscriber(artifacts)
    assert (artifacts / STAMP_NAME).is_file() and STAMP_NAME not in checksums(artifacts)
    assert np.all([name in load_manifest(artifacts).data["sha256"] for name in checksums(artifacts)])
