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

from calibration.mix import DEFAULT_PER_SOURCE

from .errors import DatasetError, LiteASRError
from .integrity import checksums, sha256_file
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
    calib: str = "default"
    calib_samples: int | None = None  # utterances per calibration source
    packing: str = "both"
    augment: str | None = None
    policy: str = "liteasr"
    preset: str | None = None
    theta: str | None = None
    target_size: float | None = None
    shrinkage: float = 0.0
    probe_windows: int = 0
    compensate: int = 0  # calibration windows for error compensation (0: off)
    refine: int = 0  # distillation steps (0: off)
    refine_windows: int = 64
    target_wer_increase: float | None = None
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
    gate_sets: str = "default"
    gate_clips: int = 150
    max_wer_increase: float = 1.0
    max_disagreement: float = 10.0
    allow_degradation: bool = False
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


def _stats_cache_key(fingerprint: str, mix, opts: ExportOptions) -> str:
    """Content key of a calibration: the encoder's weights, the settings and
    the bytes of every audio file read (so an edited file is never served
    from a stale cache)."""
    digest = hashlib.sha256(f"{fingerprint}|{opts.packing}|{opts.augment}|v2".encode())
    for source in mix.sources:
        digest.update(f"|{source.name}".encode())
        for utterance in source.utterances:
            digest.update(f"|{utterance.id}|{sha256_file(utterance.audio)}".encode())
    return digest.hexdigest()[:24]


def calibrate(loaded, opts: ExportOptions, progress_note=print):
    """Statistics from ``--stats``, from the cache, or by calibrating on the
    mix ``--calib`` names (then cached). Returns the statistics and a note."""
    from calibration.augment import Augmenter
    from calibration.mix import resolve_mix
    from calibration.statistics import ActivationStats, collect_window_statistics, encoder_fingerprint
    from calibration.windows import WindowSummary, mix_windows

    if opts.stats is not None:
        stats = ActivationStats.load(opts.stats)
        stats.check_matches(loaded.model)
        return stats, "loaded from " + str(opts.stats)
    per_source = opts.calib_samples or DEFAULT_PER_SOURCE
    mix = resolve_mix(opts.calib, "calib", per_source)
    for name, why in mix.missing.items():
        progress_note(f"  note: calibration source {name} skipped: {why}")
    augmenter = Augmenter.parse(opts.augment)
    cache = (opts.cache_dir or default_cache_dir()) / "stats" / (
        _stats_cache_key(encoder_fingerprint(loaded.model), mix, opts) + ".safetensors")
    if cache.is_file():
        return ActivationStats.load(cache), f"reused {cache}"
    summary = WindowSummary()
    from tqdm.auto import tqdm

    windows = mix_windows(mix, opts.packing, augmenter, summary)
    with tqdm(desc="calibrating", unit="window", disable=not opts.progress) as bar:
        stats = collect_window_statistics(loaded.model, (bar.update(1) or w for w in windows), device=opts.device,
                                          source=opts.calib)
    if stats.n_windows == 0:
        raise DatasetError(f"the calibration set {opts.calib!r} has no usable audio ({summary.skipped} files "
                           "could not be read)", "pass a set of readable wav/flac/ogg/mp3 files (--calib)")
    stats.n_utterances = sum(len(s.utterances) for s in mix.sources) - summary.skipped
    stats.extra.update(mix=mix.describe(), window_summary=summary.to_dict(), packing=opts.packing,
                       augment=list(augmenter.kinds) if augmenter else [])
    stats.save(cache)
    return stats, f"calibrated on {stats.n_utterances} utterances, {stats.n_windows} windows (cached at {cache})"


def calibration_features(loaded, opts: ExportOptions, count: int) -> np.ndarray:
    """Log-mel of ``count`` calibration windows spread evenly over the mix
    (every source, single and packed windows), for the steps after the
    statistics: probing, compensation, refinement."""
    from calibration.mix import resolve_mix
    from calibration.windows import mix_windows

    from .frontend import log_mel

    windows = list(mix_windows(resolve_mix(opts.calib, "calib", opts.calib_samples or DEFAULT_PER_SOURCE),
                               opts.packing))
    chosen = np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))
    return np.stack([log_mel(windows[i], loaded.model.config.num_mel_bins) for i in chosen])


def compress_model(loaded, stats, opts: ExportOptions, note=print):
    """Ranks from the policy (with measured sensitivities when probing), the
    factors, then compensation and refinement when asked for."""
    from .compressor import compress, compute_spectra
    from .rank_policies import BudgetPolicy, make_policy

    policy = make_policy(opts.policy, theta=opts.theta, target_size=opts.target_size, ranks=opts.ranks,
                         preset=opts.preset)
    spectra = compute_spectra(loaded.model, stats, opts.shrinkage)
    if opts.probe_windows and isinstance(policy, BudgetPolicy):
        from .sensitivity import measure_sensitivity, probe_ranks_for

        features = calibration_features(loaded, opts, opts.probe_windows)
        spectra = measure_sensitivity(loaded.model, stats, spectra, features,
                                      probe_ranks_for(policy, spectra, loaded.model.config), policy.weights,
                                      opts.shrinkage, progress=opts.progress)
    model, report = compress(loaded.model, stats, policy, name=loaded.name, spectra=spectra,
                             shrinkage=opts.shrinkage)
    report.calibration.update({k: stats.extra[k] for k in ("mix", "window_summary", "packing", "augment") if k in stats.extra})
    report.recovery = recover(model, loaded.model, loaded, opts, note)
    return replace(loaded, model=model), report


def recover(model, dense, loaded, opts: ExportOptions, note=print) -> dict:
    """Compensation, then refinement, of ``model``'s factors (in place)."""
    done: dict = {"shrinkage": opts.shrinkage, "probe_windows": opts.probe_windows}
    if opts.compensate:
        from .compensation import compensate

        done["compensation"] = compensate(model, dense, calibration_features(loaded, opts, opts.compensate),
                                          progress=opts.progress)
    if opts.refine:
        from .refine import refine

        features = calibration_features(loaded, opts, opts.refine_windows)
        held = features[::10]  # every tenth window only scores the fit
        train = np.delete(features, np.arange(0, len(features), 10), axis=0)
        done["refine"] = refine(model, dense, train, opts.refine, heldout=held, progress=opts.progress).to_dict()
        note(f"  refined {opts.refine} steps: loss {done['refine']['train_loss_before']:.4f} -> "
             f"{done['refine']['train_loss_after']:.4f} (held-back windows "
             f"{done['refine']['heldout_loss_before']:.4f} -> {done['refine']['heldout_loss_after']:.4f})")
    return done


def _first_window_features(utterances, n_mels: int) -> np.ndarray:
    """Log-mel of each utterance's first window, stacked: (N, n_mels, 3000)."""
    from .frontend import load_audio, log_mel, split_windows

    return np.stack([log_mel(split_windows(load_audio(u.audio))[0], n_mels) for u in utterances])


def _calibration_features(loaded, opts: ExportOptions, clips: int = 8) -> list:
    """One-window batches of the first calibration clips, a few of every
    source (the fp16 overflow check)."""
    from calibration.mix import resolve_mix

    utterances = resolve_mix(opts.calib, "calib", per_source=clips).utterances[:clips]
    return [f[None] for f in _first_window_features(utterances, loaded.model.config.num_mel_bins)]


def versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("liteasr-export", "torch", "transformers", "onnx", "onnxruntime", "tensorrt"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def gate_checks(opts: ExportOptions, note=print) -> list:
    """The quality gate's check sets: ``--eval`` (its first ``--eval-limit``
    utterances) and the built-in sets ``--gate-sets`` names that are installed."""
    from calibration.datasets import resolve_set
    from calibration.mix import balanced_sample
    from engines.quality_gate import DEFAULT_GATE_SETS, LONG_MINUTES, check_set, long_recording

    checks = [check_set(opts.eval_set, resolve_set(opts.eval_set, purpose="eval")[: opts.eval_limit])]
    names = [] if opts.gate_sets in ("", "none") else [n.strip() for n in opts.gate_sets.replace(
        "default", ",".join(DEFAULT_GATE_SETS)).split(",") if n.strip()]
    for name in dict.fromkeys(names):
        try:
            if name == "long":  # real speech when installed, else the generated voices
                try:
                    clips = balanced_sample(resolve_set("fotaq", "eval"), None, seed=1)
                except DatasetError:
                    clips = resolve_set("builtin", "eval")
                checks.append(long_recording(clips, LONG_MINUTES))
            elif name != opts.eval_set:
                checks.append(check_set(name, balanced_sample(resolve_set(name, "eval"), opts.gate_clips)))
        except DatasetError as exc:
            if name not in DEFAULT_GATE_SETS:
                raise
            note(f"  note: check set {name} skipped: {exc}")
    return checks


def validate(dense, compressed, out_dir: Path, opts: ExportOptions, note=print) -> dict:
    """Parity of the graphs against the compressed PyTorch model, then the
    quality gate: the artifacts against the dense model on every check set.
    Raises ToleranceError on a parity failure; the gate's verdict is returned
    (the caller decides what a failure means)."""
    from calibration.statistics import parameter_fingerprint
    from engines.ort_transcriber import OnnxTranscriber
    from engines.quality_gate import TranscriptCache, run_gate
    from engines.validation import parity

    from .frontend import split_windows
    from .transcriber import TorchTranscriber

    checks = gate_checks(opts, note)
    reference = TorchTranscriber(compressed)
    onnx = OnnxTranscriber(out_dir, threads=opts.threads)
    features = np.stack([reference.features(split_windows(a)[0]) for a in checks[0].audio[: opts.parity_clips]])
    reports = parity(reference, onnx, features, opts.precision)
    for report in reports:
        report.raise_on_failure()
    backends = {f"onnxruntime {opts.precision}": onnx.transcribe_many}
    if opts.engine == "trt" and not opts.build_script:
        from engines.trt_transcriber import TrtTranscriber

        backends[f"tensorrt {opts.precision}"] = TrtTranscriber(out_dir).transcribe_many
    model_key = f"{parameter_fingerprint(dense.model)}|{dense.decoding.to_json()}"
    gate = run_gate(checks, TorchTranscriber(dense).transcribe_many, backends, model_key,
                    TranscriptCache((opts.cache_dir or default_cache_dir()) / "transcripts"),
                    opts.max_wer_increase, opts.max_disagreement, progress=note if opts.progress else None)
    gate.allowed_degradation = opts.allow_degradation
    return {"parity": [p.to_dict() for p in reports], "quality": gate}


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
                     gate, timings: dict[str, float], manifest_graphs: dict | None = None) -> str:
    lines = [f"# liteasr-export report: {name}", "",
             f"engine `{opts.engine}`, precision `{opts.precision}`, attention `{opts.attention}`", ""]
    if gate is not None and not gate.passed:
        lines += ["**DEGRADED**: this export failed the quality gate and was written because of "
                  "`--allow-degradation`; see the quality gate below.", ""]
    if compression_md:
        lines += [compression_md, ""]
    lines += _precision_markdown(manifest_graphs or {})
    if validation is None:
        lines += ["## Validation", "", "Skipped (`--no-validate`): neither parity nor transcription quality was checked.", ""]
    else:
        lines += ["## Parity against PyTorch", "",
                  "| artifact | output | max abs | mean abs | cosine | check | atol | rtol | result |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for rep in validation["parity"]:
            for o in rep["outputs"]:
                lines.append(f"| {rep['artifact']} | {o['name']} | {o['max_abs']:.3g} | {o['mean_abs']:.3g} | "
                             f"{o['cosine']:.6f} | {o['stat']} | {o['atol']:g} | {o['rtol']:g} | "
                             f"{'pass' if o['passed'] else 'FAIL'} |")
        lines += [""] + gate.to_markdown(level=2)
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
        validation, gate = None, None
        if opts.validate:
            with stage("validate", f"parity, then compressed against dense on {opts.eval_set} and the check sets"):
                validation = validate(dense, compressed, tmp, opts)
                gate = validation.pop("quality")
                validation["quality"] = gate.to_dict()
            if not gate.passed and not opts.allow_degradation:
                from engines.quality_gate import QualityGateError

                raise QualityGateError(
                    f"quality gate failed: {gate.failures[0]}"
                    + (f" (and {len(gate.failures) - 1} more)" if len(gate.failures) > 1 else ""),
                    "nothing was written; try a larger --target-size, --refine 200, --target-wer-increase "
                    f"{opts.max_wer_increase:g} (the smallest encoder that passes), or --allow-degradation to write it anyway",
                )
        summary = {
            "precision": opts.precision,
            "engine": opts.engine,
            "compression": None if compression is None else compression.to_dict(),
            "calibration": calib_note,
            "validation": validation if validation is not None else "skipped (--no-validate)",
            "degraded": bool(gate is not None and not gate.passed),
            "tensorrt": engines_info,
            "timings_s": stage.timings,
            "versions": versions(),
            "options": json.loads(json.dumps(asdict(opts), default=str)),
        }
        from exporters.artifacts import load_manifest

        report = _report_markdown(dense.name, opts, None if compression is None else compression.to_markdown(level=2),
                                  validation, gate, stage.timings, load_manifest(tmp).data["graphs"])
        (tmp / "report.md").write_text(report)
        update_manifest(tmp, **summary, sha256=checksums(tmp))
        folder.commit()
    finally:
        folder.close()
    return ExportResult(out, out / "manifest.json", out / "report.md", stage.timings, summary)
