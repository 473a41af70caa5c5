"""Checksums of an artifacts folder are verified when a runtime loads it:
a corrupted graph is refused, the fast path (a file's identity after a full
check, in a stamp in the user's private cache) skips hashing only unchanged
files, --no-verify turns the check off."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import numpy as np
import pytest

import liteasr_export.core.integrity as integrity
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
from liteasr_export.core.manifest import load_manifest, update_manifest
from liteasr_export.core.errors import ArtifactError, IntegrityError
from liteasr_export.core.integrity import LEGACY_STAMP_NAME, checksums, stamp_path, verify_files

OLD = 60.0  # seconds: mtimes older than the racy window
RACY = 0.05  # the racy window in these tests (seconds), instead of waiting 2 s per test
LOADED = ["decoder.onnx", "encoder.onnx", "frontend.onnx", "tokenizer.json"]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Stamps of this test in a cache of its own; a short racy window."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(integrity, "RACY_SECONDS", RACY)
    return tmp_path / "cache" / "liteasr-export" / "verified"


@pytest.fixture()
def artifacts(random_artifacts, tmp_path, copy_artifacts):
    out = copy_artifacts(random_artifacts, tmp_path / "out", age_s=OLD)
    time.sleep(2 * RACY)  # the copy's ctimes leave the racy window
    return out


@pytest.fixture()
def hashed(monkeypatch):
    """The names of the files hashed from now on."""
    names: list[str] = []
    real = integrity.sha256_file
    monkeypatch.setattr(integrity, "sha256_file", lambda p: names.append(os.path.basename(p)) or real(p))
    return names


@pytest.fixture()
def flip_keeping_mtime(corrupt_weights):
    """``flip_keeping_mtime(path)``: overwrite bytes inside a graph's weights
    (same size), then put the mtime back as ``touch -r`` would."""

    def flip(path) -> None:
        before = path.stat()
        corrupt_weights(path, size=4096)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size

    return flip


def test_export_records_every_loaded_file(random_artifacts):
    manifest = load_manifest(random_artifacts)
    assert set(manifest.data["sha256"]) == {"frontend.onnx", "encoder.onnx", "decoder.onnx", "tokenizer.json"}
    assert manifest.data["sha256"] == checksums(random_artifacts)


def test_corrupted_graph_is_refused(artifacts, corrupt_weights):
    corrupt_weights(artifacts / "encoder.onnx")
    with pytest.raises(IntegrityError, match=r"encoder\.onnx is corrupt or was modified.*verify=False"):
        OnnxTranscriber(artifacts)
    OnnxTranscriber(artifacts, verify=False).transcribe(np.zeros(16000, np.float32))  # the check is what refused it


def test_fast_path_hashes_only_what_changed(artifacts, hashed):
    OnnxTranscriber(artifacts)  # full check, recorded
    assert sorted(hashed) == LOADED
    stamp = json.loads(stamp_path(artifacts).read_text())
    assert sorted(stamp["files"]) == LOADED
    hashed.clear()
    OnnxTranscriber(artifacts)
    assert hashed == []
    old = (artifacts / "decoder.onnx").stat().st_mtime - 5
    os.utime(artifacts / "decoder.onnx", (old, old))  # touched: same bytes, another mtime
    OnnxTranscriber(artifacts)
    assert hashed == ["decoder.onnx"]


def test_fast_path_does_not_hide_a_modification(artifacts, corrupt_weights):
    OnnxTranscriber(artifacts)
    corrupt_weights(artifacts / "decoder.onnx", size=4096)  # same size, new mtime
    with pytest.raises(IntegrityError, match="decoder.onnx"):
        OnnxTranscriber(artifacts)


def test_a_modification_with_its_mtime_restored_is_refused(artifacts, flip_keeping_mtime):
    """touch -r restores size and mtime; the ctime moves, which no user can set back."""
    OnnxTranscriber(artifacts)
    flip_keeping_mtime(artifacts / "encoder.onnx")
    with pytest.raises(IntegrityError, match=r"encoder\.onnx is corrupt or was modified"):
        OnnxTranscriber(artifacts)


def test_a_copy_is_hashed_in_full(artifacts, tmp_path, hashed):
    """cp -a keeps sizes and mtimes: the copy's files are new inodes, checked again."""
    OnnxTranscriber(artifacts)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(artifacts), str(copy)], check=True)
    time.sleep(2 * RACY)
    hashed.clear()
    OnnxTranscriber(copy)
    assert sorted(hashed) == LOADED


@pytest.mark.parametrize("fmt", ["liteasr-verified/1", integrity.STAMP_FORMAT])
def test_a_stamp_inside_the_folder_is_not_trusted(artifacts, fmt, corrupt_weights):
    """Whoever can write the folder could forge a stamp there: none is read."""
    corrupt_weights(artifacts / "encoder.onnx")
    st = (artifacts / "encoder.onnx").stat()
    entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
             "sha256": load_manifest(artifacts).data["sha256"]["encoder.onnx"]}
    if fmt != "liteasr-verified/1":
        entry.update(device=st.st_dev, inode=st.st_ino, ctime_ns=st.st_ctime_ns)
    (artifacts / LEGACY_STAMP_NAME).write_text(json.dumps({"format": fmt, "files": {"encoder.onnx": entry}}))
    with pytest.raises(IntegrityError, match="encoder.onnx"):
        OnnxTranscriber(artifacts)


def test_a_stamp_others_could_write_is_not_trusted(artifacts, corrupt_weights):
    OnnxTranscriber(artifacts)
    path = stamp_path(artifacts)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    corrupt_weights(artifacts / "encoder.onnx")
    st = (artifacts / "encoder.onnx").stat()
    data = json.loads(path.read_text())  # forged: the corrupt file's identity, the manifest's digest
    data["files"]["encoder.onnx"].update(device=st.st_dev, inode=st.st_ino, size=st.st_size,
                                         mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
    path.write_text(json.dumps(data))
    os.chmod(path, 0o666)
    with pytest.raises(IntegrityError, match="encoder.onnx"):
        OnnxTranscriber(artifacts)
    os.chmod(path, 0o600)  # the same stamp, private: then (only then) it vouches for the file
    OnnxTranscriber(artifacts)


def test_recently_changed_files_are_not_stamped(artifacts, monkeypatch):
    monkeypatch.setattr(integrity, "RACY_SECONDS", 1.0)
    time.sleep(1.1)
    os.utime(artifacts / "encoder.onnx", (time.time() - OLD,) * 2)  # an old mtime, but the ctime is now
    expected = load_manifest(artifacts).data["sha256"]
    verify_files(artifacts, expected, list(expected))
    stamped = json.loads(stamp_path(artifacts).read_text())["files"]
    assert "encoder.onnx" not in stamped and "decoder.onnx" in stamped


def test_verification_writes_nothing_into_the_folder(artifacts, private_cache):
    before = sorted(p.name for p in artifacts.rglob("*"))
    OnnxTranscriber(artifacts)
    assert sorted(p.name for p in artifacts.rglob("*")) == before
    assert [p.name for p in private_cache.iterdir()] == [stamp_path(artifacts).name]


def test_old_stamps_are_pruned(artifacts, private_cache, random_artifacts, tmp_path, copy_artifacts):
    OnnxTranscriber(artifacts)
    old = stamp_path(artifacts)
    past = time.time() - integrity.STAMP_MAX_AGE_S - 60
    os.utime(old, (past, past))
    other = copy_artifacts(random_artifacts, tmp_path / "other", age_s=OLD)
    time.sleep(2 * RACY)
    OnnxTranscriber(other)
    assert sorted(private_cache.iterdir()) == [stamp_path(other)]


def test_manifest_without_checksums_is_refused(artifacts):
    data = json.loads((artifacts / "manifest.json").read_text())
    del data["sha256"]
    (artifacts / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="records no sha256 for .*verify=False"):
        OnnxTranscriber(artifacts)


def test_stamp_entry_for_other_content_is_not_trusted(artifacts):
    """A stamp records the digest it saw: it vouches for a file only while the
    manifest still expects that digest."""
    OnnxTranscriber(artifacts)
    manifest = load_manifest(artifacts)
    update_manifest(artifacts, sha256={**manifest.data["sha256"], "encoder.onnx": "0" * 64})
    with pytest.raises(IntegrityError, match="encoder.onnx"):
        OnnxTranscriber(artifacts)
