#!/usr/bin/env python3
"""Size vs WER: the ``budget`` rank policy against the published ``liteasr`` rule.

    python bench/budget_vs_liteasr.py --model base [--device cuda]

``liteasr`` runs at several theta pairs; ``budget`` at the encoder sizes those
reach plus smaller ones. Both use the same calibration statistics (cached, see
compression_wer.py). Writes bench/results/budget_vs_liteasr.json and .png and
prints the table and the two goal checks: at the size ``liteasr`` reaches with
its defaults, ``budget`` has equal or lower WER; at equal WER, ``budget`` is at
least 5 points of encoder size smaller.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compression_wer import (  # noqa: E402
    DEFAULT_CACHE,
    RESULTS,
    calibration_stats,
    compressed_point,
    dense_point,
)

from liteasr_export.model.compression.compressor import compute_spectra  # noqa: E402
from liteasr_export.model.compression.rank_policies import BudgetPolicy, LiteASRPolicy, parse_theta  # noqa: E402
from liteasr_export.model.sources import load_model  # noqa: E402

DEFAULT_THETAS = ["0.9:0.99", "0.95:0.995", "0.98:0.998", "0.99:0.999", "0.995:0.9995"]
DEFAULT_THETA = "0.99:0.999"


def smallest_size_at_wer(points: list[dict], wer: float, eval_set: str) -> float | None:
    """Smallest encoder size among ``points`` whose WER is at most ``wer``."""
    sizes = [p["size_ratio"] for p in points if p["wer"][eval_set]["wer"] <= wer + 1e-9]
    return min(sizes) if sizes else None


def plot(result: dict, path: Path, eval_set: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for label, points, style in (
        ("liteasr (theta sweep)", result["liteasr"], "o-"),
        *((f"budget ({w})", pts, "s-") for w, pts in result["budget"].items()),
    ):
        pts = sorted(points, key=lambda p: p["size_ratio"])
        ax.plot([100 * p["size_ratio"] for p in pts], [p["wer"][eval_set]["wer"] for p in pts], style, label=label)
    ax.axhline(result["dense"]["wer"][eval_set]["wer"], color="gray", ls="--", label="dense")
    ax.set_xlabel("encoder parameters (% of dense)")
    ax.set_yscale("log")  # collapsed points (WER > 100 %) would flatten the rest
    ax.set_ylabel(f"WER on {eval_set} (%, log scale)")
    ax.set_title(f"whisper {result['model']}: rank policies")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", help="bundled name or model folder")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--calib", default="builtin")
    parser.add_argument("--calib-samples", type=int, default=None)
    parser.add_argument("--eval", default="builtin")
    parser.add_argument("--thetas", nargs="+", default=DEFAULT_THETAS)
    parser.add_argument("--targets", type=float, nargs="*", default=[],
                        help="more budget targets (fractions of the dense encoder)")
    parser.add_argument("--extra-targets", type=float, nargs="*", default=[-0.05, -0.10],
                        help="budget targets relative to the smallest liteasr size")
    parser.add_argument("--weights", nargs="+", default=["standardized"], choices=["standardized", "variance", "mixed"])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--output", type=Path, default=RESULTS / "budget_vs_liteasr.json")
    args = parser.parse_args()

    import torch

    torch.backends.cudnn.allow_tf32 = False  # full fp32 convolutions on GPUs too
    torch.backends.cuda.matmul.allow_tf32 = False
    loaded = load_model(args.model)
    stats = calibration_stats(loaded, args.calib, args.calib_samples, args.cache, args.device)
    spectra = compute_spectra(loaded.model, stats)
    evals = [args.eval]

    def show(label: str, point: dict) -> None:
        args.output.write_text(json.dumps(result, indent=2) + "\n")  # partial results survive a timeout
        print(f"{label:34s} size {100 * point['size_ratio']:6.2f} %  flops {100 * point['flops_ratio']:6.2f} %  "
              f"WER {point['wer'][args.eval]['wer']:6.2f} %", flush=True)

    args.output.parent.mkdir(parents=True, exist_ok=True)
    result = {"model": loaded.name, "device": args.device, "calib": args.calib, "calib_windows": stats.n_windows,
              "eval": args.eval}
    result["dense"] = dense_point(loaded, evals, args.device)
    show("dense", result["dense"])
    result["liteasr"] = []
    for theta in args.thetas:
        point = compressed_point(loaded, stats, LiteASRPolicy(*parse_theta(theta)), evals, args.device, spectra)
        result["liteasr"].append(point)
        show(f"liteasr {theta}", point)
    sizes = sorted({round(p["size_ratio"], 3) for p in result["liteasr"]})
    extra = {round(sizes[0] + d, 3) for d in args.extra_targets if sizes[0] + d > 0.3}
    targets = sorted(set(sizes) | extra | set(args.targets), reverse=True)
    result["budget"] = {}
    for weights in args.weights:
        result["budget"][weights] = []
        for target in targets:
            policy = BudgetPolicy(target, weights=weights)
            point = compressed_point(loaded, stats, policy, evals, args.device, spectra)
            result["budget"][weights].append(point)
            show(f"budget {weights} {target:.3f}", point)

    # the goals
    default = next(p for p in result["liteasr"] if p["policy"]["theta_attn"] == parse_theta(DEFAULT_THETA)[0]
                   and p["policy"]["theta_mlp"] == parse_theta(DEFAULT_THETA)[1])
    checks = {}
    for weights, points in result["budget"].items():
        at_size = min(points, key=lambda p: abs(p["size_ratio"] - default["size_ratio"]))
        equal_wer = []
        for lite in result["liteasr"]:
            size = smallest_size_at_wer(points, lite["wer"][args.eval]["wer"], args.eval)
            equal_wer.append({"liteasr_size": lite["size_ratio"], "liteasr_wer": lite["wer"][args.eval]["wer"],
                              "budget_size_at_that_wer": size,
                              "points_smaller": None if size is None else round(100 * (lite["size_ratio"] - size), 2)})
        checks[weights] = {
            "liteasr_default": {"size": default["size_ratio"], "wer": default["wer"][args.eval]["wer"]},
            "budget_at_that_size": {"size": at_size["size_ratio"], "wer": at_size["wer"][args.eval]["wer"]},
            "budget_not_worse_at_default_size": at_size["wer"][args.eval]["wer"] <= default["wer"][args.eval]["wer"],
            "equal_wer": equal_wer,
        }
        print(f"\n[{weights}] at liteasr's default size {100 * default['size_ratio']:.1f} %: liteasr WER "
              f"{default['wer'][args.eval]['wer']:.2f} %, budget WER {at_size['wer'][args.eval]['wer']:.2f} % "
              f"(size {100 * at_size['size_ratio']:.1f} %)")
        for row in equal_wer:
            print(f"  liteasr {100 * row['liteasr_size']:.1f} % at WER {row['liteasr_wer']:.2f} %: budget reaches "
                  f"that WER at {row['budget_size_at_that_wer'] and 100 * row['budget_size_at_that_wer']:.1f} % "
                  f"({row['points_smaller']} points smaller)" if row["budget_size_at_that_wer"] else
                  f"  liteasr {100 * row['liteasr_size']:.1f} % at WER {row['liteasr_wer']:.2f} %: no budget point as good")
    result["checks"] = checks
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    png = args.output.with_suffix(".png")
    plot(result, png, args.eval)
    print(f"wrote {args.output} and {png}")


if __name__ == "__main__":
    main()
