"""Test data for the C++ example's CTest: WAV clips and the texts the Python
ONNX Runtime path (liteasr_export.core.runtime.ort_transcriber.OnnxTranscriber) gives for them.

    python make_expected.py --artifacts DIR --out DATA [--model tiny.en] [--clips 5]

``DIR`` is used as is when it holds a manifest.json, otherwise ``--model`` is
exported into it with exporters.artifacts.export_artifacts. Writes into DATA:

* ``clips/*.wav``: the first ``--clips`` built-in evaluation clips (Ogg in the
  repository) as 16 kHz mono 16-bit WAV, one of them also as 32-bit float WAV,
  and ``long.wav``, built-in clips joined to over 30 s (two windows: the
  split and the batched decode are exercised too);
* ``clips.txt`` (one WAV path a line) and ``expected.txt`` (one text a line,
  same order), the Python texts of exactly those WAV files, decoded as
  ``liteasr_cpp`` decodes by default: greedy (the C++ runtime has no beam
  search), with timestamps and the temperature fallback;
  ``expected.json`` the same transcripts in full (segments, windows), and
  ``expected_cut.txt`` the texts without timestamps (``--no-timestamps``);
* ``expected_<tag>.json`` and ``expected_cut_<tag>.txt``: the same under each
  audio context of :data:`CONTEXTS` (``--audio-context auto`` and ``10``), and
  ``ctx_default_auto/``: the artifacts (linked) with a manifest whose
  ``audio_context`` default is ``auto`` (a tuned export's), which must give
  ``expected_auto.json`` with no flag;
* ``bad/``: inputs the C++ program must reject (8 kHz, stereo, 24-bit, not a
  WAV; artifacts folders without manifest.json, with a broken one, one of
  another format, one whose graphs are missing, one whose encoder.onnx is
  corrupt, one whose manifest records no checksums, one with another
  model's tokenizer.json, one whose ``audio_context`` section is invalid, and,
  when the ``onnx`` package is installed, one whose encoder.onnx takes 3000
  mel frames only, as exports before trimmed contexts).

It needs only the runtime (``pip install liteasr-export``), unless it has to
export (``pip install 'liteasr-export[export]'``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # a source checkout that is not pip-installed
    sys.path.insert(0, str(REPO))

from calibration.datasets import resolve_set  # noqa: E402
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.core.errors import require_extra  # noqa: E402
from liteasr_export.core.frontend import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr_export.core.integrity import sha256_file  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402

#: what liteasr_cpp does by default: greedy, timestamps, fallback
CPP_SETTINGS = TranscribeOptions(search=SearchOptions(beam_size=1), timestamps=True)
#: audio contexts checked besides the manifest's (full): tag -> TranscribeOptions.audio_context
#: (liteasr_cpp --audio-context auto / 10)
CONTEXTS = {"auto": "auto", "10s": 1000}

LONG_SECONDS = 40.0
GAP_SECONDS = 0.4


def write_pcm16(path: Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(str(path), pcm, rate, subtype="PCM_16", format="WAV")


def ensure_artifacts(artifacts: Path, model: str) -> None:
    if (artifacts / "manifest.json").is_file():
        print(f"using the artifacts in {artifacts}")
        return
    require_extra("export", f"exporting {model} (--artifacts {artifacts} has no manifest.json)")
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.sources import load_model

    start = time.perf_counter()
    export_artifacts(load_model(model), artifacts)
    print(f"exported {model} into {artifacts} in {time.perf_counter() - start:.1f} s")


def write_clips(out: Path, n_clips: int) -> list[Path]:
    clips = out / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    utterances = resolve_set("builtin", "eval")
    if len(utterances) < n_clips:
        raise SystemExit(f"the built-in evaluation set has {len(utterances)} clips, fewer than {n_clips}")
    paths = []
    for utt in utterances[:n_clips]:
        path = clips / f"{Path(utt.audio).stem}.wav"
        write_pcm16(path, load_audio(utt.audio))
        paths.append(path)
    # the same audio as 32-bit float, read back without quantization
    float_path = clips / f"{paths[0].stem}.f32.wav"
    sf.write(str(float_path), load_audio(utterances[0].audio), SAMPLE_RATE, subtype="FLOAT", format="WAV")
    paths.append(float_path)
    # over 30 s: built-in clips with short silences between them
    parts, total = [], 0
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.float32)
    for utt in utterances:
        if total >= LONG_SECONDS * SAMPLE_RATE:
            break
        parts += [load_audio(utt.audio), gap]
        total += parts[-2].size + gap.size
    long_path = clips / "long.wav"
    write_pcm16(long_path, np.concatenate(parts))
    paths.append(long_path)
    return paths


def write_foreign_tokenizer(src: Path, dst: Path) -> None:
    """``src`` made into another model's tokenizer.json: one text token more,
    and so each special token one id later, as a multilingual model's
    vocabulary is to an English-only one's (tiny.en's 51864 tokens become
    base's 51865). Only the runtime is needed, no second model."""
    data = json.loads(src.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    first_special = len(vocab)
    for token in data["added_tokens"]:
        if token["id"] >= first_special:
            token["id"] += 1
    vocab["<|foreign|>"] = first_special
    dst.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def write_bad_inputs(out: Path, clip: Path, artifacts: Path) -> None:
    bad = out / "bad"
    if bad.exists():
        shutil.rmtree(bad)
    bad.mkdir(parents=True)
    audio = load_audio(clip)
    write_pcm16(bad / "8khz.wav", audio[::2], rate=8000)
    write_pcm16(bad / "stereo.wav", np.stack([audio, audio], axis=1))
    sf.write(str(bad / "pcm24.wav"), audio, SAMPLE_RATE, subtype="PCM_24", format="WAV")
    ogg = resolve_set("builtin", "eval")[0].audio
    shutil.copyfile(ogg, bad / "not_a_wav.wav")  # Ogg bytes under a .wav name
    (bad / "no_manifest").mkdir()
    (bad / "broken_manifest").mkdir()
    (bad / "broken_manifest" / "manifest.json").write_text('{"format": "liteasr-export/1", "model": ')
    manifest = json.loads((artifacts / "manifest.json").read_text())
    (bad / "other_format").mkdir()
    (bad / "other_format" / "manifest.json").write_text(json.dumps({**manifest, "format": "other-tool/2"}))
    (bad / "graphs_missing").mkdir()  # a manifest copied without the graphs it names
    shutil.copyfile(artifacts / "manifest.json", bad / "graphs_missing" / "manifest.json")
    # the folder's files linked, but encoder.onnx copied with 1 MB overwritten in the middle
    for name, changed in (("corrupt_graph", "encoder.onnx"), ("no_checksums", "manifest.json")):
        (bad / name).mkdir()
        for file in artifacts.iterdir():
            if file.is_file() and not file.name.startswith(".") and file.name != changed:
                (bad / name / file.name).symlink_to(file.resolve())
    shutil.copyfile(artifacts / "encoder.onnx", bad / "corrupt_graph" / "encoder.onnx")
    with open(bad / "corrupt_graph" / "encoder.onnx", "r+b") as f:
        f.seek((artifacts / "encoder.onnx").stat().st_size // 2)
        f.write(b"\0" * (1 << 20))
    (bad / "no_checksums" / "manifest.json").write_text(json.dumps({k: v for k, v in manifest.items() if k != "sha256"}))
    # another model's tokenizer.json in place of this one, its checksum recorded: the vocabulary check refuses it
    foreign = bad / "foreign_tokenizer"
    foreign.mkdir()
    for file in artifacts.iterdir():
        if file.is_file() and file.name not in ("tokenizer.json", "manifest.json") and not file.name.startswith("."):
            (foreign / file.name).symlink_to(file.resolve())
    write_foreign_tokenizer(artifacts / "tokenizer.json", foreign / "tokenizer.json")
    sums = {**manifest["sha256"], "tokenizer.json": sha256_file(foreign / "tokenizer.json")}
    (foreign / "manifest.json").write_text(json.dumps({**manifest, "sha256": sums}))
    linked_copy(artifacts, bad / "audio_context_section", {**manifest, "audio_context": {"default": "sometimes"}})
    write_fixed_length_encoder(artifacts, bad / "fixed_length_encoder", manifest)


def linked_copy(artifacts: Path, dst: Path, manifest: dict) -> None:
    """``dst``: the artifacts' files linked, with ``manifest`` as its manifest.json."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for file in artifacts.iterdir():
        if file.is_file() and file.name != "manifest.json" and not file.name.startswith("."):
            (dst / file.name).symlink_to(file.resolve())
    (dst / "manifest.json").write_text(json.dumps(manifest))


def write_fixed_length_encoder(artifacts: Path, dst: Path, manifest: dict) -> None:
    """``dst``: the artifacts with an encoder.onnx whose frames axis is fixed at
    3000 (as exports before trimmed contexts), its checksum recorded. Needs
    the ``onnx`` package (the export extra); skipped without it."""
    try:
        import onnx
    except ImportError:
        print("onnx is not installed: bad/fixed_length_encoder not written")
        return
    linked_copy(artifacts, dst, manifest)
    (dst / "encoder.onnx").unlink()
    model = onnx.load(str(artifacts / "encoder.onnx"))
    frames = next(i for i in model.graph.input if i.name == "input_features").type.tensor_type.shape.dim[2]
    frames.ClearField("dim_param")
    frames.dim_value = 3000
    onnx.save(model, str(dst / "encoder.onnx"))
    sums = {**manifest["sha256"], "encoder.onnx": sha256_file(dst / "encoder.onnx")}
    (dst / "manifest.json").write_text(json.dumps({**manifest, "sha256": sums}))


def write_json(path: Path, paths: list[Path], transcripts: list) -> None:
    for p, t in zip(paths, transcripts):
        if "\n" in t.text:
            raise SystemExit(f"{p.name}: the transcript holds a line break; the expected texts need one line per clip")
    path.write_text(json.dumps([{"audio": str(p), **t.to_dict()} for p, t in zip(paths, transcripts)], indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="tiny.en", help="exported when --artifacts has no manifest.json")
    parser.add_argument("--clips", type=int, default=5, help="built-in evaluation clips to transcribe")
    args = parser.parse_args()

    ensure_artifacts(args.artifacts, args.model)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_clips(args.out, args.clips)
    write_bad_inputs(args.out, paths[0], args.artifacts)

    transcriber = OnnxTranscriber(args.artifacts, settings=CPP_SETTINGS)
    audio = [load_audio(path) for path in paths]
    transcripts = transcriber.transcribe_detailed(audio)
    cut = OnnxTranscriber(args.artifacts, settings=replace(CPP_SETTINGS, timestamps=False)).transcribe_many(audio)
    for path, t, text in zip(paths, transcripts, cut):
        if "\n" in t.text or "\n" in text:
            raise SystemExit(f"{path.name}: the transcript holds a line break; expected.txt needs one line per clip")
        print(f"{path.name}: {t.text}")
    (args.out / "clips.txt").write_text("".join(f"{p}\n" for p in paths))
    (args.out / "expected.txt").write_text("".join(f"{t.text}\n" for t in transcripts))
    (args.out / "expected_cut.txt").write_text("".join(f"{text}\n" for text in cut))
    write_json(args.out / "expected.json", paths, transcripts)
    for tag, context in CONTEXTS.items():
        settings = replace(CPP_SETTINGS, audio_context=context)
        transcripts = OnnxTranscriber(args.artifacts, settings=settings).transcribe_detailed(audio)
        cut = OnnxTranscriber(args.artifacts, settings=replace(settings, timestamps=False)).transcribe_many(audio)
        if any("\n" in text for text in cut):
            raise SystemExit(f"audio context {context}: a transcript holds a line break")
        retried = sum(w.full_context_retry for t in transcripts for w in t.windows)
        print(f"audio context {context}: {retried} window(s) decoded again on 30 s")
        write_json(args.out / f"expected_{tag}.json", paths, transcripts)
        (args.out / f"expected_cut_{tag}.txt").write_text("".join(f"{text}\n" for text in cut))
    manifest = json.loads((args.artifacts / "manifest.json").read_text())
    linked_copy(args.artifacts, args.out / "ctx_default_auto",
                {**manifest, "audio_context": {"default": "auto", "tuned": True}})
    print(f"wrote {len(paths)} clips and their expected texts to {args.out}")


if __name__ == "__main__":
    main()
