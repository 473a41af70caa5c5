#!/usr/bin/env python3
"""Peak memory and speed of streaming calibration: tiny.en on 32 and on 128
utterances (Asterisk speech by default), each in a fresh process.

    python bench/calibration_memory.py [--model tiny.en] [--calib asterisk] [--samples 32 128]

Statistics are O(d^2) per layer, so peak RSS must not grow with the number of
utterances (goal: within 10 %). Writes bench/results/calibration_memory.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(model: str, calib: str, samples: int, batch_size: int) -> None:
    """One measurement, in this (fresh) process; prints one JSON line."""
    from calibration.datasets import resolve_set
    from calibration.statistics import collect_statistics
    from liteasr_export.model.sources import load_model

    loaded = load_model(model)
    utterances = resolve_set(calib, "calib")[:samples]
    before = peak_rss_mb()
    start = time.perf_counter()
    stats = collect_statistics(loaded.model, utterances, batch_size=batch_size, progress=False, source=calib)
    seconds = time.perf_counter() - start
    print(json.dumps({
        "samples": samples, "utterances": stats.n_utterances, "windows": stats.n_windows,
        "peak_rss_mb_before_calibration": round(before, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "seconds": round(seconds, 2), "seconds_per_utterance": round(seconds / stats.n_utterances, 3),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--calib", default="asterisk")
    parser.add_argument("--samples", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS / "calibration_memory.json")
    args = parser.parse_args()
    if args.child is not None:
        child(args.model, args.calib, args.child, args.batch_size)
        return

    from calibration.datasets import resolve_set

    available = len(resolve_set(args.calib, "calib"))  # also fills any decode cache before timing
    runs = []
    for samples in args.samples:
        if samples > available:
            sys.exit(f"{args.calib} has {available} utterances, fewer than {samples}")
        line = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--calib", args.calib, "--child", str(samples),
             "--batch-size", str(args.batch_size)],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]
        runs.append(json.loads(line))
        print(f"{args.model} {samples:4d} utterances: peak RSS {runs[-1]['peak_rss_mb']:.0f} MB "
              f"(before calibrating {runs[-1]['peak_rss_mb_before_calibration']:.0f} MB), "
              f"{runs[-1]['seconds_per_utterance']:.3f} s/utterance", flush=True)
    growth = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"] - 1
    print(f"peak RSS growth from {runs[0]['samples']} to {runs[-1]['samples']} utterances: {100 * growth:+.1f} %")
    result = {"model": args.model, "calib": args.calib, "batch_size": args.batch_size, "runs": runs,
              "peak_rss_growth": round(growth, 4), "within_10_percent": abs(growth) <= 0.10}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
