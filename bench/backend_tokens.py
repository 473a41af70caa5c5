#!/usr/bin/env python3
"""Token-for-token agreement of the ONNX Runtime backend with PyTorch, for
greedy decoding and beam search (fallback and timestamps on, as users get
them), on the built-in evaluation clips, dense and compressed.

    python bench/backend_tokens.py --model tiny.en

Each clip's window is encoded once per backend, then decoded under each
setting; a clip agrees when every token is the same. Writes
bench/results/backend_tokens.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS, eval_subset, variants  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.core.frontend import load_audio, log_mel  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402


def agreement(a: list[list[int]], b: list[list[int]]) -> dict:
    same_clips = sum(x == y for x, y in zip(a, b))
    same_tokens = sum(sum(p == q for p, q in zip(x, y)) for x, y in zip(a, b))
    tokens = sum(max(len(x), len(y)) for x, y in zip(a, b))
    return {"clips": len(a), "identical_clips": same_clips, "identical_clip_pct": round(100 * same_clips / len(a), 2),
            "tokens": tokens, "identical_token_pct": round(100 * same_tokens / max(tokens, 1), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--eval", default="builtin")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compressed", dest="compressed", action="store_false")
    parser.add_argument("--output", type=Path, default=RESULTS / "backend_tokens.json")
    args = parser.parse_args()

    import torch

    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    torch.set_num_threads(args.threads)
    utterances = eval_subset(args.eval, None)
    searches = {"greedy": SearchOptions(beam_size=1), f"beam {args.beam_size}": SearchOptions(beam_size=args.beam_size)}
    out = {"command": " ".join(sys.argv), "set": args.eval, "rows": []}
    for label, loaded in variants([args.model], args.compressed):
        features = np.stack([log_mel(load_audio(u.audio), loaded.model.config.num_mel_bins) for u in utterances])
        with tempfile.TemporaryDirectory() as folder:
            export_artifacts(loaded, folder)
            for name, search in searches.items():
                settings = TranscribeOptions(search=search)
                ids = {}
                for backend, transcriber in (("torch", TorchTranscriber(loaded, settings=settings)),
                                             ("onnx", OnnxTranscriber(folder, threads=args.threads, settings=settings))):
                    ids[backend] = [t for first in range(0, len(features), 8)
                                    for t in transcriber.transcribe_features(features[first:first + 8])]
                row = {"model": label, "decoding": name, **agreement(ids["torch"], ids["onnx"])}
                out["rows"].append(row)
                print(f"{label:16s} {name:8s} identical clips {row['identical_clips']}/{row['clips']} "
                      f"({row['identical_clip_pct']:.1f} %), identical tokens {row['identical_token_pct']:.2f} % "
                      f"of {row['tokens']}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
