"""CTest: liteasr_cpp's JSON and SRT output, and its --no-timestamps texts,
against the Python ONNX Runtime path (the files make_expected.py wrote).

    python compare_outputs.py --program liteasr_cpp --artifacts DIR --data DATA
                              [--audio-context auto --expected auto]

Texts must be identical; segment and window times within a millisecond, and
each window's audio context and full-context retry the same; the SRT of the
long clip is read back with the ``srt`` package from PyPI. ``--audio-context``
is passed on to the program; ``--expected TAG`` compares with
``expected_TAG.json`` and ``expected_cut_TAG.txt`` instead.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def run(program: str, *args: str) -> str:
    result = subprocess.run([program, *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{program} {' '.join(args[:3])} ... exited with {result.returncode}: {result.stderr}")
    return result.stdout


def close(a: list[tuple], b: list[tuple]) -> bool:
    """Equal lists of tuples whose float fields differ by at most 1 ms."""
    return len(a) == len(b) and all(
        len(x) == len(y) and all(abs(p - q) <= 1e-3 if isinstance(p, float) else p == q for p, q in zip(x, y))
        for x, y in zip(a, b))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--program", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--audio-context", help="passed on to the program")
    parser.add_argument("--expected", help="compare with expected_TAG.json and expected_cut_TAG.txt")
    args = parser.parse_args()
    clips = args.data.joinpath("clips.txt").read_text().split()
    suffix = f"_{args.expected}" if args.expected else ""
    expected = json.loads(args.data.joinpath(f"expected{suffix}.json").read_text())
    expected_cut = args.data.joinpath(f"expected_cut{suffix}.txt").read_text()
    flags = ["--audio-context", args.audio_context] if args.audio_context else []
    got = json.loads(run(args.program, *flags, "--format", "json", args.artifacts, *clips))
    problems = []
    for want, have in zip(expected, got, strict=True):
        name = Path(want["audio"]).name
        if have["text"] != want["text"]:
            problems.append(f"{name}: text\n  python: {want['text']}\n  c++:    {have['text']}")
        seg = lambda t: [(float(s["start"]), float(s["end"]), s["text"]) for s in t["segments"]]  # noqa: E731
        if not close(seg(have), seg(want)):
            problems.append(f"{name}: segments\n  python: {seg(want)}\n  c++:    {seg(have)}")
        win = lambda t: [(float(w["start"]), float(w["end"]), w["outcome"],  # noqa: E731
                          tuple(round(x, 3) for x in w["temperatures_tried"]), w["audio_context"],
                          w["full_context_retry"])
                         for w in t["windows"]]
        if not close(win(have), win(want)):
            problems.append(f"{name}: windows\n  python: {win(want)}\n  c++:    {win(have)}")
    import srt

    long = next(i for i, c in enumerate(clips) if c.endswith("long.wav"))
    cues = list(srt.parse(run(args.program, *flags, "--format", "srt", args.artifacts, clips[long])))
    segments = [s for s in expected[long]["segments"] if s["text"].strip()]
    if not close([(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in cues],
                 [(float(s["start"]), float(s["end"]), " ".join(s["text"].split())) for s in segments]):
        problems.append(f"long.wav: SRT cues differ from the Python segments:\n  {cues}\n  {segments}")
    cut = run(args.program, *flags, "--no-timestamps", args.artifacts, *clips)
    if cut != expected_cut:
        problems.append(f"--no-timestamps texts differ:\n--- python\n{expected_cut}--- c++\n{cut}")
    for p in problems:
        print(p, file=sys.stderr)
    context = f" (--audio-context {args.audio_context})" if args.audio_context else ""
    print(f"{len(clips)} clips{context}: JSON, SRT ({len(cues)} cues) and --no-timestamps "
          f"{'match' if not problems else 'DIFFER from'} the Python ONNX Runtime path")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
