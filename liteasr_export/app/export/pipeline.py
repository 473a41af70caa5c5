"""The main job: load -> calibrate -> compress -> export -> (build) -> validate
-> manifest + report, written into a temporary folder and renamed at the end.

Each stage is a library call of its own (sources, calibration.statistics,
compressor, exporters.artifacts, engines.*); this module only sequences them,
reuses what earlier runs saved (statistics cache, compressed checkpoints) and
records timings.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Iterator

import torch

from engines.build.trt_builder import TrtBuildOptions
from engines.build.trt_export import export_tensorrt
from engines.build.trt_profiles import ProfileOptions
from engines.trt_availability import require_tensorrt
from engines.validation.quality_gate import MARGIN_SE
from exporters import artifacts

from liteasr_export.model import sources
from liteasr_export.app.export.compression_stage import (calibrate, compress_model, options_policy, overflow_check_features,
                                search_compression, select_spectra, size_steps)
from liteasr_export.core.errors import QualityGateError
from liteasr_export.core.integrity import checksums
from liteasr_export.core.interrupts import pause_point
from liteasr_export.core.windowed import AUTO_CONTEXT, FULL_CONTEXT
from liteasr_export.model.distillation.context_tune import describe, is_tuned
from liteasr_export.model.lite_whisper import save_lite_whisper
from liteasr_export.core.manifest import load_manifest, update_manifest
from liteasr_export.app.export.context_stage import tune_context
from liteasr_export.app.export.options import ExportOptions
from liteasr_export.core.output_folder import OutputFolder
from liteasr_export.app.export.preflight import check_export_options
from liteasr_export.app.export.quality_stage import gate_checks, is_multilingual, validate

__all__ = ["ExportOptions", "ExportResult", "run_export"]

@dataclass
class ExportResult:
    output: Path
    manifest: Path
    report: Path
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


#: timed parts of a stage (their seconds are inside the stage's too): part -> stage
STAGE_PARTS = {"parity": "validate", "gate": "validate"}


def describe_timings(timings: dict[str, float]) -> list[str]:
    """``stage 12.3s`` per stage, its timed parts in parentheses
    (``validate 72.2s (parity 11.7s, gate 60.4s)``): no second counted twice."""
    lines = []
    for name, seconds in timings.items():
        if name in STAGE_PARTS:
            continue
        parts = [f"{p} {s:.1f}s" for p, s in timings.items() if STAGE_PARTS.get(p) == name]
        lines.append(f"{name} {seconds:.1f}s" + (f" ({', '.join(parts)})" if parts else ""))
    return lines


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
        seconds = time.perf_counter() - start
        self.add(name, seconds)
        if self.progress:
            print(f"  ({name}: {seconds:.1f} s)", flush=True)

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` to ``name`` (a stage run again adds up)."""
        self.timings[name] = round(self.timings.get(name, 0.0) + seconds, 2)


def _check_options(opts: ExportOptions) -> None:
    """Refuse bad settings before any work is done."""
    opts.check()
    if opts.engine == "trt" and not opts.build_script:
        require_tensorrt()  # fails now, with what is missing, not after the export


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("liteasr-export", "torch", "transformers", "onnx", "onnxruntime", "tensorrt"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


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
                  "Errors against the float64 PyTorch run of the same model, relative to each output's RMS; "
                  "float32 PyTorch's own error is the noise level (limit: a multiple of it plus a floor).", "",
                  "| artifact | output | error vs float64 | fp32 PyTorch error | ratio | limit | p99.9 error (limit) "
                  "| cosine | max abs | result |", "|---|---|---|---|---|---|---|---|---|---|"]
        for rep in validation["parity"]:
            for o in rep["outputs"]:
                lines.append(f"| {rep['artifact']} | {o['name']} | {o['error']:.3g} | {o['noise']:.3g} | "
                             f"{'-' if o['ratio'] is None else format(o['ratio'], '.3g')} | {o['limit']:.3g} | {o['error_quantile']:.3g} "
                             f"({o['quantile_limit']:.3g}) | {o['cosine']:.6f} | {o['max_abs']:.3g} | "
                             f"{'pass' if o['passed'] else 'FAIL'} |")
        lines += [""] + gate.to_markdown(level=2)
        if validation.get("default_size_steps"):
            lines += ["## Default size", "",
                      "No size was chosen, so the default had to pass every check set by more than "
                      f"{MARGIN_SE:g} standard error of its increase; each size that did not was replaced by "
                      "the next larger one.", "",
                      "| encoder size | gate | with margin | why not |", "|---:|---|---|---|"]
            for step in validation["default_size_steps"]:
                why = "; ".join(step["failures"] or step["short_of_margin"]) or "-"
                lines.append(f"| {100 * step['size_ratio']:.1f} % | {'pass' if step['passed'] else 'FAIL'} | "
                             f"{'yes' if step['passed_with_margin'] else 'no'} | {why} |")
            lines.append("")
    lines += ["## Stage times (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} (part of {STAGE_PARTS[k]}) | {v:.1f} |" if k in STAGE_PARTS else f"| {k} | {v:.1f} |"
              for k, v in timings.items()] + [""]
    return "\n".join(lines)


def _export_candidate(compressed, compression, tmp: Path, opts: ExportOptions, stage: _Stages) -> dict | None:
    """Write one compressed model into ``tmp``: its checkpoint and report,
    the ONNX graphs and, for ``--engine trt``, the engines or their build
    script (replacing an earlier candidate's files). Returns the TensorRT
    entry of the manifest (None without TensorRT)."""
    tuned = is_tuned(compressed.model)
    if compression is not None or tuned:
        save_lite_whisper(compressed.model, tmp / "checkpoint", compressed.tokenizer_path)
    if compression is not None:
        compression.write(tmp)
    attention = "unfused" if opts.engine == "trt" else opts.attention
    with stage("export", f"ONNX graphs ({opts.precision}, attention {attention})"):
        encoder_options = None
        if opts.precision == "fp16":  # activations checked for fp16 overflow on calibration speech
            encoder_options = {"calibration_features": overflow_check_features(compressed, opts)}
        artifacts.export_artifacts(compressed, tmp, attention=attention, precision=opts.precision,
                                   frontend=opts.frontend_graph, encoder_options=encoder_options)
    # before validation: the gate runs the artifacts in the mode they will be used in
    update_manifest(tmp, audio_context={"default": AUTO_CONTEXT if tuned else FULL_CONTEXT,
                                        "tuned": tuned})
    if opts.engine != "trt":
        return None
    build = TrtBuildOptions(precision=opts.precision, profile=ProfileOptions(max_batch=opts.trt_max_batch))
    with stage("build", "TensorRT engines" if not opts.build_script else "trtexec build script"):
        built = export_tensorrt(tmp, build, build_script=opts.build_script)
    recorded = load_manifest(tmp).data.get("tensorrt") or {}  # the builder's record: version, device, engines
    return {**recorded, "built": not opts.build_script, "path": str(built.relative_to(tmp)),
            "note": "run build_engines.sh on the target GPU" if opts.build_script else ""}


def run_export(opts: ExportOptions) -> ExportResult:
    """Run the whole job; OUT appears (or is replaced) only when every stage
    succeeded (see :mod:`liteasr_export.core.output_folder`)."""
    _check_options(opts)
    check_export_options(opts)
    out = Path(opts.output).resolve()
    folder = OutputFolder(out, force=opts.force).open()
    tmp = folder.tmp
    stage = _Stages(opts.progress)
    try:
        if opts.threads:
            torch.set_num_threads(opts.threads)
        with stage("load", f"loading {opts.model}"):
            dense = sources.load_model(opts.model, language=opts.language)
        compressed, compression, calib_note, search = dense, None, None, None
        steps: list[float] = []  # larger sizes to try while the gate does not pass the default with margin
        if opts.compress and not dense.is_low_rank:
            with stage("calibrate", f"calibration statistics ({opts.calib})"):
                stats, calib_note = calibrate(dense, opts)
                if opts.save_stats:
                    stats.save(opts.save_stats)
            if opts.target_wer_increase is not None:
                with stage("search", f"smallest encoder within +{opts.target_wer_increase:g} WER points"):
                    compressed, compression, search = search_compression(dense, stats, opts)
            else:
                with stage("probe", "output spectra and measured sensitivities"):
                    spectra = select_spectra(dense, stats, options_policy(dense, opts), opts)
                with stage("compress", "LiteASR low-rank factorization"):
                    compressed, compression = compress_model(dense, stats, opts, spectra=spectra)
                steps = size_steps(dense, opts) if opts.validate else []
        tuning = None
        if opts.context_tune and compression is None:  # a compressed model is tuned by compress_model
            with stage("tune", f"audio-context tuning, {opts.context_tune} steps"):
                compressed = replace(dense, model=copy.deepcopy(dense.model))
                tuning = tune_context(compressed.model, dense, opts)
        checks = gate_checks(opts, multilingual=is_multilingual(dense)) if opts.validate else None
        attempts: list[dict] = []
        while True:
            engines_info = _export_candidate(compressed, compression, tmp, opts, stage)
            validation, gate = None, None
            if opts.validate:
                with stage("validate", f"parity, then compressed against dense on {opts.eval_set} and the check sets"):
                    validation = validate(dense, compressed, tmp, opts, checks=checks,
                                          margin=MARGIN_SE if steps else None)
                    gate = validation.pop("quality")
                    validation["quality"] = gate.to_dict()
                for name, seconds in validation["timings_s"].items():
                    stage.add(name, seconds)
            if compression is None or gate is None or not (steps or attempts):
                break  # nothing to step: a size the user chose, no compression, or no gate
            attempts.append({"policy": compression.policy, "size_ratio": round(compression.size_ratio, 4),
                             "passed": gate.passed, "passed_with_margin": gate.passed_with_margin,
                             "short_of_margin": gate.margin_shortfalls(), "failures": gate.failures})
            if gate.passed_with_margin or not steps:
                break
            size = steps.pop(0)
            why = (gate.failures or gate.margin_shortfalls() or ["not every set was checked"])[0]
            print(f"quality gate: the default encoder ({100 * compression.size_ratio:.1f} % of dense) did not pass "
                  f"with margin ({why}); trying budget size {size:g}", flush=True)
            with stage("compress", f"LiteASR low-rank factorization, budget size {size:g}"):
                compressed, compression = compress_model(dense, stats, opts, size=size, spectra=spectra)
        if attempts:
            validation["default_size_steps"] = attempts
            if not gate.passed_with_margin and gate.passed:
                print("quality gate: passed, but not by more than its sampling uncertainty on every set "
                      "(see the report)", flush=True)
        if gate is not None and not gate.passed and not opts.allow_degradation:
            raise QualityGateError(
                f"quality gate failed: {gate.failures[0]}"
                + (f" (and {len(gate.failures) - 1} more)" if len(gate.failures) > 1 else ""),
                "nothing was written; try a larger `target_size`, `refine=200`, "
                f"`target_wer_increase={opts.max_wer_increase:g}` (the smallest encoder that passes), or "
                "`allow_degradation=True` to write it anyway",
                gate=validation["quality"], field="max_wer_increase",
            )
        summary = {
            "precision": opts.precision,
            "engine": opts.engine,
            "compression": None if compression is None else compression.to_dict(),
            "calibration": calib_note,
            "validation": validation if validation is not None else "skipped (--no-validate)",
            "degraded": bool(gate is not None and not gate.passed),
            "target_search": None if search is None else search.to_dict(),
            "context_tune": tuning if compression is None else compression.recovery.get("context_tune"),
            "tensorrt": engines_info,
            "timings_s": stage.timings,
            "versions": versions(),
            "options": json.loads(json.dumps(asdict(opts), default=str)),
        }
        compression_md = None if compression is None else compression.to_markdown(level=2)
        if tuning is not None:
            compression_md = "\n".join(["## Audio-context tuning", "", describe(tuning)])
        if search is not None:
            compression_md = (compression_md or "") + "\n" + "\n".join(search.to_markdown(level=2))
        report = _report_markdown(dense.name, opts, compression_md, validation, gate, stage.timings,
                                  load_manifest(tmp).data["graphs"])
        (tmp / "report.md").write_text(report)
        update_manifest(tmp, **summary, sha256=checksums(tmp))
        folder.commit()
    finally:
        folder.close()
    return ExportResult(out, out / "manifest.json", out / "report.md", stage.timings, summary)
