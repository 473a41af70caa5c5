#!/usr/bin/env python3
"""Encoder size and WER of LiteASR compression at the published default
(theta 0.99:0.999) beside the dense model, for bundled models.

    python bench/compression_wer.py --models tiny.en base --eval builtin [asterisk]

Calibration statistics are cached (``--cache``) so reruns and the other
compression benchmarks reuse them. Writes bench/results/compression_wer.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calibration.datasets import resolve_set  # noqa: E402
from calibration.statistics import ActivationStats, collect_statistics  # noqa: E402
from liteasr_export.model.compression.compressor import compress  # noqa: E402
from liteasr_export.core.evaluation import score  # noqa: E402
from liteasr_export.core.frontend import load_audio, log_mel, split_windows  # noqa: E402
from liteasr_export.model.compression.rank_policies import LiteASRPolicy, RankPolicy  # noqa: E402
from liteasr_export.model.sources import LoadedModel, load_model  # noqa: E402
from liteasr_export.model.torch_transcriber import TorchTranscriber  # noqa: E402
from liteasr_export.core.windowed import PLAIN_GREEDY  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_CACHE = Path("/tmp/liteasr-export-bench")


def calibration_stats(
    loaded: LoadedModel, calib: str = "builtin", samples: int | None = None, cache: Path = DEFAULT_CACHE,
    device: str = "cpu",
) -> ActivationStats:
    """Statistics of ``loaded`` on ``calib`` (first ``samples`` utterances), cached on disk."""
    path = cache / f"{loaded.name}-{calib}-{samples or 'all'}.safetensors"
    if path.is_file():
        stats = ActivationStats.load(path)
        stats.check_matches(loaded.model)
        return stats
    start = time.perf_counter()
    stats = collect_statistics(loaded.model, resolve_set(calib, "calib"), batch_size=4, max_samples=samples,
                               device=device, progress=False, source=calib)
    stats.extra["seconds"] = round(time.perf_counter() - start, 2)
    stats.save(path)
    return stats


def word_error_rate(loaded: LoadedModel, model, eval_set: str, batch_size: int = 16, device: str = "cpu") -> dict:
    """WER (percent) of ``model`` (dense or compressed twin of ``loaded.model``) on a set.

    Windows of several utterances are decoded together (greedy decoding is
    per row, so this equals one-by-one transcription, several times faster on CPU);
    utterances are sorted by length so that a batch's rows finish together.
    """
    transcriber = TorchTranscriber(dataclasses.replace(loaded, model=model), device=device, settings=PLAIN_GREEDY)
    utterances = [u for u in resolve_set(eval_set, "eval") if u.text is not None]
    audio = {u.audio: load_audio(u.audio) for u in utterances}
    order = sorted(range(len(utterances)), key=lambda i: audio[utterances[i].audio].size)
    windows = [(i, log_mel(w, model.config.num_mel_bins)) for i in order for w in split_windows(audio[utterances[i].audio])]
    tokens: dict[int, list[int]] = {i: [] for i in order}
    start = time.perf_counter()
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        for (i, _), ids in zip(chunk, transcriber.transcribe_features(np.stack([f for _, f in chunk]))):
            tokens[i].extend(ids)
    seconds = time.perf_counter() - start
    hypotheses = [loaded.tokenizer.decode(tokens[i]) for i in range(len(utterances))]
    result = score([u.audio for u in utterances], [u.text for u in utterances], hypotheses, seconds)
    return {"wer": round(result.wer, 3), "n": result.n, "words": result.words, "seconds": round(seconds, 1)}


def compressed_point(loaded: LoadedModel, stats: ActivationStats, policy: RankPolicy, eval_sets: list[str],
                     device: str = "cpu", spectra=None) -> dict:
    model, report = compress(loaded.model, stats, policy, name=loaded.name, spectra=spectra)
    return {
        "policy": policy.describe(),
        "encoder_params": report.encoder_params_after,
        "size_ratio": round(report.size_ratio, 4),
        "flops_ratio": round(report.flops_ratio, 4),
        "low_rank_config": report.low_rank_config,
        "wer": {name: word_error_rate(loaded, model, name, device=device) for name in eval_sets},
    }


def dense_point(loaded: LoadedModel, eval_sets: list[str], device: str = "cpu") -> dict:
    params = sum(p.numel() for p in loaded.model.model.encoder.parameters())
    return {"policy": {"policy": "dense"}, "encoder_params": params, "size_ratio": 1.0, "flops_ratio": 1.0,
            "wer": {name: word_error_rate(loaded, loaded.model, name, device=device) for name in eval_sets}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--eval", nargs="+", default=["builtin"], help="evaluation sets (builtin, asterisk, ...)")
    parser.add_argument("--calib", default="builtin")
    parser.add_argument("--calib-samples", type=int, default=None)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (calibration and transcription)")
    parser.add_argument("--output", type=Path, default=RESULTS / "compression_wer.json")
    args = parser.parse_args()

    out = {"device": args.device, "calib": args.calib, "calib_samples": args.calib_samples, "eval_sets": args.eval, "models": {}}
    for name in args.models:
        loaded = load_model(name)
        stats = calibration_stats(loaded, args.calib, args.calib_samples, args.cache, args.device)
        dense = dense_point(loaded, args.eval, args.device)
        lite = compressed_point(loaded, stats, LiteASRPolicy(), args.eval, args.device)
        out["models"][name] = {"dense": dense, "liteasr_default": lite, "calibration_windows": stats.n_windows}
        for label, point in (("dense", dense), ("liteasr 0.99:0.999", lite)):
            wers = "  ".join(f"WER[{k}] {v['wer']:.2f}%" for k, v in point["wer"].items())
            print(f"{name:8s} {label:20s} encoder params {point['encoder_params'] / 1e6:6.2f} M "
                  f"({point['size_ratio']:.3f})  {wers}", flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
