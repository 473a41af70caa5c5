"""The results file of ``liteasr-transcribe --ray`` before a run appends to
it: every whole record is kept, and a cut-off last line is moved aside,
never deleted (the job itself: test_ray_jobs.py)."""

from __future__ import annotations

import json

import pytest

from liteasr_export.app.ray_jobs.transcribe import read_results, repair_last_line


def _record(name: str) -> str:
    return json.dumps({"audio": f"/data/{name}.wav", "id": name, "text": "words", "error": None})


def test_a_whole_last_record_without_its_newline_gets_one(tmp_path):
    path = tmp_path / "results.jsonl"
    text = _record("a") + "\n" + _record("b")
    path.write_text(text)
    assert repair_last_line(path) is None
    assert path.read_text() == text + "\n"
    assert set(read_results(path)) == {"/data/a.wav", "/data/b.wav"}
    assert not (tmp_path / "results.jsonl.partial").exists()


@pytest.mark.parametrize("tail", [b'{"audio": "/data/c.w', b"\xff\xfe not text", b"[1, 2]", b'{"id": "no audio"}'])
@pytest.mark.parametrize("lines", [0, 1, 3000])  # no line before it; one; more than one block of backward reading
def test_a_cut_off_last_line_is_moved_aside(tmp_path, tail, lines):
    path = tmp_path / "results.jsonl"
    head = "".join(_record(f"f{i}") + "\n" for i in range(lines)).encode()
    path.write_bytes(head + tail)
    (tmp_path / "results.jsonl.partial").write_bytes(b"from an earlier run\n")
    note = repair_last_line(path)
    assert note and str(tmp_path / "results.jsonl.partial") in note
    assert path.read_bytes() == head
    assert (tmp_path / "results.jsonl.partial").read_bytes() == b"from an earlier run\n" + tail + b"\n"


def test_a_file_that_ends_with_a_newline_is_left_alone(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(_record("a") + "\nnot json\n")
    assert repair_last_line(path) is None and path.read_text() == _record("a") + "\nnot json\n"
    assert repair_last_line(tmp_path / "missing.jsonl") is None
    (tmp_path / "empty.jsonl").write_text("")
    assert repair_last_line(tmp_path / "empty.jsonl") is None
