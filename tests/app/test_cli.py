"""Bad input through the console scripts: one line naming problem and fix, a
non-zero exit, no traceback (unless --debug)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from liteasr_export.app.cli import {0}; sys.exit({0}(sys.argv[1:]))"
    entry = {"transcribe": "transcribe_main", "eval": "eval_main", "export": "export_main"}[args[0]]
    return subprocess.run([sys.executable, "-c", code.format(entry), *args[1:]], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_audio(tmp_path):
    assert_one_line_error(run("transcribe", str(tmp_path / "nope.wav")), "not found", "nope.wav")


def test_empty_and_corrupt_audio(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "bad.flac").write_bytes(b"fLaC" + b"\x00" * 64)
    assert_one_line_error(run("transcribe", str(tmp_path / "empty.wav")), "empty")
    assert_one_line_error(run("transcribe", str(tmp_path / "bad.flac")), "cannot decode", "use a valid")


def test_unknown_model_and_folder(tmp_path, speech_clip_path):
    assert_one_line_error(run("transcribe", "--model", "tiny.xx", speech_clip_path), "unknown model", "tiny.en")
    assert_one_line_error(run("transcribe", "--model", str(tmp_path), speech_clip_path), "not a Whisper model folder")


def test_manifest_line_without_text(tmp_path, speech_clip_path):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"audio": speech_clip_path}) + "\n")
    assert_one_line_error(run("eval", "--eval", str(manifest), "--model", "tiny.en"), "line 1", "text")


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path):
    """--debug adds the traceback; the error line and its exit code stay
    those of the typed error (a missing file: 2), so scripts see the same."""
    result = run("transcribe", "--debug", str(tmp_path / "nope.wav"))
    plain = run("transcribe", str(tmp_path / "nope.wav"))
    assert result.returncode == plain.returncode == 2 and "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == plain.stderr.strip()


@pytest.mark.slow
def test_transcribe_json_on_real_weights(speech_clip_path):
    result = run("transcribe", "--engine", "torch", "--model", "tiny.en", "--json", speech_clip_path)
    assert result.returncode == 0, result.stderr
    items = json.loads(result.stdout)
    assert items[0]["audio"] == speech_clip_path and len(items[0]["text"].split()) >= 5


def test_export_options_are_declared_once():
    """liteasr-export's defaults are ExportOptions' own, and every option
    lands in an ExportOptions field."""
    from dataclasses import fields

    from liteasr_export.app.cli import export_defaults, export_parser
    from liteasr_export.app.export.options import ExportOptions

    parser = export_parser()
    args = parser.parse_args([])
    for name, default in export_defaults().items():
        assert getattr(args, name) == (None if name == "policy" else default), name
    dests = {action.dest for action in parser._actions} - {"help", "debug"}
    assert dests <= {f.name for f in fields(ExportOptions)}


def test_manifest_with_an_unknown_language(tmp_path, speech_clip_path):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"audio": speech_clip_path, "text": "hola", "language": "spanish"}) + "\n")
    assert_one_line_error(run("eval", "--eval", str(manifest), "--model", "tiny.en"),
                          "line 1", "unknown language code 'spanish'", "Whisper's codes")


def test_english_only_model_refuses_items_in_another_language(tmp_path, speech_clip_path):
    """tiny.en cannot decode Spanish: the evaluation stops before decoding,
    naming the set, the language and the way out (not a WER over English
    guesses)."""
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"language": "es"}) + "\n"
                        + json.dumps({"audio": speech_clip_path, "text": "hola"}) + "\n")
    assert_one_line_error(run("eval", "--eval", str(manifest), "--model", "tiny.en"),
                          "1 item(s) are in language 'es'", "English-only", "multilingual model", "--language en")
