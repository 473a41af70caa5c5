#!/usr/bin/env python3
"""WER of the dense and the compressed model (default recipe at each budget
size) on the quality gate's long recording: 4 minutes of held-out fotaq
voices back to back, decoded as the gate decodes (greedy with the
temperature fallback). The gate's limit is +1.0 point; the default size per
model (``liteasr_export.model.compression.rank_policies.default_target_size``) is chosen from
these figures.

    python bench/default_size.py --model tiny.en --sizes 0.9 0.92 0.95

PyTorch backend (the gate's reference; ONNX Runtime gave the same WER in a
real export). Writes bench/results/default_size_<model>.json after each size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS  # noqa: E402
from calibration.datasets import resolve_set  # noqa: E402
from calibration.mix import balanced_sample  # noqa: E402
from engines.validation.quality_gate import LONG_MINUTES, long_recording  # noqa: E402
from liteasr_export.app.export.compression_stage import calibrate, compress_model  # noqa: E402
from liteasr_export.core.evaluation import score  # noqa: E402
from liteasr_export.app.export.options import ExportOptions  # noqa: E402
from liteasr_export.app.export.quality_stage import GATE_SEED, gate_transcriber  # noqa: E402
from liteasr_export.model.sources import load_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--sizes", type=float, nargs="+", default=[0.9, 0.92, 0.95])
    parser.add_argument("--minutes", type=float, default=LONG_MINUTES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    output = args.output or RESULTS / f"default_size_{args.model}.json"
    # the gate's own recording (liteasr_export.app.export.quality_stage.gate_checks builds it so)
    check = long_recording(balanced_sample(resolve_set("fotaq", "eval"), None, seed=GATE_SEED + 1), args.minutes)
    dense = load_model(args.model)

    def wer(loaded) -> dict:
        start = time.perf_counter()
        texts = gate_transcriber(loaded).transcribe_many(check.audio)
        result = score(check.ids, check.references, texts, time.perf_counter() - start)
        return {"wer": round(result.wer, 2), "errors": result.errors, "words": result.words}

    out = {"command": " ".join(sys.argv), "model": args.model, "minutes": args.minutes, "dense": wer(dense), "rows": []}
    print(f"{args.model} dense: {out['dense']['wer']:.2f} % of {out['dense']['words']} words", flush=True)
    for size in args.sizes:
        opts = ExportOptions(output=Path("unused"), calib="default", progress=False, target_size=size)
        stats, _ = calibrate(dense, opts, progress_note=lambda _: None)
        model, report = compress_model(dense, stats, opts, lambda _: None)
        row = {"target_size": size, "size_ratio": round(report.size_ratio, 3), **wer(model)}
        row["increase"] = round(row["wer"] - out["dense"]["wer"], 2)
        out["rows"].append(row)
        print(f"  {100 * row['size_ratio']:.1f} %: {row['wer']:.2f} % ({row['increase']:+.2f})", flush=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
