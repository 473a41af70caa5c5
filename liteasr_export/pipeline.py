"""The main job: load -> calibrate -> compress -> export -> (build) -> validate
-> manifest + report, written into a temporary folder and renamed at the end.

Each stage is a library call of its own (sources, calibration.statistics,
compressor, exporters.artifacts, engines.*); this module only sequences them,
reuses what earlier runs saved (statistics cache, compressed checkpoints) and
records timings.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import LiteASRError
from .integrity import checksums
from .interrupts import pause_point
from .output_folder import OutputFolder

PRECISIONS = ("fp32", "fp16", "int8")


@dataclass
class ExportOptions:
    """Everything ``liteasr-export`` accepts, as plain data."""

    output: Path
    model: str = "tiny.en"
    engine: str = "onnx"  # onnx | trt
    precision: str = "fp32"
    force: bool = False
    compress: bool = True
    calib: str = "builtin"
    calib_samples: int | None = None
    policy: str = "liteasr"
    preset: str | None = None
    theta: str | None = None
    target_size: float | None = None
    ranks: Path | None = None
    stats: Path | None = None
    save_stats: Path | None = None
    cache_dir: Path | None = None
    attention: str = "auto"
    frontend_graph: bool = True
    validate: bool = True
    eval_set: str = "builtin"
    eval_limit: int | None = None
    parity_clips: int = 4
    threads: int | None = None
    device: str = "cpu"
    language: str | None = "en"
    build_script: bool = False
    trt_max_batch: int = 8
    progress: bool = True


@dataclass
class ExportResult:
    output: Path
    manifest: Path
    report: Path
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "liteasr-export"


class _Stages:
    """Times each stage and prints one line per stage."""

    def __init__(self, progress: bool) -> None:
        self.timings: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def __call__(self, name: str, what: str) -> Iterator[None]:
        if self.progress:
            print(f"[{name}] {what}", flush=True)
        pause_point(name)
        start = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - start, 2)


def _check_options(opts: ExportOptions) -> None:
    """Refuse bad settings before any work is done."""
    if opts.precision not in PRECISIONS:
        raise LiteASRError(f"unknown precision {opts.precision!r}", "use --fp16, --int8 or neither (fp32)")
    if opts.engine not in ("onnx", "trt"):
        raise LiteASRError(f"unknown engine {opts.engine!r}", "use --engine onnx or --engine trt")
    if opts.engine == "trt" and opts.precision == "int8":
        raise LiteASRError("--int8 is the ONNX Runtime CPU quantization", "use --engine trt --fp16, or --engine onnx --int8")
    if opts.engine == "trt" and opts.attention == "fused":
        raise LiteASRError("TensorRT cannot import the fused com.microsoft attention node",
                           "use --attention unfused (the default for --engine trt)")
    if opts.engine == "trt" and not opts.build_script:
        from engines.trt_availability import require_tensorrt

        require_tensorrt()  # fails now, with what is missing, not after the export


def _stats_cache_path(cache_dir: Path, fingerprint: str, calib: str, samples: int | None) -> Path:
    key = hashlib.sha256(f"{fingerprint}|{calib}|{samples}".encode()).hexdigest()[:20]
    return cache_dir / "stats" / f"{key}.safetensors"


def calibrate(loaded, opts: ExportOptions):
    """Statistics from ``--stats``, from the cache, or by calibrating (then cached)."""
    from calibration.datasets import resolve_set
    from calibration.statistics import ActivationStats, collect_statistics, encoder_fingerprint

    if opts.stats is not None:
        stats = ActivationStats.load(opts.stats)
        stats.check_matches(loaded.model)
        return stats, "loaded from " + str(opts.stats)
    cache = _stats_cache_path(opts.cache_dir or default_cache_dir(), encoder_fingerprint(loaded.model),
                              str(Path(opts.calib).resolve()) if Path(opts.calib).exists() else opts.calib,
                              opts.calib_samples)
    if cache.is_file():
        return ActivationStats.load(cache), f"reused {cache}"
    utterances = resolve_set(opts.calib, purpose="calib")
    stats = collect_statistics(loaded.model, utterances, device=opts.device, max_samples=opts.calib_samples,
                               progress=opts.progress, source=opts.calib)
    stats.save(cache)
    return stats, f"calibrated on {stats.n_utterances} utterances (cached at {cache})"


def compress_model(loaded, stats, opts: ExportOptions):
    from .compressor import compress
    from .rank_policies import make_policy

    policy = make_policy(opts.policy, theta=opts.theta, target_size=opts.target_size, ranks=opts.ranks,
                         preset=opts.preset)
    model, report = compress(loaded.model, stats, policy, name=loaded.name)
    return replace(loaded, model=model), report


def _first_window_features(utterances, n_mels: int) -> np.ndarray:
    """Log-mel of each utterance's first window, stacked: (N, n_mels, 3000)."""
    from .frontend import load_audio, log_mel, split_windows

    return np.stack([log_mel(split_windows(load_audio(u.audio))[0], n_mels) for u in utterances])


def _calibration_features(loaded, opts: ExportOptions, clips: int = 8) -> list:
    """One-window batches of the first calibration clips (the fp16 overflow check)."""
    from calibration.datasets import resolve_set

    features = _first_window_features(resolve_set(opts.calib, purpose="calib")[:clips],
                                      loaded.model.config.num_mel_bins)
    return [f[None] for f in features]


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("liteasr-export", "torch", "transformers", "onnx", "onnxruntime", "tensorrt"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def validate(dense, compressed, out_dir: Path, opts: ExportOptions) -> dict:
    """Parity of the graphs against the compressed PyTorch model, then WER of
    every backend on the evaluation set. Raises ToleranceError on a parity failure."""
    from calibration.datasets import resolve_set
    from engines.ort_transcriber import OnnxTranscriber
    from engines.validation import parity, wer_by_backend

    from .transcriber import TorchTranscriber

    utterances = resolve_set(opts.eval_set, purpose="eval")[: opts.eval_limit]
    reference = TorchTranscriber(compressed)
    onnx = OnnxTranscriber(out_dir, threads=opts.threads)
    features = _first_window_features(utterances[: opts.parity_clips], compressed.model.config.num_mel_bins)
    reports = parity(reference, onnx, features, opts.precision)
    for report in reports:
        report.raise_on_failure()
    backends = {"torch dense": TorchTranscriber(dense).transcribe}
    if compressed is not dense:
        backends["torch low-rank"] = reference.transcribe
    backends[f"onnxruntime {opts.precision}"] = onnx.transcribe
    if opts.engine == "trt" and not opts.build_script:
        from engines.trt_transcriber import TrtTranscriber

        backends[f"tensorrt {opts.precision}"] = TrtTranscriber(out_dir).transcribe
    wer = wer_by_backend(backends, utterances, progress=opts.progress)
    return {"parity": [p.to_dict() for p in reports], "wer": {"eval_set": opts.eval_set, "backends": wer}}


def _precision_markdown(graphs: dict) -> list[str]:
    """Which nodes stayed float32 under --fp16, and what --int8 left in float."""
    lines = []
    for graph, entry in graphs.items():
        export = entry.get("export", {})
        if export.get("fp16"):
            fp16 = export["fp16"]
            lines += [f"## fp16: nodes of {graph} kept in float32", "",
                      f"By type ({', '.join(fp16['fp32_op_types'])}) and by measured overflow on "
                      f"{fp16['checked_samples']} calibration windows (headroom {fp16['headroom']}x): "
                      f"{len(fp16['fp32_nodes'])} nodes.", ""]
            lines += [f"- `{n}`" + (f" (overflow: max {fp16['overflow_nodes'][n]:.3g})" if n in fp16["overflow_nodes"] else "")
                      for n in fp16["fp32_nodes"]] + [""]
        if export.get("int8"):
            int8 = export["int8"]
            lines += [f"## int8: {graph}", "", f"{int8['quantized_matmuls']} weight MatMuls quantized "
                      f"({'per channel' if int8['per_channel'] else 'per tensor'}); "
                      f"{len(int8['float_matmuls'])} activation products stay float.", ""]
    return lines


def _report_markdown(name: str, opts: ExportOptions, compression_md: str | None, validation: dict | None,
                     timings: dict[str, float], manifest_graphs: dict | None = None) -> str:
    lines = [f"# liteasr-export report: {name}", "",
             f"engine `{opts.engine}`, precision `{opts.precision}`, attention `{opts.attention}`", ""]
    if compression_md:
        lines += [compression_md, ""]
    lines += _precision_markdown(manifest_graphs or {})
    if validation is None:
        lines += ["## Validation", "", "Skipped (`--no-validate`).", ""]
    else:
        lines += ["## Parity against PyTorch", "",
                  "| artifact | output | max abs | mean abs | cosine | check | atol | rtol | result |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for rep in validation["parity"]:
            for o in rep["outputs"]:
                lines.append(f"| {rep['artifact']} | {o['name']} | {o['max_abs']:.3g} | {o['mean_abs']:.3g} | "
                             f"{o['cosine']:.6f} | {o['stat']} | {o['atol']:g} | {o['rtol']:g} | "
                             f"{'pass' if o['passed'] else 'FAIL'} |")
        wer = validation["wer"]
        lines += ["", f"## WER on `{wer['eval_set']}`", "", "| backend | WER % | utterances | seconds |", "|---|---|---|---|"]
        for backend, row in wer["backends"].items():
            lines.append(f"| {backend} | {row['wer']:.2f} | {row['n']} | {row['seconds']:.1f} |")
        lines.append("")
    lines += ["## Stage times (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in timings.items()] + [""]
    return "\n".join(lines)


def run_export(opts: ExportOptions) -> ExportResult:
    """Run the whole job; OUT appears (or is replaced) only when every stage
    succeeded (see :mod:`liteasr_export.output_folder`)."""
    from exporters.artifacts import export_artifacts, update_manifest

    from .lite_whisper import save_lite_whisper
    from .preflight import check_export_options
    from .sources import load_model

    _check_options(opts)
    check_export_options(opts)
    out = Path(opts.output).resolve()
    folder = OutputFolder(out, force=opts.force).open()
    tmp = folder.tmp
    stage = _Stages(opts.progress)
    try:
        if opts.threads:
            import torch

            torch.set_num_threads(opts.threads)
        with stage("load", f"loading {opts.model}"):
            dense = load_model(opts.model, language=opts.language)
        compressed, compression, calib_note = dense, None, None
        if opts.compress and not dense.is_low_rank:
            with stage("calibrate", f"calibration statistics ({opts.calib})"):
                stats, calib_note = calibrate(dense, opts)
                if opts.save_stats:
                    stats.save(opts.save_stats)
            with stage("compress", "LiteASR low-rank factorization"):
                compressed, compression = compress_model(dense, stats, opts)
                save_lite_whisper(compressed.model, tmp / "checkpoint", compressed.tokenizer_path)
                compression.write(tmp)
        attention = "unfused" if opts.engine == "trt" else opts.attention
        with stage("export", f"ONNX graphs ({opts.precision}, attention {attention})"):
            encoder_options = None
            if opts.precision == "fp16":  # activations checked for fp16 overflow on calibration speech
                encoder_options = {"calibration_features": _calibration_features(compressed, opts)}
            export_artifacts(compressed, tmp, attention=attention, fp16=opts.precision == "fp16",
                             int8=opts.precision == "int8", frontend=opts.frontend_graph,
                             encoder_options=encoder_options)
        engines_info = None
        if opts.engine == "trt":
            from engines.trt_builder import TrtBuildOptions, export_tensorrt
            from engines.trt_profiles import ProfileOptions

            build = TrtBuildOptions(precision=opts.precision, profile=ProfileOptions(max_batch=opts.trt_max_batch))
            with stage("build", "TensorRT engines" if not opts.build_script else "trtexec build script"):
                built = export_tensorrt(tmp, build, build_script=opts.build_script)
            engines_info = {"built": not opts.build_script, "path": str(built.relative_to(tmp)),
                            "note": "run build_engines.sh on the target GPU" if opts.build_script else ""}
        validation = None
        if opts.validate:
            with stage("validate", f"parity and WER on {opts.eval_set}"):
                validation = validate(dense, compressed, tmp, opts)
        summary = {
            "precision": opts.precision,
            "engine": opts.engine,
            "compression": None if compression is None else compression.to_dict(),
            "calibration": calib_note,
            "validation": validation if validation is not None else "skipped (--no-validate)",
            "tensorrt": engines_info,
            "timings_s": stage.timings,
            "versions": versions(),
            "options": json.loads(json.dumps(asdict(opts), default=str)),
        }
        from exporters.artifacts import load_manifest

        report = _report_markdown(dense.name, opts, None if compression is None else compression.to_markdown(level=2),
                                  validation, stage.timings, load_manifest(tmp).data["graphs"])
        (tmp / "report.md").write_text(report)
        update_manifest(tmp, **summary, sha256=checksums(tmp))
        folder.commit()
    finally:
        folder.close()
    return ExportResult(out, out / "manifest.json", out / "report.md", stage.timings, summary)
