#!/usr/bin/env python3
"""End to end on the built-in evaluation set: ONNX Runtime pipelines (dense
and low-rank, fp32 and int8) against faster-whisper (int8 and fp32) and the
PyTorch reference, side by side in one run, greedy, same model, same threads.

Prints wall time and WER per backend and the share of ONNX transcripts equal
to PyTorch's, and writes bench/results/e2e_vs_faster_whisper.json.

Backends take turns utterance by utterance (round robin), so load from other
processes on a shared machine spreads over all of them instead of skewing
one. Audio is decoded once beforehand; each backend's time covers its own
frontend, encoder and decoding. One warm-up utterance per backend is not timed.

    python bench/e2e_vs_faster_whisper.py --threads 2 [--limit 16] [--compress] [--no-torch] \
        [--artifacts "NAME=DIR" ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.datasets import resolve_set  # noqa: E402
from liteasr_export.core.evaluation import score  # noqa: E402
from liteasr_export.core.frontend import load_audio  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "e2e_vs_faster_whisper.json"


def faster_whisper_backend(model_dir: Path, compute_type: str, threads: int) -> Callable:
    from faster_whisper import WhisperModel

    model = WhisperModel(str(model_dir), device="cpu", compute_type=compute_type, cpu_threads=threads, num_workers=1)

    def transcribe(audio) -> str:
        segments, _ = model.transcribe(audio, language="en", beam_size=1, best_of=1, temperature=0.0,
                                       without_timestamps=True, condition_on_previous_text=False, vad_filter=False)
        return "".join(s.text for s in segments).strip()

    return transcribe


def export_variant(loaded, out: Path, int8: bool, reuse: bool) -> Path:
    from exporters.artifacts import export_artifacts
    from liteasr_export.core.manifest import load_manifest

    if reuse and (out / "manifest.json").is_file():
        load_manifest(out)
        return out
    export_artifacts(loaded, out, precision="int8" if int8 else "fp32")
    return out


def compress_model(loaded, theta: str):
    """LiteASR compression of the encoder, calibrated on the built-in calibration set."""
    from calibration.statistics import collect_statistics
    from liteasr_export.model.compression.compressor import compress
    from liteasr_export.model.compression.rank_policies import LiteASRPolicy, parse_theta

    attn, mlp = parse_theta(theta)
    stats = collect_statistics(loaded.model, resolve_set("builtin", purpose="calib"), progress=False, source="builtin")
    model, _ = compress(loaded.model, stats, LiteASRPolicy(theta_attn=attn, theta_mlp=mlp))
    return dataclasses.replace(loaded, model=model, name=f"{loaded.name}-liteasr"), model.config.low_rank_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny.en",
                        help="bundled CTranslate2 model (faster-whisper loads the same files)")
    parser.add_argument("--eval", default="builtin", help="evaluation set (default: builtin)")
    parser.add_argument("--limit", type=int, default=None, help="first N utterances only")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads for every backend")
    parser.add_argument("--compress", action="store_true", help="also run the LiteASR low-rank encoder")
    parser.add_argument("--theta", default="0.99:0.999", help="LiteASR variance thresholds attention:MLP")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference (and the parity figures)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "liteasr-e2e-bench",
                        help="where exported artifacts are kept")
    parser.add_argument("--reuse", action="store_true", help="reuse artifacts already in --workdir")
    parser.add_argument("--artifacts", action="append", default=[], metavar="NAME=DIR",
                        help="also run an exported artifacts folder under NAME (repeatable)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    import torch

    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from liteasr_export.model.sources import BUNDLED, load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber
    from liteasr_export.core.windowed import PLAIN_GREEDY

    torch.set_num_threads(args.threads)
    loaded = load_model(args.model)
    ct2_dir, bins = BUNDLED[args.model].files()
    if len(bins) != 1:
        parser.error(f"faster-whisper cannot load the split model.bin of {args.model}; use tiny.en")
    models = {"dense": loaded}
    notes: dict[str, str] = {}
    if args.compress:
        models["low-rank"], ranks = compress_model(loaded, args.theta)
        notes["low_rank_config"] = ranks

    backends: dict[str, Callable] = {}
    errors: dict[str, str] = {}
    backends["faster-whisper int8"] = faster_whisper_backend(ct2_dir, "int8", args.threads)
    backends["faster-whisper fp32"] = faster_whisper_backend(ct2_dir, "float32", args.threads)
    for kind, model in models.items():
        if not args.no_torch:
            backends[f"torch {kind} fp32"] = TorchTranscriber(model, settings=PLAIN_GREEDY).transcribe
        for precision in ("fp32", "int8"):
            name = f"onnx {kind} {precision}"
            try:
                folder = args.workdir / f"{args.model}-{kind}-{precision}"
                out = export_variant(model, folder, precision == "int8", args.reuse)
                backends[name] = OnnxTranscriber(out, threads=args.threads, settings=PLAIN_GREEDY).transcribe
            except Exception as exc:  # one broken variant must not hide the others' figures
                errors[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()

    for spec in args.artifacts:
        name, _, folder = spec.partition("=")
        if not folder:
            parser.error(f"--artifacts takes NAME=DIR, got {spec!r}")
        backends[name] = OnnxTranscriber(folder, threads=args.threads, settings=PLAIN_GREEDY).transcribe

    utterances = [u for u in resolve_set(args.eval, purpose="eval") if u.text is not None][: args.limit]
    audio = [load_audio(u.audio) for u in utterances]
    audio_seconds = sum(a.size for a in audio) / 16000
    for transcribe in backends.values():
        transcribe(audio[0])  # warm-up: first-run allocations and kernel selection
    hypotheses: dict[str, list[str]] = {name: [] for name in backends}
    seconds = dict.fromkeys(backends, 0.0)
    for i, pcm in enumerate(audio):
        for name, transcribe in backends.items():
            start = time.perf_counter()
            hypotheses[name].append(transcribe(pcm))
            seconds[name] += time.perf_counter() - start
        print(f"\r{i + 1}/{len(audio)} utterances", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    refs = [u.text for u in utterances]
    paths = [str(u.audio) for u in utterances]
    rows = {}
    for name in backends:
        result = score(paths, refs, hypotheses[name], seconds[name])
        rows[name] = {"wall_s": round(seconds[name], 3), "rtf": round(seconds[name] / audio_seconds, 4),
                      "wer": round(result.wer, 3), "errors": result.errors, "words": result.words}
        kind = name.split()[1] if name.startswith("onnx") else None
        reference = f"torch {kind} fp32"
        if kind and reference in hypotheses:
            same = sum(a == b for a, b in zip(hypotheses[name], hypotheses[reference]))
            rows[name]["same_transcript_as_torch"] = round(same / len(audio), 4)
    base = rows["faster-whisper int8"]["wall_s"]
    for row in rows.values():
        row["speed_vs_faster_whisper_int8"] = round(base / row["wall_s"], 3)

    import onnxruntime

    import faster_whisper

    report = {
        "command": " ".join(["python", "bench/e2e_vs_faster_whisper.py", *sys.argv[1:]]),
        "model": args.model,
        "eval": args.eval,
        "utterances": len(audio),
        "audio_seconds": round(audio_seconds, 1),
        "threads": args.threads,
        "decoding": "greedy, no timestamps, no temperature fallback",
        "versions": {"onnxruntime": onnxruntime.__version__, "faster_whisper": faster_whisper.__version__,
                     "torch": torch.__version__, "python": platform.python_version()},
        "machine": platform.processor() or platform.machine(),
        "results": rows,
        "errors": errors,
        **notes,
        "transcripts": {name: hyps for name, hyps in hypotheses.items()},
        "references": refs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{len(audio)} utterances, {audio_seconds:.0f} s of audio, {args.threads} threads")
    width = max(len(name) for name in rows)
    print(f"{'backend':{width}} {'wall s':>8} {'RTF':>7} {'WER %':>7} {'x fw-int8':>9} {'= torch':>8}")
    for name, row in rows.items():
        same = row.get("same_transcript_as_torch")
        print(f"{name:{width}} {row['wall_s']:8.2f} {row['rtf']:7.4f} {row['wer']:7.2f} "
              f"{row['speed_vs_faster_whisper_int8']:9.2f} {'' if same is None else f'{100 * same:7.1f}%':>8}")
    for name, error in errors.items():
        print(f"{name}: FAILED {error}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
