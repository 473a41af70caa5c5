"""CTest: liteasr_cpp's JSON and SRT output, and its --no-timestamps texts,
against the Python ONNX Runtime path (the files make_expected.py wrote).

    python compare_outputs.py --program liteasr_cpp --artifacts DIR --data DATA

Texts must be identical; segment and window times within a millisecond;
the SRT of the long clip is read back with the ``srt`` package from PyPI.
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
    args = parser.parse_args()
    clips = args.data.joinpath("clips.txt").read_text().split()
    expected = json.loads(args.data.joinpath("expected.json").read_text())
    got = json.loads(run(args.program, "--format", "json", args.artifacts, *clips))
    problems = []
    for want, have in zip(expected, got, strict=True):
        name = Path(want["audio"]).name
        if have["text"] != want["text"]:
            problems.append(f"{name}: text\n  python: {want['text']}\n  c++:    {have['text']}")
        seg = lambda t: [(float(s["start"]), float(s["end"]), s["text"]) for s in t["segments"]]  # noqa: E731
        if not close(seg(have), seg(want)):
            problems.append(f"{name}: segments\n  python: {seg(want)}\n  c++:    {seg(have)}")
        win = lambda t: [(float(w["start"]), float(w["end"]), w["outcome"],  # noqa: E731
                          tuple(round(x, 3) for x in w["temperatures_tried"]))
                         for w in t["windows"]]
        if not close(win(have), win(want)):
            problems.append(f"{name}: windows\n  python: {win(want)}\n  c++:    {win(have)}")
    import srt

    long = next(i for i, c in enumerate(clips) if c.endswith("long.wav"))
    cues = list(srt.parse(run(args.program, "--format", "srt", args.artifacts, clips[long])))
    segments = [s for s in expected[long]["segments"] if s["text"].strip()]
    if not close([(c.start.total_seconds(), c.end.total_seconds(), c.content) for c in cues],
                 [(float(s["start"]), float(s["end"]), " ".join(s["text"].split())) for s in segments]):
        problems.append(f"long.wav: SRT cues differ from the Python segments:\n  {cues}\n  {segments}")
    cut = run(args.program, "--no-timestamps", args.artifacts, *clips)
    if cut != args.data.joinpath("expected_cut.txt").read_text():
        problems.append(f"--no-timestamps texts differ:\n--- python\n{args.data.joinpath('expected_cut.txt').read_text()}"
                        f"--- c++\n{cut}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{len(clips)} clips: JSON, SRT ({len(cues)} cues) and --no-timestamps "
          f"{'match' if not problems else 'DIFFER from'} the Python ONNX Runtime path")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
