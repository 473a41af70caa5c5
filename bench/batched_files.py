#!/usr/bin/env python3
"""Throughput of transcribing many short files with their windows batched
across files (``--batch-size 8``) against one at a time (``--batch-size 1``),
and whether the texts are identical.

    python bench/batched_files.py --model tiny.en --threads 2 --repeats 3

ONNX Runtime backend (the deployment path) on an export of the dense model,
decoding as liteasr-transcribe does by default (beam 5, fallback,
timestamps); ``--greedy`` measures greedy decoding as well. Each row also
gives the seconds spent in the encoder (``encoder_share``: what batching
cannot save on a CPU, where a batch of windows costs their sum). Runs alternate
between the batch sizes and the median of each is reported (the machines
here are shared: compare ratios from one run). Writes
bench/results/batched_files.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS, eval_subset  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.core.frontend import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402


def _time_encoder(transcriber) -> list[float]:
    """Wrap ``transcriber.encode`` so that its seconds add up in the returned
    one-element list (the rest of a run is the frontend and the decoder)."""
    clock = [0.0]
    encode = transcriber.encode

    def timed(features):
        start = time.perf_counter()
        try:
            return encode(features)
        finally:
            clock[0] += time.perf_counter() - start

    transcriber.encode = timed
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--eval", default="builtin")
    parser.add_argument("--limit", type=int, default=None, help="N clips of --eval, drawn speaker-balanced")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--greedy", action="store_true", help="also measure greedy decoding (beam 1)")
    parser.add_argument("--output", type=Path, default=RESULTS / "batched_files.json")
    args = parser.parse_args()

    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.sources import load_model

    utterances = eval_subset(args.eval, args.limit)
    audio = [load_audio(u.audio) for u in utterances]
    seconds_of_audio = sum(a.size for a in audio) / SAMPLE_RATE
    searches = {"beam 5 (default)": SearchOptions()}
    if args.greedy:
        searches["greedy"] = SearchOptions(beam_size=1)
    out = {"command": " ".join(sys.argv), "clips": len(audio), "audio_seconds": round(seconds_of_audio, 1),
           "threads": args.threads, "rows": []}
    with tempfile.TemporaryDirectory() as folder:
        export_artifacts(load_model(args.model), folder)
        for name, search in searches.items():
            transcribers = {b: OnnxTranscriber(folder, threads=args.threads, batch_size=b,
                                               settings=TranscribeOptions(search=search)) for b in args.batch_sizes}
            times: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
            encoder_times: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
            clocks = {b: _time_encoder(t) for b, t in transcribers.items()}
            texts: dict[int, list[str]] = {}
            transcribers[args.batch_sizes[0]].transcribe_many(audio[:2])  # warm-up
            for _ in range(args.repeats):
                for b, transcriber in transcribers.items():  # alternate, so drifts in machine load hit both
                    clocks[b][0] = 0.0
                    start = time.perf_counter()
                    texts[b] = transcriber.transcribe_many(audio)
                    times[b].append(time.perf_counter() - start)
                    encoder_times[b].append(clocks[b][0])
            base = args.batch_sizes[0]
            for b in args.batch_sizes:
                row = {"decoding": name, "batch_size": b, "seconds": [round(t, 2) for t in times[b]],
                       "median_s": round(statistics.median(times[b]), 2),
                       "encoder_s": [round(t, 2) for t in encoder_times[b]],
                       "encoder_share": round(sum(encoder_times[b]) / sum(times[b]), 3),
                       "clips_per_s": round(len(audio) / statistics.median(times[b]), 2),
                       "speedup_vs_first": round(statistics.median(times[base]) / statistics.median(times[b]), 2),
                       "same_text_as_first": texts[b] == texts[base]}
                out["rows"].append(row)
                print(f"{name:17s} batch {b:2d}: median {row['median_s']:6.2f} s ({row['clips_per_s']:.2f} clips/s), "
                      f"{row['speedup_vs_first']:.2f}x batch {base}, encoder {row['encoder_share']:.0%} of the time, "
                      f"same text: {row['same_text_as_first']}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
