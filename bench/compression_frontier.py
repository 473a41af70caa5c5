#!/usr/bin/env python3
"""WER against encoder size: the published LiteASR rule beside this project's
default recipe, on speech the calibration never saw, dense alongside.

    python bench/compression_frontier.py --models tiny.en base
    python bench/compression_frontier.py --models tiny.en --calib builtin default --sets fotaq-eval

For each model and calibration source (``builtin``: generated voices only;
``real``: fotaq + asterisk; ``default``: the mix the export uses), statistics
are collected the way ``liteasr-export`` collects them (cached by content).
Then the published rule runs at several theta pairs and the default recipe
(budget policy, measured sensitivity, compensation, as configured in
``liteasr_export.app.export.pipeline.ExportOptions``) at several sizes, and every point
is transcribed with PyTorch on each evaluation set separately: ``builtin-eval``,
``asterisk-eval`` and a speaker-balanced draw of ``fotaq-eval`` (other
characters and conversations than ``fotaq-calib``), plus a long recording of
back-to-back evaluation clips
(fotaq, 5 minutes) and one of 10 minutes of built-in clips.

Prints one table per model and writes bench/results/compression_frontier_MODEL.json
and .png (WER increase against encoder size, per set).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.datasets import resolve_set  # noqa: E402
from calibration.mix import balanced_sample  # noqa: E402
from engines.validation.quality_gate import CheckSet, check_set, compare, long_recording  # noqa: E402
from liteasr_export.app.export.compression_stage import build, calibrate, select_spectra  # noqa: E402
from liteasr_export.core.errors import RankError  # noqa: E402
from liteasr_export.app.export.pipeline import ExportOptions  # noqa: E402
from liteasr_export.model.compression.rank_policies import LiteASRPolicy, make_policy, parse_theta  # noqa: E402
from liteasr_export.model.sources import load_model  # noqa: E402
from liteasr_export.core.decoding import SearchOptions  # noqa: E402
from liteasr_export.app.export.quality_stage import GATE_DECODING  # noqa: E402
from liteasr_export.model.torch_transcriber import TorchTranscriber  # noqa: E402
from liteasr_export.core.windowed import PLAIN_GREEDY, TranscribeOptions  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CALIBRATIONS = {"builtin": "builtin", "real": "fotaq,asterisk", "default": "default"}
THETAS = ["0.95:0.995", "0.98:0.998", "0.99:0.999", "0.995:0.9995", "0.998:0.9998"]
SIZES = [0.7, 0.8, 0.85, 0.9, 0.95]
#: ``gate``: the quality gate's decoding (greedy, full temperature fallback);
#: ``short``: greedy with a shorter fallback (0, 0.5, 1.0, best of 2), which
#: stops loops as well but bounds the time spent on collapsed points, where
#: nearly every window falls back (the full fallback decodes those 26 times);
#: ``none``: one greedy pass.
DECODINGS = {"gate": GATE_DECODING,
             "short": TranscribeOptions(search=SearchOptions(beam_size=1, temperatures=(0.0, 0.5, 1.0), best_of=2)),
             "none": PLAIN_GREEDY}


def check_sets(names: list[str], clips: int, long_minutes: float) -> list[CheckSet]:
    checks = []
    for name in names:
        if name == "long":
            checks.append(long_recording(balanced_sample(resolve_set("fotaq", "eval"), None, seed=7), long_minutes,
                                         name="long-fotaq"))
        elif name == "long-builtin":  # the check: 10 minutes of built-in clips back to back
            checks.append(long_recording(resolve_set("builtin", "eval"), 10.0, name="long-builtin"))
        else:
            checks.append(check_set(name, balanced_sample(resolve_set(name, "eval"), clips, seed=5)))
    return checks


def point(model_loaded, report, checks, dense_texts, label: str, decoding: TranscribeOptions) -> dict:
    start = time.perf_counter()
    transcriber = TorchTranscriber(model_loaded, settings=decoding)
    sets = {}
    for check, dense in zip(checks, dense_texts):
        result = compare(check, dense, {"torch": transcriber.transcribe_many(check.audio)}, {})
        sets[check.name] = {"dense_wer": result.dense_wer, "wer": result.wer.get("torch"),
                            "increase": result.increase.get("torch"), "agreement": result.agreement["torch"]}
    row = {"label": label, "size_ratio": round(report.size_ratio, 4), "policy": report.policy,
           "recovery": dict(report.recovery),
           "sets": sets, "seconds": round(time.perf_counter() - start, 1)}
    print(f"  {label:<28} size {100 * report.size_ratio:5.1f}%  " + "  ".join(
        f"{k} {v['wer']:.2f} ({v['increase']:+.2f})" for k, v in sets.items()), flush=True)
    return row


def frontier(model: str, calib_names: list[str], set_names: list[str], clips: int, long_minutes: float,
             thetas: list[str], sizes: list[float], cache: Path, decoding: TranscribeOptions,
             save: Callable[[dict], None]) -> dict:
    """Every point for ``model``; ``save`` is called with the results so far after each point."""
    loaded = load_model(model)
    checks = check_sets(set_names, clips, long_minutes)
    dense_texts = [TorchTranscriber(loaded, settings=decoding).transcribe_many(c.audio) for c in checks]
    dense = {c.name: compare(c, d, {}, {}).dense_wer for c, d in zip(checks, dense_texts)}
    print(f"{model}: dense " + "  ".join(f"{k} {v:.2f}" for k, v in dense.items()), flush=True)
    out = {"model": model, "sets": {c.name: {"clips": len(c.ids), "minutes": round(c.seconds / 60, 2)} for c in checks},
           "dense": dense, "calibrations": {}}
    for calib_name in calib_names:
        opts = ExportOptions(output=Path("/dev/null"), model=model, calib=CALIBRATIONS[calib_name], cache_dir=cache,
                             progress=False)
        stats, note = calibrate(loaded, opts, progress_note=lambda _: None)
        print(f" calibration {calib_name} ({opts.calib}): {note}", flush=True)
        points = {"liteasr": [], "default": []}
        out["calibrations"][calib_name] = {"spec": opts.calib, "statistics": note, "windows": stats.n_windows,
                                           "contents": stats.extra.get("mix"), "points": points}
        spectra = select_spectra(loaded, stats, make_policy("budget", target_size=0.9), opts)
        for size in sizes:
            try:
                compressed, report = build(loaded, stats, make_policy("budget", target_size=size), spectra, opts,
                                           lambda _: None)
            except RankError as exc:
                print(f"  size {size}: {exc}")
                continue
            points["default"].append(point(compressed, report, checks, dense_texts, f"default {size}", decoding))
            save(out)
        for theta in thetas:
            policy = LiteASRPolicy(*parse_theta(theta))
            plain = dataclasses.replace(opts, shrinkage=0.0, probe_windows=0, compensate=0, refine=0)
            compressed, report = build(loaded, stats, policy, select_spectra(loaded, stats, policy, plain), plain,
                                       lambda _: None)
            points["liteasr"].append(point(compressed, report, checks, dense_texts, f"liteasr {theta}", decoding))
            save(out)
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(result["sets"])
    fig, axes = plt.subplots(1, len(sets), figsize=(4.2 * len(sets), 3.8), squeeze=False)
    styles = {"liteasr": "o--", "default": "s-"}
    for ax, name in zip(axes[0], sets):
        for calib, entry in result["calibrations"].items():
            for policy, points in entry["points"].items():
                pts = sorted(points, key=lambda p: p["size_ratio"])
                ax.plot([100 * p["size_ratio"] for p in pts], [p["sets"][name]["wer"] for p in pts], styles[policy],
                        label=f"{'published rule' if policy == 'liteasr' else 'default recipe'}, calib {calib}")
        ax.axhline(result["dense"][name], color="gray", ls=":", label="dense")
        ax.set_title(f"{result['model']}: {name}")
        ax.set_xlabel("encoder parameters (% of dense)")
        ax.set_ylabel("WER %")
        ax.set_yscale("log")  # collapsed points (WER > 100 %) would flatten the rest
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--calib", nargs="+", choices=list(CALIBRATIONS), default=list(CALIBRATIONS))
    parser.add_argument("--sets", nargs="+", default=["builtin-eval", "asterisk-eval", "fotaq-eval", "long", "long-builtin"])
    parser.add_argument("--clips", type=int, default=150, help="clips drawn per evaluation set (balanced per speaker)")
    parser.add_argument("--long-minutes", type=float, default=5.0)
    parser.add_argument("--thetas", nargs="+", default=THETAS)
    parser.add_argument("--sizes", nargs="+", type=float, default=SIZES)
    parser.add_argument("--decoding", choices=list(DECODINGS), default="short")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/liteasr-export-bench"))
    parser.add_argument("--output-dir", type=Path, default=RESULTS,
                        help="where compression_frontier_MODEL.json and .png go")
    args = parser.parse_args()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        path = args.output_dir / f"compression_frontier_{model}.json"

        def save(result: dict, finished: bool = False) -> None:
            path.write_text(json.dumps({"command": " ".join(sys.argv), "decoding": args.decoding, "finished": finished,
                                        "defaults": {k: getattr(ExportOptions, k) for k in (
                                            "policy", "target_size", "shrinkage", "probe_windows", "compensate",
                                            "refine")}, "result": result}, indent=1) + "\n")

        result = frontier(model, args.calib, args.sets, args.clips, args.long_minutes, args.thetas, args.sizes,
                          args.cache, DECODINGS[args.decoding], save)
        save(result, finished=True)
        plot(result, path.with_suffix(".png"))
        print(f"wrote {path} and {path.with_suffix('.png').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
