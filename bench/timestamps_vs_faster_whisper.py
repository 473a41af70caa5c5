#!/usr/bin/env python3
"""Segment timestamps against faster-whisper's on the same weights.

    python bench/timestamps_vs_faster_whisper.py --model tiny.en --recordings 20

Each recording joins three consecutive built-in evaluation clips (three
voices) with a second of silence between them, so that it has several
segments. Both sides decode with beam 5, the temperature fallback and
timestamps, without conditioning on previous text or VAD. For every segment
boundary (start or end) of ours, the distance to the nearest boundary of
faster-whisper's on the same recording; the median and the 90th percentile
over all boundaries are reported, and the same the other way round. Writes
bench/results/timestamps_vs_faster_whisper.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.decoding_common import RESULTS, ct2_folder, eval_subset  # noqa: E402
from liteasr_export.core.frontend import SAMPLE_RATE, load_audio  # noqa: E402
from liteasr_export.core.windowed import TranscribeOptions  # noqa: E402

GAP_SECONDS = 1.0
CLIPS_PER_RECORDING = 3


def recordings(n: int) -> list[np.ndarray]:
    clips = [load_audio(u.audio) for u in eval_subset("builtin", None)]
    gap = np.zeros(int(GAP_SECONDS * SAMPLE_RATE), np.float32)
    out = []
    for i in range(n):
        parts = [clips[(i + k) % len(clips)] for k in range(CLIPS_PER_RECORDING)]
        out.append(np.concatenate([x for p in parts for x in (p, gap)][:-1]))
    return out


def boundaries(segments: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray([t for s in segments for t in s], dtype=float)


def nearest(a: np.ndarray, b: np.ndarray) -> list[float]:
    """For each boundary in ``a``, the distance to the nearest in ``b``."""
    return [float(np.min(np.abs(b - x))) if b.size else float("inf") for x in a]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS / "timestamps_vs_faster_whisper.json")
    args = parser.parse_args()

    import torch
    from faster_whisper import WhisperModel

    from liteasr_export.model.sources import load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    torch.set_num_threads(args.threads)
    audio = recordings(args.recordings)
    ours = TorchTranscriber(load_model(args.model), settings=TranscribeOptions(timestamps=True))
    mine = [[(s.start, s.end) for s in t.segments] for t in ours.transcribe_detailed(audio)]
    with tempfile.TemporaryDirectory() as folder:
        model = WhisperModel(str(ct2_folder(args.model, Path(folder))), device="cpu", compute_type="float32",
                             cpu_threads=args.threads)
        theirs = []
        for a in audio:
            segments, _ = model.transcribe(a, language="en", beam_size=5, best_of=5, without_timestamps=False,
                                           condition_on_previous_text=False, vad_filter=False, word_timestamps=False)
            theirs.append([(s.start, s.end) for s in segments])
    ours_to_theirs = [d for m, t in zip(mine, theirs) for d in nearest(boundaries(m), boundaries(t))]
    theirs_to_ours = [d for m, t in zip(mine, theirs) for d in nearest(boundaries(t), boundaries(m))]
    out = {
        "command": " ".join(sys.argv), "model": args.model, "recordings": len(audio),
        "audio_seconds": round(sum(a.size for a in audio) / SAMPLE_RATE, 1),
        "segments": {"ours": sum(map(len, mine)), "faster_whisper": sum(map(len, theirs)),
                     "recordings_with_equal_count": sum(len(m) == len(t) for m, t in zip(mine, theirs))},
        "ours_to_faster_whisper_s": {"median": round(float(np.median(ours_to_theirs)), 3),
                                     "p90": round(float(np.percentile(ours_to_theirs, 90)), 3),
                                     "within_0.5s_pct": round(100 * float(np.mean(np.asarray(ours_to_theirs) <= 0.5)), 1)},
        "faster_whisper_to_ours_s": {"median": round(float(np.median(theirs_to_ours)), 3),
                                     "p90": round(float(np.percentile(theirs_to_ours, 90)), 3)},
        "per_recording": [{"ours": m, "faster_whisper": t} for m, t in zip(mine, theirs)],
    }
    print(f"{out['recordings']} recordings ({out['audio_seconds']} s): segments ours {out['segments']['ours']}, "
          f"faster-whisper {out['segments']['faster_whisper']} (equal count on "
          f"{out['segments']['recordings_with_equal_count']}); boundary distance ours->fw median "
          f"{out['ours_to_faster_whisper_s']['median']:.3f} s, p90 {out['ours_to_faster_whisper_s']['p90']:.3f} s; "
          f"fw->ours median {out['faster_whisper_to_ours_s']['median']:.3f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
