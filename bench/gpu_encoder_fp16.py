"""PyTorch fp16 encoder on a CUDA GPU: dense against low-rank, for the
large-v3-shaped stand-in (random weights, rank profile matched to LiteASR's
published 377M encoder; see liteasr_export/model/standin.py), with reduced attention
through ``scaled_dot_product_attention`` in its multi-query form, and an fp16
overflow check (non-finite values, per-layer peaks against fp16's 65504, and
fp16 against fp32 on the same GPU).

    python bench/gpu_encoder_fp16.py [--out bench/results/gpu_encoder_fp16.json]

Random weights: the overflow figures say the graph runs in fp16 without
non-finite values at these shapes; trained weights have outlier channels that
random ones lack (see the fp16 islands of the ONNX export for those).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FP16_MAX = 65504.0


def build_encoder(config, low_rank: bool, reduced: bool, device: str):
    """A random-weight Whisper encoder, optionally low-rank (+ reduced attention)."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from exporters.reduced_attention import apply_reduced_attention
    from liteasr_export.model.standin import apply_low_rank, large_v3_standin_profile

    torch.manual_seed(0)
    with torch.device(device):
        encoder = WhisperEncoder(config).eval()
    info = {}
    if low_rank:
        profile, info = large_v3_standin_profile(config)

        class Holder(torch.nn.Module):  # apply_low_rank expects a model with .config and .model.encoder
            def __init__(self, enc):
                super().__init__()
                self.config = config
                self.model = torch.nn.Module()
                self.model.encoder = enc

        apply_low_rank(Holder(encoder), profile, method="random")
        encoder.to(device)
        if reduced:
            plans = apply_reduced_attention(encoder)
            info["reduced_attention_layers"] = [i for i, p in enumerate(plans) if p.kind == "reduced"]
    return encoder, info


def _timed(fn, warmup: int, iters: int) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return {"median_ms": statistics.median(times), "min_ms": min(times)}


def time_encoder(encoder, features: torch.Tensor, warmup: int = 5, iters: int = 30) -> dict:
    """Eager launches, and the same forward replayed as one CUDA graph (no
    per-kernel launch cost: two matmuls per low-rank linear double the launches)."""
    with torch.inference_mode():
        eager = _timed(lambda: encoder(features), warmup, iters)
        static = features.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                encoder(static)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            encoder(static)
        replay = _timed(graph.replay, warmup, iters)
    return {**eager, "cuda_graph_median_ms": replay["median_ms"], "cuda_graph_min_ms": replay["min_ms"]}


def overflow_check(encoder, features: torch.Tensor) -> dict:
    """Per-layer peak |activation| in fp16 and whether any value is non-finite."""
    peaks: dict[str, float] = {}
    nonfinite: list[str] = []

    def hook(name):
        def fn(_module, _inp, out):
            t = out[0] if isinstance(out, tuple) else out
            peaks[name] = max(peaks.get(name, 0.0), float(t.detach().abs().float().nan_to_num(posinf=1e30).max()))
            if not torch.isfinite(t).all():
                nonfinite.append(name)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in encoder.named_modules()
               if n and n.count(".") <= 3 and not n.endswith("dropout")]
    with torch.inference_mode():
        out = encoder(features).last_hidden_state
    for h in handles:
        h.remove()
    top = sorted(peaks.items(), key=lambda kv: -kv[1])[:5]
    return {"output_finite": bool(torch.isfinite(out).all()), "nonfinite_modules": nonfinite[:10],
            "peak_abs": max(peaks.values()), "headroom_vs_fp16_max": FP16_MAX / max(max(peaks.values()), 1e-9),
            "top_peaks": top}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/gpu_encoder_fp16.json")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--tiny", action="store_true", help="a small config, to try the script on CPU")
    args = parser.parse_args()
    from liteasr_export.model.standin import large_v3_config

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    config = large_v3_config(encoder_layers=6) if args.tiny else large_v3_config()
    config._attn_implementation = "sdpa"
    result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
              "model": "large-v3-shaped stand-in, random weights" + (" (tiny check)" if args.tiny else ""),
              "variants": {}}
    t0 = time.time()
    for name, low_rank, reduced in (("dense", False, False), ("low-rank", True, False),
                                    ("low-rank + reduced attention", True, True)):
        encoder, info = build_encoder(config, low_rank, reduced, device)
        params = sum(p.numel() for p in encoder.parameters())
        row = {"encoder_params": params, "profile": {k: v for k, v in info.items() if k != "base_ranks"}}
        reference = None
        for batch in args.batches:
            features = torch.randn(batch, config.num_mel_bins, 3000, device=device).clamp(-1.5, 1.5)
            if batch == args.batches[0]:
                with torch.inference_mode():
                    reference = encoder.float()(features).last_hidden_state
            enc16 = encoder.half()
            if device == "cuda":
                row[f"batch{batch}"] = time_encoder(enc16, features.half())
            if batch == args.batches[0]:
                row["overflow"] = overflow_check(enc16, features.half())
                with torch.inference_mode():
                    out16 = enc16(features.half()).last_hidden_state.float()
                row["fp16_vs_fp32_max_abs"] = float((out16 - reference).abs().max())
                row["fp16_vs_fp32_cosine"] = float(torch.nn.functional.cosine_similarity(
                    out16.flatten(), reference.flatten(), dim=0))
            encoder.float()
        result["variants"][name] = row
        del encoder
        if device == "cuda":
            torch.cuda.empty_cache()
        print(name, json.dumps(row)[:400], flush=True)
    dense = result["variants"]["dense"]
    for name, row in result["variants"].items():
        for batch in args.batches:
            key = f"batch{batch}"
            if key in row and key in dense:
                row[f"speedup_{key}"] = dense[key]["median_ms"] / row[key]["median_ms"]
                row[f"speedup_{key}_cuda_graph"] = dense[key]["cuda_graph_median_ms"] / row[key]["cuda_graph_median_ms"]
    result["seconds"] = time.time() - t0
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk.startswith(("speedup", "batch", "fp16", "encoder"))}
                      for k, v in result["variants"].items()}, indent=2))


if __name__ == "__main__":
    main()
