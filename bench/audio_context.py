#!/usr/bin/env python3
"""Audio context: full 30 s windows against ``auto`` (each window's audio
plus 1 s, in the buckets of ``AUTO_BUCKETS``, 3 to 30 s), per check set, on one export, with
faster-whisper int8 at the same beam size in the same run.

Per set and mode: end-to-end seconds, encoder seconds (the time spent in
the runner's ``encode``), the rest (frontend and decoder), WER, the windows
decoded again on 30 s after their trimmed decode failed, and the encoded
lengths. Sets are decoded whole by each mode in turn (modes alternate set
by set, so load from other processes spreads over all of them); one
warm-up clip per mode is not timed. Writes ``bench/results/audio_context.json``
and its plot ``audio_context.png``.

    python bench/audio_context.py --artifacts OUT [--tuned TUNED] [--model tiny.en] \
        [--sets builtin-eval asterisk-eval fotaq-eval long] [--limit 48] [--beam-size 5] [--threads 2]

The export must come from a version whose encoder length is dynamic
(``liteasr-export`` of this repository). ``--artifacts`` is a stock
(untuned) export; ``--tuned`` adds one exported with ``--context-tune``,
both modes, so that tuned and untuned ``auto`` are measured in one run
against the same ``full`` (the dense model when ``--artifacts`` was
exported with ``--no-compress``).
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.decoding_common import faster_whisper_model, faster_whisper_text, save_plot  # noqa: E402
from calibration.datasets import resolve_set  # noqa: E402
from calibration.mix import balanced_sample  # noqa: E402
from engines.validation.quality_gate import LONG_MINUTES, long_recording  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.core.errors import DatasetError  # noqa: E402
from liteasr_export.core.evaluation import score  # noqa: E402
from liteasr_export.core.frontend import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "audio_context.json"


def load_set(name: str, limit: int | None, long_minutes: float) -> tuple[list[str], list, list[str]]:
    """(ids, audio arrays, references) of a check set; ``long``: held-out fotaq
    voices back to back (the quality gate's long recording)."""
    if name == "long":
        try:
            clips = balanced_sample(resolve_set("fotaq", "eval"), None, seed=1)
        except DatasetError:
            clips = resolve_set("builtin", "eval")
        check = long_recording(clips, long_minutes)
        return check.ids, check.audio, check.references
    utterances = balanced_sample(resolve_set(name, "eval"), limit, seed=0)
    return [u.id for u in utterances], [load_audio(u.audio) for u in utterances], [u.text for u in utterances]


class Timed:
    """An ONNX Runtime transcriber whose encoder time is added up."""

    def __init__(self, artifacts: Path, threads: int, settings: TranscribeOptions) -> None:
        self.runner = OnnxTranscriber(artifacts, threads=threads, settings=settings)
        self.encoder_s = 0.0
        self.lengths: collections.Counter = collections.Counter()
        encode = self.runner.encode

        def timed(features):
            start = time.perf_counter()
            try:
                return encode(features)
            finally:
                self.encoder_s += time.perf_counter() - start
                self.lengths[int(features.shape[-1])] += int(features.shape[0])

        self.runner.encode = timed

    def __call__(self, audios: list) -> tuple[list[str], dict]:
        self.encoder_s, self.lengths = 0.0, collections.Counter()
        results = self.runner.transcribe_detailed(audios)
        windows = [w for r in results for w in r.windows]
        return [r.text for r in results], {"encoder_s": self.encoder_s,
                                           "encoded": {str(k): v for k, v in sorted(self.lengths.items())},
                                           "windows": len(windows),
                                           "full_context_retries": sum(w.full_context_retry for w in windows)}


def faster_whisper(model: str, threads: int, beam_size: int, dest: Path):
    """faster-whisper int8 on the bundled CTranslate2 files, openai-whisper's
    fallback, the same beam size."""
    fw = faster_whisper_model(model, dest, "int8", threads)

    def transcribe(audios: list) -> tuple[list[str], dict]:
        return [faster_whisper_text(fw, audio, "en", beam_size) for audio in audios], {}

    return transcribe


def plot(result: dict, path: Path) -> None:
    """Per set: each backend's end-to-end seconds (bars) and WER (labels)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(r["set"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
    for ax, name in zip(axes[0], sets):
        rows = [r for r in result["rows"] if r["set"] == name]
        bars = ax.bar(range(len(rows)), [r["seconds"] for r in rows], color="#4c72b0")
        for bar, row in zip(bars, rows):
            ax.annotate(f"WER {row['wer']:.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_xticks(range(len(rows)), [r["backend"] for r in rows], rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{name} ({rows[0]['clips']} clips)", fontsize=9)
        ax.set_ylabel("seconds, end to end")
    fig.suptitle(f"audio context: full vs auto, beam {result['beam_size']}, {result['threads']} threads", fontsize=10)
    save_plot(fig, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=Path, required=True, help="a folder written by liteasr-export")
    parser.add_argument("--tuned", type=Path, default=None,
                        help="also a folder exported with --context-tune (its rows: tuned full, tuned auto)")
    parser.add_argument("--model", default="tiny.en", help="the bundled model faster-whisper runs (its CTranslate2 "
                                                           "files); none: leave faster-whisper out")
    parser.add_argument("--sets", nargs="+", default=["builtin-eval", "asterisk-eval", "fotaq-eval", "long"])
    parser.add_argument("--limit", type=int, default=48, help="clips per set (speakers taking turns)")
    parser.add_argument("--long-minutes", type=float, default=LONG_MINUTES)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    search = SearchOptions(beam_size=args.beam_size)
    backends = {mode: Timed(args.artifacts, args.threads, TranscribeOptions(search=search, audio_context=mode))
                for mode in ("full", "auto")}
    if args.tuned is not None:
        backends.update({f"tuned {mode}": Timed(args.tuned, args.threads,
                                                TranscribeOptions(search=search, audio_context=mode))
                         for mode in ("full", "auto")})
    if args.model != "none":
        backends["faster-whisper int8"] = faster_whisper(args.model, args.threads, args.beam_size,
                                                         Path(tempfile.mkdtemp(prefix="ct2-")))
    warm = [load_audio(resolve_set("builtin", "eval")[0].audio)]
    for run in backends.values():
        run(warm)

    rows = []
    for name in args.sets:
        try:
            ids, audios, refs = load_set(name, args.limit, args.long_minutes)
        except DatasetError as exc:
            print(f"{name}: skipped ({exc})", file=sys.stderr)
            continue
        seconds_of_audio = sum(a.size for a in audios) / SAMPLE_RATE
        for backend, run in backends.items():
            start = time.perf_counter()
            texts, extra = run(audios)
            total = time.perf_counter() - start
            wer = score(ids, refs, texts).wer
            row = {"set": name, "backend": backend, "clips": len(audios), "audio_s": round(seconds_of_audio, 1),
                   "seconds": round(total, 2), "wer": round(wer, 2), **extra}
            if "encoder_s" in extra:
                row["encoder_s"] = round(extra["encoder_s"], 2)
                row["rest_s"] = round(total - extra["encoder_s"], 2)
            rows.append(row)
            print(f"{name:14s} {backend:20s} {total:7.1f} s  WER {wer:6.2f}"
                  + (f"  encoder {row['encoder_s']:6.1f} s, rest {row['rest_s']:6.1f} s, retried "
                     f"{row['full_context_retries']}/{row['windows']}, encoded {row['encoded']}"
                     if "encoder_s" in row else ""), flush=True)
        full = next(r for r in rows if r["set"] == name and r["backend"] == "full")
        for auto in (r for r in rows if r["set"] == name and r["backend"].endswith("auto")):
            print(f"{name:14s} {auto['backend']} vs full: {full['seconds'] / auto['seconds']:.2f}x end to end, "
                  f"encoder {full['encoder_s'] / max(auto['encoder_s'], 1e-9):.2f}x, WER "
                  f"{auto['wer'] - full['wer']:+.2f}", flush=True)

    result = {"command": " ".join(["python", "bench/audio_context.py", *(argv or sys.argv[1:])]),
              "machine": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
              "date": time.strftime("%Y-%m-%d"), "artifacts": str(args.artifacts), "beam_size": args.beam_size,
              "threads": args.threads, "tuned": None if args.tuned is None else str(args.tuned), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.output}", file=sys.stderr)
    plot(result, args.output.with_suffix(".png"))
    print(f"wrote {args.output.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
