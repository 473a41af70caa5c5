#!/usr/bin/env python3
"""Narrow calibration against the quality gate: an export calibrated on one
kind of speech only (``asterisk``: one real speaker; ``builtin``: generated
voices) must either hold on the held-out check sets or be refused.

    python bench/narrow_calibration_gate.py --models tiny.en base --calib asterisk builtin default

Runs the real export (``liteasr-export`` with default options apart from
``--calib``) into a scratch folder for each model and calibration, and
records the exit code (0 written, 6 refused by the gate), the encoder size
and the gate's table. Writes bench/results/narrow_calibration_gate.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from liteasr_export.core.errors import QualityGateError  # noqa: E402
from liteasr_export.app.export.pipeline import ExportOptions, run_export  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def one(model: str, calib: str, scratch: Path, cache: Path | None) -> dict:
    out = scratch / f"{model}-{calib.replace(',', '+')}"
    opts = ExportOptions(output=out, model=model, calib=calib, force=True, cache_dir=cache, progress=False)
    start = time.perf_counter()
    row: dict = {"model": model, "calib": calib}
    try:
        result = run_export(opts)
    except QualityGateError as exc:
        row.update(exit_code=exc.exit_code, written=out.exists(), refused=str(exc), gate=exc.gate)
    else:
        summary = result.summary
        row.update(exit_code=0, written=True, size_ratio=summary["compression"]["size_ratio"],
                   gate=summary["validation"]["quality"], timings_s=summary["timings_s"])
    row["seconds"] = round(time.perf_counter() - start, 1)
    verdict = "written, gate passed" if row["exit_code"] == 0 else f"refused (exit {row['exit_code']})"
    print(f"{model:8} calib {calib:10} {verdict} in {row['seconds']:.0f} s", flush=True)
    if row["exit_code"]:
        print(f"    {row['refused']}")
    for s in (row.get("gate") or {}).get("sets", []):
        for backend, agreement in s["agreement"].items():
            wer = (f"WER {s['dense_wer']:.2f} -> {s['wer'][backend]:.2f} ({s['increase'][backend]:+.2f}), "
                   if backend in s["increase"] else "")
            print(f"    {s['name']:14} {wer}disagreement {agreement:.2f} %")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--calib", nargs="+", default=["asterisk", "builtin", "default"])
    parser.add_argument("--cache-dir", type=Path, default=None, help="statistics and transcript cache")
    parser.add_argument("--output", type=Path, default=RESULTS / "narrow_calibration_gate.json")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="liteasr-gate-") as scratch:
        for model in args.models:
            for calib in args.calib:
                rows.append(one(model, calib, Path(scratch), args.cache_dir))
                args.output.write_text(json.dumps({"command": " ".join(sys.argv), "runs": rows}, indent=1) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
