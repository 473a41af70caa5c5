"""Every bad input, through the console programs that take it: exactly one
line on stderr naming the problem, no traceback, the documented exit code
(README, "Exit codes"), and nothing left behind (the test folder's tree is
the same before and after the run)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.core.errors import EXIT_BAD_INPUT, EXIT_INTERNAL
from liteasr_export.model.sources import BUNDLED

ENTRY = {"transcribe": "transcribe_main", "eval": "eval_main", "export": "export_main"}


def _wav(path: Path, samples: np.ndarray) -> None:
    sf.write(str(path), samples.astype(np.float32), 16000, subtype="FLOAT", format="WAV")


def _tone() -> np.ndarray:
    return (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)


def _with_bad_value(bad: float):
    def setup(ctx) -> None:
        audio = _tone()
        audio[100:110] = bad
        _wav(ctx.tmp / "bad.wav", audio)
    return setup


def _model_copy(config: str | None = None, tokenizer: str | None = None):
    def setup(ctx) -> None:
        shutil.copytree(ctx.model, ctx.tmp / "model")
        if config is not None:
            (ctx.tmp / "model" / "config.json").write_text(config)
        if tokenizer is not None:
            (ctx.tmp / "model" / "tokenizer.json").write_text(tokenizer)
    return setup


def _artifacts_copy(tokenizer: str | None = None, corrupt: str | None = None, manifest=None, foreign: str | None = None):
    """A copy of the random artifacts in {tmp}/art; ``manifest``: a function
    of manifest.json's bytes that returns the new bytes; ``foreign``: a file
    taken from another export (``tokenizer.json``: base's multilingual one)."""
    def setup(ctx) -> None:
        art = ctx.copy_artifacts(ctx.artifacts, ctx.tmp / "art")
        if tokenizer is not None:
            (art / "tokenizer.json").write_text(tokenizer)
        if manifest is not None:
            (art / "manifest.json").write_bytes(manifest((art / "manifest.json").read_bytes()))
        if foreign == "tokenizer.json":
            shutil.copy(BUNDLED["base"].files()[0] / "tokenizer.json", art / "tokenizer.json")
        elif foreign is not None:
            shutil.copy(ctx.foreign / foreign, art / foreign)
        if corrupt is not None:
            size = (art / corrupt).stat().st_size
            with open(art / corrupt, "r+b") as f:
                f.seek(size // 2)
                f.write(b"\x00" * min(1 << 20, size // 4))
    return setup


def _edit_manifest(edit):
    """``manifest`` for :func:`_artifacts_copy`: ``edit`` changes the parsed JSON in place."""
    def change(raw: bytes) -> bytes:
        data = json.loads(raw)
        edit(data)
        return json.dumps(data).encode()
    return change


def _wavs(*names: str, folder: str = ""):
    """Audio files (WAV content, whatever their names say) in {tmp}/folder."""
    def setup(ctx) -> None:
        (ctx.tmp / folder).mkdir(exist_ok=True)
        for name in names:
            sf.write(str(ctx.tmp / folder / name), _tone(), 16000, subtype="FLOAT", format="WAV")
    return setup


def _folder(name: str):
    def setup(ctx) -> None:
        (ctx.tmp / name).mkdir(parents=True)
    return setup


def _file(name: str):
    def setup(ctx) -> None:
        (ctx.tmp / name).write_text("not a folder")
    return setup


def _folder_with_notes(ctx) -> None:
    (ctx.tmp / "X" / "src").mkdir(parents=True)
    (ctx.tmp / "X" / "src" / "notes").write_text("x")


def _manifest(ctx) -> None:
    _wav(ctx.tmp / "a.wav", _tone())
    (ctx.tmp / "set.jsonl").write_text('{"audio": "a.wav", "text": "a tone"}\n')


def _truncated_tokenizer(ctx) -> str:
    return ctx.tokenizer_text[: len(ctx.tokenizer_text) // 2]


# Options every program shares (--threads, --device, --model): each case runs
# through each program. {tmp}: the test folder; {clip}: a good audio file.
COMMON = [
    ("threads-0", ["--threads", "0"], None, "--threads: must be a whole number >= 1"),
    ("threads-negative", ["--threads", "-2"], None, "--threads: must be a whole number >= 1"),
    ("threads-text", ["--threads", "many"], None, "--threads: must be a whole number >= 1"),
    ("device-bogus", ["--device", "bogus"], None, "unknown --device 'bogus'"),
    ("device-cuda-without-gpu", ["--device", "cuda"], None, "no usable CUDA GPU"),
    ("device-other", ["--device", "meta"], None, "--device meta is not supported"),
    ("model-unknown", ["--model", "tiny.xx"], None, "unknown model 'tiny.xx'"),
    ("model-is-a-file", ["--model", "{tmp}/m.bin"], _file("m.bin"), "is a file; a model is a folder"),
    ("model-config-list", ["--model", "{tmp}/model"], _model_copy(config="[1, 2]"), "holds a JSON list, not an object"),
    ("model-config-number", ["--model", "{tmp}/model"], _model_copy(config="3"), "holds a JSON int, not an object"),
    ("model-config-truncated", ["--model", "{tmp}/model"], _model_copy(config='{"model_type": "whi'), "cannot read"),
]
# where the runtime CLIs need the torch engine for a case, and an audio argument
RUNTIME_TORCH = {"device-bogus", "device-cuda-without-gpu", "device-other", "model-unknown", "model-is-a-file",
                 "model-config-list", "model-config-number", "model-config-truncated"}

RUNTIME = [  # transcribe and eval, ONNX Runtime and the torch reference
    ("artifacts-missing", ["--engine", "onnx", "--artifacts", "{tmp}/none"], None, "artifacts folder not found"),
    ("artifacts-needed", ["--engine", "onnx"], None, "needs exported artifacts"),
    ("artifacts-corrupt-graph", ["--engine", "onnx", "--artifacts", "{tmp}/art"], _artifacts_copy(corrupt="encoder.onnx"),
     "encoder.onnx is corrupt or was modified"),
    ("artifacts-tokenizer-empty-object", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(tokenizer="{}"), "cannot read tokenizer"),
    ("artifacts-tokenizer-changed", ["--engine", "onnx", "--artifacts", "{tmp}/art"],
     _artifacts_copy(tokenizer="{}"), "tokenizer.json is corrupt or was modified"),
    ("model-tokenizer-empty-object", ["--engine", "torch", "--model", "{tmp}/model"], _model_copy(tokenizer="{}"),
     "cannot read tokenizer"),
    ("model-tokenizer-truncated", ["--engine", "torch", "--model", "{tmp}/model"], "truncated-tokenizer",
     "cannot read tokenizer"),
    ("ort-cache-is-a-file", ["--engine", "onnx", "--artifacts", "{artifacts}", "--ort-cache", "{tmp}/cachefile"],
     _file("cachefile"), "--ort-cache: "),
    ("ort-cache-under-a-file", ["--engine", "onnx", "--artifacts", "{artifacts}", "--ort-cache", "{tmp}/cachefile/c"],
     _file("cachefile"), "cannot create"),
    ("engine-unknown", ["--engine", "tflite"], None, "argument --engine: invalid choice"),
    # decoding options (the random artifacts have tiny.en's English-only vocabulary)
    ("language-on-english-only", ["--engine", "onnx", "--artifacts", "{artifacts}", "--language", "de"], None,
     "English-only model: it cannot transcribe --language de"),
    ("translate-on-english-only", ["--engine", "onnx", "--artifacts", "{artifacts}", "--task", "translate"], None,
     "English-only model: it cannot --task translate"),
    ("language-unknown", ["--engine", "torch", "--model", "base", "--language", "xx"], None,
     "unknown language code 'xx'"),
    ("beam-size-0", ["--engine", "onnx", "--artifacts", "{artifacts}", "--beam-size", "0"], None,
     "--beam-size: must be a whole number >= 1"),
    ("batch-size-0", ["--engine", "onnx", "--artifacts", "{artifacts}", "--batch-size", "0"], None,
     "--batch-size: must be a whole number >= 1"),
    ("length-penalty-range", ["--engine", "onnx", "--artifacts", "{artifacts}", "--length-penalty", "2"], None,
     "--length-penalty must lie between 0 and 1"),
    ("patience-0", ["--engine", "onnx", "--artifacts", "{artifacts}", "--patience", "0"], None,
     "--patience must be a number > 0"),
    ("temperatures-not-from-0", ["--engine", "onnx", "--artifacts", "{artifacts}", "--temperatures", "0.2,0.4"], None,
     "the first fallback temperature must be 0"),
    ("threshold-text", ["--engine", "onnx", "--artifacts", "{artifacts}", "--logprob-threshold", "low"], None,
     "must be a number or 'off'"),
    ("audio-context-unreadable", ["--engine", "onnx", "--artifacts", "{artifacts}", "--audio-context", "half"], None,
     "--audio-context must be full, auto, seconds"),
    # a manifest.json that is not what liteasr-export writes (with --no-verify: the checksums are not what refuses it)
    ("manifest-not-utf8", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=lambda raw: raw.replace(b'"format"', b'"\xff\xfeformat"', 1)), "it is not UTF-8 text"),
    ("manifest-graphs-a-list", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=_edit_manifest(lambda m: m.update(graphs=list(m["graphs"])))),
     '"graphs" is a list (["frontend", "encoder", "decoder"]), expected a JSON object'),
    ("manifest-model-a-string", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=_edit_manifest(lambda m: m.update(model="tiny"))), '"model" is a string ("tiny")'),
    ("manifest-dim-a-string", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=_edit_manifest(lambda m: m["model"].update(decoder_layers="2"))),
     '"model"."decoder_layers" is a string ("2"), expected a whole number > 0'),
    ("manifest-prompt-a-number", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=_edit_manifest(lambda m: m["decoding"].update(prompt=50257))),
     '"decoding"."prompt" is a number (50257), expected a list of whole numbers'),
    ("manifest-shape-a-string", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(manifest=_edit_manifest(lambda m: m["graphs"]["decoder"]["outputs"][0].update(shape="big"))),
     '"graphs"."decoder"."outputs"[0]."shape" is a string ("big")'),
    # files from another export
    ("artifacts-foreign-encoder", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(foreign="encoder.onnx"), "encoder.onnx does not match manifest.json: its output cross_key.0 is "
     "float32[batch, 2, frames, 32], the manifest records float32[batch, 4, frames, 16]"),
    ("artifacts-foreign-tokenizer", ["--engine", "onnx", "--artifacts", "{tmp}/art", "--no-verify"],
     _artifacts_copy(foreign="tokenizer.json"), "does not belong to this model: its vocabulary has 51865 tokens, "
     "the decoder scores 51864"),
]

TRANSCRIBE = [
    ("audio-missing", ["{tmp}/nope.wav"], None, "audio file not found"),
    ("audio-is-a-folder", ["{tmp}"], None, "is a folder, not an audio file"),
    ("audio-nan", ["{tmp}/bad.wav"], _with_bad_value(np.nan), "NaN or infinite samples"),
    ("audio-inf", ["{tmp}/bad.wav"], _with_bad_value(np.inf), "NaN or infinite samples"),
    ("audio-corrupt", ["{tmp}/m.bin"], _file("m.bin"), "cannot decode audio file"),
    ("srt-without-timestamps", ["-f", "srt", "--no-timestamps", "{clip}"], None, "--output-format srt needs timestamps"),
    ("vtt-of-two-files-to-stdout", ["-f", "vtt", "{clip}", "{clip}"], None, "2 files cannot share one vtt output"),
    ("output-dir-same-name", ["-o", "{tmp}/subs", "{clip}", "{clip}"], None, "would both be written to"),
    ("output-dir-is-a-file", ["-o", "{tmp}/cachefile", "{clip}"], _file("cachefile"), "--output-dir: "),
    ("all-formats-to-stdout", ["-f", "all", "{clip}"], None, "--output-format all writes one file per format"),
    # never written over an input, nor over a folder; names the file system takes
    ("output-over-its-input", ["-f", "txt", "-o", "{tmp}", "{tmp}/talk.txt"], _wavs("talk.txt"),
     "--output-dir: writing {tmp}/talk.txt would replace the input {tmp}/talk.txt"),
    ("output-over-another-input", ["-f", "all", "-o", "{tmp}/in", "{tmp}/in/a.wav", "{tmp}/in/a.srt"],
     _wavs("a.wav", "a.srt", folder="in"), "would replace the input {tmp}/in/a.srt"),
    ("output-file-is-a-folder", ["--json", "-o", "{tmp}", "{tmp}/talk.wav"],
     lambda ctx: (_wavs("talk.wav")(ctx), _folder("talk.json")(ctx)), "{tmp}/talk.json is a folder"),
    ("audio-name-too-long", ["{tmp}/" + "a" * 300 + ".wav"], None, "argument audio: "),
    ("output-dir-name-too-long", ["-o", "{tmp}/" + "d" * 300, "{clip}"], None, "argument --output-dir/-o: "),
    ("output-name-too-long", ["-f", "json", "-o", "{tmp}/subs", "{tmp}/" + "c" * 251 + ".wav"], _wavs("c" * 251 + ".wav"),
     "the name is too long for the file system"),
    ("ray-output-over-its-input", ["--ray", "--output", "{tmp}/set.jsonl", "{tmp}/set.jsonl"], None,
     "--output: writing {tmp}/set.jsonl would replace the input {tmp}/set.jsonl"),
    ("ray-first-input-name-too-long", ["--ray", "{tmp}/" + "r" * 300 + ".wav", "--output", "{tmp}/r.jsonl"], None,
     "argument audio: "),
    ("ray-output-is-a-folder", ["--ray", "--output", "{tmp}/results", "{clip}"], _folder("results"),
     "--output: {tmp}/results is a folder"),
]

EVAL = [
    ("limit-0", ["--limit", "0"], None, "--limit: must be a whole number >= 1"),
    ("eval-set-missing", ["--eval", "{tmp}/none.jsonl"], None, "manifest not found"),
    ("eval-set-unknown", ["--eval", "librispeech"], None, "unknown speech set"),
    ("eval-folder-without-references", ["--eval", "{tmp}/clips"], _wavs("a.wav", "b.wav", folder="clips"),
     "--eval {tmp}/clips has no reference transcripts (2 recording(s), none with a text)"),
    ("eval-name-too-long", ["--eval", "{tmp}/" + "e" * 300 + ".jsonl"], None, "argument --eval: "),
    ("eval-manifest-not-utf8", ["--eval", "{tmp}/latin1.jsonl"],
     lambda ctx: (ctx.tmp / "latin1.jsonl").write_bytes(b'{"audio": "a.wav", "text": "caf\xe9"}\n'),
     "{tmp}/latin1.jsonl is not UTF-8 text"),
]

EXPORT = [  # --output {tmp}/out unless the case names one
    ("eval-limit-0", ["--eval-limit", "0"], None, "--eval-limit must be a whole number >= 1"),
    ("calib-samples-0", ["--calib-samples", "0"], None, "--calib-samples must be a whole number >= 1"),
    ("parity-clips-0", ["--parity-clips", "0"], None, "--parity-clips must be a whole number >= 1"),
    ("max-batch-0", ["--max-batch", "0"], None, "--max-batch must be a whole number >= 1"),
    ("theta-text", ["--policy", "liteasr", "--theta", "high"], None, "cannot read theta 'high'"),
    ("theta-range", ["--policy", "liteasr", "--theta", "1.5"], None, "outside (0, 1]"),
    ("theta-parts", ["--policy", "liteasr", "--theta", "0.9:0.9:0.9"], None, "has 3 parts"),
    ("theta-with-budget", ["--theta", "0.99:0.999"], None, "threshold of the liteasr policy"),
    ("target-size-range", ["--policy", "budget", "--target-size", "2"], None, "outside (0, 1]"),
    ("preset-with-policy", ["--preset", "acc", "--policy", "budget"], None, "--preset acc sets the rank policy"),
    ("preset-with-theta", ["--preset", "plain", "--theta", "0.9"], None, "--theta would be ignored"),
    ("preset-with-target-size", ["--preset", "fast", "--target-size", "0.5"], None, "--target-size would be ignored"),
    ("ranks-missing", ["--policy", "profile", "--ranks", "{tmp}/none.json"], None, "rank profile not found"),
    ("ranks-not-json", ["--policy", "profile", "--ranks", "{tmp}/m.bin"], _file("m.bin"), "is not valid JSON"),
    ("calib-missing", ["--calib", "{tmp}/none.jsonl"], None, "manifest not found"),
    ("eval-missing", ["--eval", "{tmp}/none.jsonl"], None, "manifest not found"),
    ("stats-missing", ["--stats", "{tmp}/none.safetensors"], None, "--stats"),
    ("cache-dir-is-a-file", ["--cache-dir", "{tmp}/cachefile"], _file("cachefile"), "--cache-dir: "),
    ("save-stats-under-a-file", ["--save-stats", "{tmp}/cachefile/s.npz"], _file("cachefile"), "--save-stats: "),
    ("trt-int8", ["--engine", "trt", "--int8"], None, "--int8 is the ONNX Runtime CPU quantization"),
    ("bf16-onnx", ["--bf16"], None, "--bf16 is a TensorRT engine precision"),
    ("output-is-a-file", ["--output", "{tmp}/cachefile"], _file("cachefile"), "is a file, not a folder"),
    ("force-onto-a-file", ["--output", "{tmp}/cachefile", "--force"], _file("cachefile"), "is a file, not a folder"),
    ("output-parent-is-a-file", ["--output", "{tmp}/cachefile/out"], _file("cachefile"), "is a file"),
    ("output-exists", ["--output", "{tmp}/X"], _folder_with_notes, "exists. pass --force"),
    ("force-onto-a-folder-not-an-export", ["--output", "{tmp}/X", "--force"], _folder_with_notes,
     "not a liteasr-export output"),
    ("unknown-option", ["--thetta", "0.9"], None, "unrecognized arguments: --thetta"),
    ("save-stats-is-a-folder", ["--save-stats", "{tmp}/stats.npz"], _folder("stats.npz"),
     "--save-stats: {tmp}/stats.npz is a folder"),
    ("output-name-too-long", ["--output", "{tmp}/" + "o" * 300], None, "the name is too long for the file system"),
]


def _cases():
    for name, argv, setup, expect in COMMON:
        yield pytest.param("export", argv, setup, expect, id=f"export-{name}")
        for cli in ("transcribe", "eval"):
            extra = ["--engine", "torch"] if name in RUNTIME_TORCH or name.startswith("threads") else []
            audio = ["{clip}"] if cli == "transcribe" else ["--eval", "{tmp}/set.jsonl"]
            yield pytest.param(cli, [*argv, *extra, *audio], setup, expect, id=f"{cli}-{name}")
    for name, argv, setup, expect in RUNTIME:
        yield pytest.param("transcribe", [*argv, "{clip}"], setup, expect, id=f"transcribe-{name}")
        yield pytest.param("eval", [*argv, "--eval", "{tmp}/set.jsonl"], setup, expect, id=f"eval-{name}")
    for name, argv, setup, expect in TRANSCRIBE:
        yield pytest.param("transcribe", [*argv, "--engine", "onnx", "--artifacts", "{artifacts}"], setup, expect,
                           id=f"transcribe-{name}")
    for name, argv, setup, expect in EVAL:
        yield pytest.param("eval", [*argv, "--engine", "onnx", "--artifacts", "{artifacts}"], setup, expect,
                           id=f"eval-{name}")
    for name, argv, setup, expect in EXPORT:
        yield pytest.param("export", argv, setup, expect, id=f"export-{name}")


def _tree(root: Path) -> dict[str, int]:
    """Every path under ``root`` and its size, except the caches (ONNX Runtime
    keeps an id under $XDG_CACHE_HOME once a session was created)."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1) for p in sorted(root.rglob("*"))
            if p.relative_to(root).parts[0] != "cache"}


class _Context:
    def __init__(self, tmp: Path, model: Path, artifacts: Path, tokenizer: Path, foreign: Path,
                 copy_artifacts) -> None:
        self.tmp, self.model, self.artifacts, self.foreign = tmp, model, artifacts, foreign
        self.tokenizer_text = tokenizer.read_text()
        self.copy_artifacts = copy_artifacts  # the fixture


@pytest.mark.parametrize("cli, argv, setup, expect", list(_cases()))
def test_bad_input(cli, argv, setup, expect, tmp_path, random_hf_dir, random_artifacts, tiny_en_tokenizer_json,
                   speech_clip_path, foreign_artifacts, copy_artifacts):
    ctx = _Context(tmp_path / "work", random_hf_dir, random_artifacts, tiny_en_tokenizer_json, foreign_artifacts,
                   copy_artifacts)
    ctx.tmp.mkdir()
    _manifest(ctx)
    if setup == "truncated-tokenizer":
        _model_copy(tokenizer=_truncated_tokenizer(ctx))(ctx)
    elif setup is not None:
        setup(ctx)
    values = {"tmp": str(ctx.tmp), "clip": speech_clip_path, "artifacts": str(random_artifacts)}
    args = [a.format(**values) for a in argv]
    if cli == "export":
        if "--output" not in args:
            args += ["--output", str(ctx.tmp / "out")]
        if "--model" not in args:
            args += ["--model", str(random_hf_dir)]
        args += ["--quiet"]
    before = _tree(tmp_path)
    code = f"import sys; from liteasr_export.app.cli import {ENTRY[cli]} as m; sys.exit(m(sys.argv[1:]))"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == EXIT_BAD_INPUT, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"liteasr-{cli}: error: ") and expect.format(**values) in lines[0], lines[0]
    assert _tree(tmp_path) == before  # nothing written, nothing half-written
    assert not result.stdout.strip()


@pytest.mark.parametrize("cli", sorted(ENTRY))
def test_unexpected_error_is_one_line_with_its_own_exit_code(cli, tmp_path):
    """A bug (here: a ZeroDivisionError planted in the command) is not a bad
    input: one line that says so, exit 70; --debug shows the traceback."""
    command = {"transcribe": "_transcribe", "eval": "_eval", "export": "_export"}[cli]
    code = (f"import sys, liteasr_export.app.cli as c; c.{command} = lambda args: 1 / 0; "
            f"sys.exit(c.{ENTRY[cli]}(sys.argv[1:]))")
    args = ["a.wav"] if cli == "transcribe" else []
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == EXIT_INTERNAL
    assert result.stderr.strip().splitlines() == [
        f"liteasr-{cli}: internal error: ZeroDivisionError: division by zero (run with --debug for details)"]
    debug = subprocess.run([sys.executable, "-c", code, *args, "--debug"], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path)
    assert debug.returncode == EXIT_INTERNAL and "Traceback" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == f"liteasr-{cli}: internal error: ZeroDivisionError: division by zero"


def test_options_are_checked_before_the_model_is_loaded(random_hf_dir, tmp_path, monkeypatch, capsys):
    """Bad values fail before load, calibration and export (they used to fail minutes in)."""
    import liteasr_export.model.sources as sources
    from liteasr_export.app.cli import export_main

    monkeypatch.setattr(sources, "load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    for bad in (["--theta", "2"], ["--policy", "budget", "--target-size", "0"], ["--eval", str(tmp_path / "x.jsonl")],
                ["--eval-limit", "0"], ["--calib", str(tmp_path / "none")]):
        assert export_main(["--model", str(random_hf_dir), "--output", str(tmp_path / "out"), "--quiet", *bad]) == 2
        assert capsys.readouterr().err.count("error:") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == []
