"""Encoder latency on ONNX Runtime CPU (batch 1, one 30 s window): dense vs
low-rank, fused vs unfused (reduced) attention, int8 + low-rank vs dense fp32.

    python bench/encoder_latency.py                       # tiny.en, base
    python bench/encoder_latency.py --models large-v3     # random weights, stand-in profile
    -> bench/results/encoder_latency.json (entries of other models are kept)

Low-rank profiles are STAND-INS (liteasr_export/model/standin.py): tiny.en and base
get the published LiteASR mean ranks scaled to lite-whisper-large-v3's
encoder-size ratio (377M / 635M) and are factorized by truncated SVD;
large-v3 (random weights) keeps the published layers of lite-whisper-large-v3
and scales the rest to its 377M-parameter encoder. Latency depends on the
ranks, not on the weight values. Ratios come from one run of this script.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
N_FRAMES = 1500


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_sessions(paths: dict[str, Path], feeds: dict, threads: int, runs: int) -> dict[str, dict]:
    """Median and min of ``runs`` timed runs per graph after one warm-up run.

    Runs are interleaved (one run of every graph per round), so load from other
    processes on a shared machine hits every graph alike and ratios stay fair."""
    sessions, load_s = {}, {}
    for name, path in paths.items():
        start = time.perf_counter()
        sessions[name] = _session(path, threads)
        load_s[name] = time.perf_counter() - start
        sessions[name].run(None, feeds)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feeds)
            times[name].append((time.perf_counter() - start) * 1000)
    sessions.clear()
    gc.collect()
    return {name: {"median_ms": round(statistics.median(t), 2), "min_ms": round(min(t), 2), "runs": runs,
                   "session_load_s": round(load_s[name], 2)} for name, t in times.items()}


def _file_mb(path: Path) -> float:
    data = path.with_name(path.name + ".data")
    return round((path.stat().st_size + (data.stat().st_size if data.exists() else 0)) / 1e6, 1)


def load_pair(name: str):
    """(dense model, low-rank model, profile info) for a bench model name."""
    import copy

    from liteasr_export.model import standin

    if name == "large-v3":
        config = standin.large_v3_config()
        profile, info = standin.large_v3_standin_profile(config)
        dense = standin.random_whisper(config)
        # one copy at a time: the large model is 6 GB; the low-rank one is made from it in place later
        return dense, None, profile, info
    from liteasr_export.model.sources import load_model

    dense = load_model(name).model
    ratio = standin.LITE_WHISPER_LARGE_V3_ENCODER_PARAMS / 635_000_000
    target = round(standin.encoder_parameters(dense.config) * ratio)
    published = standin.load_published_profile("lite-whisper-base")
    profile, info = standin.standin_rank_profile(dense.config, published, target, keep_published=(name == "base"))
    info["target_ratio"] = "lite-whisper-large-v3 encoder 377M / 635M"
    low = standin.apply_low_rank(copy.deepcopy(dense), profile, method="svd")
    return dense, low, profile, info


def export_variants(name: str, workdir: Path, fused_ops: list[str], full: bool) -> tuple[dict, dict]:
    """Export the graphs to time; returns {variant: path} and model facts."""
    from exporters.encoder import export_encoder
    from exporters.precision import quantize_int8
    from liteasr_export.model import standin

    dense, low, profile, info = load_pair(name)
    config = dense.config
    facts = {"profile": info, "low_rank_config": profile, "d_model": config.d_model,
             "encoder_layers": config.encoder_layers, "heads": config.encoder_attention_heads,
             "dense_encoder_params": standin.encoder_parameters(config),
             "low_rank_encoder_params": standin.encoder_parameters(config, profile)}
    paths: dict[str, Path] = {}
    timings: dict[str, float] = {}

    def export(variant: str, model, **kwargs) -> None:
        start = time.perf_counter()
        exported = export_encoder(model, workdir / f"{name}.{variant}.onnx", **kwargs)
        timings[variant] = round(time.perf_counter() - start, 1)
        paths[variant] = Path(exported.path)
        facts.setdefault("reduced_layers", {})[variant] = exported.reduced_layers
        facts.setdefault("notes", {})[variant] = exported.notes

    main_op = fused_ops[0]
    export(f"dense.fused-{main_op}", dense, attention="fused", fused_op=main_op)
    if full:
        for op in fused_ops[1:]:
            export(f"dense.fused-{op}", dense, attention="fused", fused_op=op)
        export("dense.unfused", dense, attention="unfused")
    if low is None:  # large-v3: replace the dense linears by random factors in place
        facts["dense_export_peak_rss_gb"] = round(_peak_rss_gb(), 2)
        low = standin.apply_low_rank(dense, profile, method="random")
        dense = None
        gc.collect()
    export(f"lowrank.fused-{main_op}", low, attention="fused", fused_op=main_op)
    if full:
        for op in fused_ops[1:]:
            export(f"lowrank.fused-{op}", low, attention="fused", fused_op=op)
        export("lowrank.unfused", low, attention="unfused")
        export(f"lowrank.no-reduced.fused-{main_op}", low, attention="fused", fused_op=main_op, reduced_attention=False)
    facts["export_peak_rss_gb"] = round(_peak_rss_gb(), 2)
    del low, dense
    gc.collect()
    for source in [f"lowrank.fused-{main_op}"] + ([f"dense.fused-{main_op}"] if full else []):
        variant = source.replace("fused", "int8.fused")
        start = time.perf_counter()
        paths[variant] = workdir / f"{name}.{variant}.onnx"
        quantize_int8(paths[source], paths[variant], per_channel=True)
        timings[variant] = round(time.perf_counter() - start, 1)
    facts["export_seconds"] = timings
    facts["file_mb"] = {v: _file_mb(p) for v, p in paths.items()}
    return paths, facts


def attention_microbench(shapes: set[tuple[int, int, int]], fused_ops: list[str], threads: int, runs: int,
                         workdir: Path) -> list[dict]:
    """One attention over 1500 frames: reduced (H heads of width r_k against one
    key head r_k, one value head r_v) fused by each operator and unfused, and the
    standard 64-wide heads for comparison."""
    from exporters.encoder import attention_graph, fused_op_problem
    from exporters.precision import save_onnx

    rng = np.random.default_rng(0)
    rows = []
    for heads, r_k, r_v in sorted(shapes):
        row = {"heads": heads, "key_rank": r_k, "value_rank": r_v}
        for kind, kv, qk, v in (("reduced", 1, r_k, r_v), ("standard", heads, 64, 64)):
            feeds = {"q": rng.standard_normal((1, N_FRAMES, heads * qk), dtype=np.float32) * 0.2,
                     "k": rng.standard_normal((1, N_FRAMES, kv * qk), dtype=np.float32) * 0.2,
                     "v": rng.standard_normal((1, N_FRAMES, kv * v), dtype=np.float32)}
            outputs, paths = {}, {}
            for op in [*fused_ops, None]:
                if op and fused_op_problem(op, 23):
                    continue
                paths[op] = workdir / f"attention.{kind}.{op or 'unfused'}.onnx"
                save_onnx(attention_graph(heads, kv, qk, v, op), paths[op])
                outputs[op] = _session(paths[op], threads).run(None, feeds)[0]
            timed = time_sessions({f"{kind}.{op or 'unfused'}": p for op, p in paths.items()}, feeds, threads, runs)
            row.update({label: t["median_ms"] for label, t in timed.items()})
            row[f"{kind}.fused_vs_unfused_max_diff"] = max(
                float(np.abs(o - outputs[None]).max()) for op, o in outputs.items() if op)
        rows.append(row)
    return rows


def ratio(times: dict, slow: str, fast: str, stat: str = "median_ms") -> float | None:
    if slow in times and fast in times:
        return round(times[slow][stat] / times[fast][stat], 3)
    return None


def main(argv: list[str] | None = None) -> int:
    from exporters.encoder import FUSED_OPS, fused_op_problem

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per graph (default 7, 4 for large-v3)")
    parser.add_argument("--workdir", type=Path, default=RESULTS / "encoder_latency_onnx")
    parser.add_argument("--keep-onnx", action="store_true", help="keep the exported graphs in --workdir")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    out_path = RESULTS / "encoder_latency.json"
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    fused_ops = [op for op in FUSED_OPS if fused_op_problem(op, 23) is None]
    import onnxruntime

    results["machine"] = {"cpus": os.cpu_count(), "threads": args.threads, "onnxruntime": onnxruntime.__version__,
                          "processor": platform.processor() or platform.machine()}
    results.setdefault("models", {})
    main_op = fused_ops[0]
    for name in args.models:
        large = name == "large-v3"
        runs = args.runs or (4 if large else 7)
        print(f"== {name}: exporting", flush=True)
        paths, facts = export_variants(name, args.workdir, fused_ops, full=not large)
        n_mels = 128 if large else 80
        feeds = {"input_features": np.random.default_rng(0).standard_normal((1, n_mels, 3000), dtype=np.float32)}
        print(f"== {name}: timing {len(paths)} graphs, {runs} interleaved rounds", flush=True)
        times = time_sessions(paths, feeds, args.threads, runs)
        for variant, t in times.items():
            print(f"   {variant:45s} {t['median_ms']:10.1f} ms (min {t['min_ms']:.1f})", flush=True)
        reduced = facts["reduced_layers"][f"lowrank.fused-{main_op}"]
        shapes = {(facts["heads"], facts["low_rank_config"][i]["k_proj"], facts["low_rank_config"][i]["v_proj"])
                  for i in reduced}
        entry = {
            "label": "large-v3 shapes, random weights, STAND-IN rank profile" if large
            else f"{name} real weights, STAND-IN rank profile (truncated SVD)",
            **facts,
            "latency": times,
            # min: noise from other processes only ever adds time; median: the typical run
            **{key: {
                "lowrank_vs_dense": ratio(times, f"dense.fused-{main_op}", f"lowrank.fused-{main_op}", stat),
                "int8_lowrank_vs_dense_fp32": ratio(times, f"dense.fused-{main_op}", f"lowrank.int8.fused-{main_op}",
                                                    stat),
                "lowrank_fused_vs_unfused": ratio(times, "lowrank.unfused", f"lowrank.fused-{main_op}", stat),
                "lowrank_reduced_vs_standard_attention": ratio(
                    times, f"lowrank.no-reduced.fused-{main_op}", f"lowrank.fused-{main_op}", stat),
                **{f"dense_{op}_vs_unfused": ratio(times, "dense.unfused", f"dense.fused-{op}", stat)
                   for op in fused_ops},
            } for key, stat in (("ratios", "median_ms"), ("ratios_min", "min_ms"))},
            "reduced_attention_layers": reduced,
            "attention_microbench_ms": attention_microbench(shapes, fused_ops, args.threads, 5, args.workdir),
        }
        results["models"][name] = entry
        print(json.dumps({"median": entry["ratios"], "min": entry["ratios_min"]}, indent=1), flush=True)
        RESULTS.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(results, indent=1) + "\n")
        if not args.keep_onnx:
            for path in args.workdir.glob(f"{name}.*"):
                path.unlink()
    if not args.keep_onnx:
        for path in args.workdir.glob("attention.*"):
            path.unlink()
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
