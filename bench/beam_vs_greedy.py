#!/usr/bin/env python3
"""WER of beam search (beam 5) against greedy decoding, both with the
temperature fallback and timestamps (what liteasr-transcribe does by
default), on the generated, one-speaker and many-speaker sets, for dense
and compressed models.

    python bench/beam_vs_greedy.py --models tiny.en base --sets builtin asterisk fotaq --limit 100

ONNX Runtime backend by default (each model exported once to a temporary
folder; bench/backend_tokens.py shows it decodes token for token as
PyTorch does), ``--backend torch`` for PyTorch; windows batched 8 at a time.
Writes bench/results/beam_vs_greedy.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS, SETS, available_sets, transcribe_set, variants  # noqa: E402
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber  # noqa: E402
from exporters.artifacts import export_artifacts  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.core.frontend import load_audio  # noqa: E402
from liteasr_export.model.torch_transcriber import TorchTranscriber  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--limit", type=int, default=100, help="clips per set at most (speaker-balanced)")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compressed", dest="compressed", action="store_false")
    parser.add_argument("--backend", choices=("onnx", "torch"), default="onnx")
    parser.add_argument("--output", type=Path, default=RESULTS / "beam_vs_greedy.json")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    sets = available_sets(args.sets, args.limit)
    audio = {name: [load_audio(u.audio) for u in utts] for name, utts in sets.items()}
    searches = {"greedy": SearchOptions(beam_size=1), f"beam {args.beam_size}": SearchOptions(beam_size=args.beam_size)}
    out = {"command": " ".join(sys.argv), "threads": args.threads, "limit": args.limit, "backend": args.backend,
           "sets": {k: len(v) for k, v in sets.items()}, "rows": []}
    for label, loaded in variants(args.models, args.compressed):
        folder = tempfile.TemporaryDirectory()
        if args.backend == "onnx":
            export_artifacts(loaded, folder.name)
        for set_name, utterances in sets.items():
            row = {"model": label, "set": set_name}
            for search_name, search in searches.items():
                settings = TranscribeOptions(search=search)
                transcriber = (OnnxTranscriber(folder.name, threads=args.threads, batch_size=8, settings=settings)
                               if args.backend == "onnx" else TorchTranscriber(loaded, batch_size=8, settings=settings))
                result = transcribe_set(transcriber, utterances, audio[set_name])
                row[search_name] = {k: v for k, v in result.items() if k != "texts"}
            greedy, beam = row["greedy"], row[f"beam {args.beam_size}"]
            row["beam_not_worse"] = beam["wer"] <= greedy["wer"]
            out["rows"].append(row)
            print(f"{label:16s} {set_name:9s} ({greedy['n']:3d} clips, {greedy['words']:5d} words)  "
                  f"greedy {greedy['wer']:6.2f}% ({greedy['seconds']:6.1f} s)  beam {beam['wer']:6.2f}% "
                  f"({beam['seconds']:6.1f} s)  {'ok' if row['beam_not_worse'] else 'BEAM WORSE'}", flush=True)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(json.dumps(out, indent=2) + "\n")  # after each row: partial results survive
        folder.cleanup()
    out["finished"] = time.strftime("%Y-%m-%d %H:%M")
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
