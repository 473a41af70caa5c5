"""The options of ``liteasr-export``, declared once: each field's type
(closed choices are :class:`~liteasr_export.core.choices.Choice` enums,
paths :class:`~pathlib.Path`, numbers ``int``/``float``), default, help,
flag and value check. The CLI builds its argparse options from these
declarations (``liteasr_export.app.cli.export_parser``); :meth:`ExportOptions.check`
is the one place values and their combinations are checked, and its
errors name fields (``eval_limit``), which the CLI writes as flags."""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from liteasr_export.core.choices import Choice, check_value, option, option_of
from liteasr_export.core.errors import LiteASRError
from liteasr_export.core.graphs import PRECISIONS
from engines.validation.quality_gate import DEFAULT_GATE_CLIPS, DEFAULT_MAX_DISAGREEMENT, DEFAULT_MAX_WER_INCREASE

__all__ = ["PRECISIONS", "Attention", "Engine", "ExportOptions", "Packing", "Policy", "Precision", "Preset",
           "field_types"]

COMPRESSION, GRAPHS, VALIDATION = "compression", "graphs and engines", "validation"


class Engine(Choice):
    """The target runtime."""
    ONNX = "onnx"
    TRT = "trt"


class Precision(Choice):
    """An export's precision (:data:`liteasr_export.core.graphs.PRECISIONS`)."""
    FP32 = "fp32"
    FP16 = "fp16"
    BF16 = "bf16"
    INT8 = "int8"


class Packing(Choice):
    """How calibration clips fill their 30 s windows."""
    SINGLE = "single"
    PACKED = "packed"
    BOTH = "both"


class Policy(Choice):
    """The rank policy (:mod:`liteasr_export.model.compression.rank_policies`)."""
    LITEASR = "liteasr"
    BUDGET = "budget"
    PROFILE = "profile"


class Preset(Choice):
    """Named rank presets (``rank_policies.PRESETS``)."""
    ACC = "acc"
    PLAIN = "plain"
    FAST = "fast"


class Attention(Choice):
    """The reduced attention's graph form."""
    AUTO = "auto"
    FUSED = "fused"
    UNFUSED = "unfused"


@dataclass
class ExportOptions:
    """Everything ``liteasr-export`` accepts. Strings given for a choice or
    a path become its enum or :class:`~pathlib.Path`; :meth:`check` refuses
    values out of range and settings that do not go together."""

    output: Path = option(help="output folder (default out/MODEL)", flags=("--output", "-o"), text="path")
    model: str = option("tiny.en", "bundled name (tiny.en, base) or model folder (default tiny.en)", text="path")
    engine: Engine = option(Engine.ONNX, "target runtime (default onnx)")
    # what it makes of each graph: graphs.GRAPH_PRECISION
    precision: Precision = option(Precision.FP32, consts=(
        ("--fp16", Precision.FP16, "fp16 encoder graph (float32 islands where activations overflow); the decoder "
                                   "graph stays float32, TensorRT builds both in fp16"),
        ("--bf16", Precision.BF16, "--engine trt: bf16 engines (compute capability 8.0 or newer); the graphs stay "
                                   "float32"),
        ("--int8", Precision.INT8, "int8 MatMuls (ONNX Runtime CPU)")))
    force: bool = option(False, "replace an existing output folder", switch="--force")
    compress: bool = option(True, "export the dense model", switch="--no-compress", group=COMPRESSION)
    calib: str = option("default", "calibration sources, comma-separated, balanced per source: default (fotaq, "
                        "asterisk and builtin, those installed; a multilingual model also asterisk-es/fr/it and "
                        "synth-es/fr/it, each language weighing as much as English), fotaq, asterisk, builtin, a "
                        "folder of audio or a manifest", group=COMPRESSION, text="paths")
    calib_samples: int | None = option(None, "utterances drawn from each calibration source (default 48)",
                                       check="count", group=COMPRESSION)
    packing: Packing = option(Packing.BOTH, "calibrate on clips alone in their window, packed into full 30 s "
                              "windows, or both (default)", group=COMPRESSION)
    augment: str | None = option(None, "also calibrate on augmented copies: comma-separated speed, noise, band, "
                                 "gain, or all", group=COMPRESSION)
    # the command line leaves it None until given, so that --preset can refuse it
    policy: Policy = option(Policy.BUDGET, "rank policy: budget (default: one parameter budget spent by measured "
                            "error), liteasr (the published variance rule, --theta), profile (--ranks)",
                            group=COMPRESSION, extra={"default": None})
    preset: Preset | None = option(None, "named rank preset", group=COMPRESSION)
    theta: str | None = option(None, "liteasr policy thresholds ATTN:MLP (default 0.99:0.999)", group=COMPRESSION)
    target_size: float | None = option(None, "budget policy: encoder parameters as a fraction of dense (default "
                                       "0.9; 0.975 for tiny-width encoders, d_model 384)", group=COMPRESSION)
    shrinkage: float = option(0.0, "blend each output covariance with the weights' own spectrum (0..1) so a narrow "
                              "calibration set cannot collapse a rank", check="fraction", group=COMPRESSION)
    probe_windows: int = option(12, "budget policy: measure each matrix's effect on the encoder output on N "
                                "calibration windows and weigh the budget by it (default 12; 0: spectra alone)",
                                check="count_or_zero", group=COMPRESSION)
    compensate: int = option(0, "refit the factors layer by layer to the dense outputs on N calibration windows "
                             "(0: off)", check="count_or_zero", group=COMPRESSION)
    refine: int = option(0, "distill the factors from the dense encoder for N steps on calibration audio (0: off)",
                         check="count_or_zero", group=COMPRESSION)
    refine_windows: int = option(64, "calibration windows used by --refine (default 64)", check="count",
                                 group=COMPRESSION)
    context_tune: int = option(0, "tune the encoder for N steps to transcribe from trimmed audio contexts, "
                               "without labels (the dense model on calibration clips is the teacher); the export "
                               "then decodes with --audio-context auto by default (0: off)", check="count_or_zero",
                               group=COMPRESSION)
    context_clips: int = option(96, "clips of each calibration source used by --context-tune (default 96)",
                                check="count", group=COMPRESSION)
    target_wer_increase: float | None = option(None, "search the smallest encoder (budget policy) whose WER rises "
                                               "at most this many points on the check sets", check="points",
                                               group=COMPRESSION)
    ranks: Path | None = option(None, "profile policy: low_rank_config JSON file", group=COMPRESSION, text="path")
    stats: Path | None = option(None, "reuse saved calibration statistics", group=COMPRESSION, text="path")
    save_stats: Path | None = option(None, "also save the statistics here (.safetensors/.npz)", group=COMPRESSION,
                                     text="path")
    cache_dir: Path | None = option(None, "cache of what does not change between exports: calibration statistics, "
                                    "sensitivities, the dense model's check-set transcripts (default "
                                    "$XDG_CACHE_HOME/liteasr-export or ~/.cache/liteasr-export; the speech sets "
                                    "stay there)", group=COMPRESSION,
                                    text="path")
    attention: Attention = option(Attention.AUTO, "reduced attention as one fused node, or MatMul-Softmax-MatMul",
                                  group=GRAPHS)
    frontend_graph: bool = option(True, "skip frontend.onnx", switch="--no-frontend-graph", group=GRAPHS)
    validate: bool = option(True, "skip parity and WER", switch="--no-validate", group=VALIDATION)
    eval_set: str = option("builtin", "evaluation set for WER (default builtin)", flags=("--eval",),
                           group=VALIDATION, text="path")
    eval_limit: int | None = option(None, "evaluate only the first N utterances", check="count", group=VALIDATION)
    #: clips of the --eval set compared for numerical parity; each runs the model in
    #: float32 and float64 (the reference), so 2 windows cost what 4 did before
    parity_clips: int = option(2, "clips used for numerical parity (default 2)", check="count", group=VALIDATION)
    gate_sets: str = option("default", "check sets besides --eval: default (fotaq-eval, asterisk-eval and a long "
                            "recording; a multilingual model also the Spanish, French and Italian sets; those "
                            "installed), a comma-separated list, or none", group=VALIDATION,
                            text="paths")
    gate_clips: int = option(DEFAULT_GATE_CLIPS, f"clips drawn from each built-in check set (default "
                             f"{DEFAULT_GATE_CLIPS})", check="count",
                             group=VALIDATION)
    max_wer_increase: float = option(DEFAULT_MAX_WER_INCREASE, "quality gate: refuse the export when WER rises more "
                                     f"than this many points on a set (default {DEFAULT_MAX_WER_INCREASE})",
                                     check="points", group=VALIDATION)
    max_disagreement: float = option(DEFAULT_MAX_DISAGREEMENT, "quality gate on sets without references: the most "
                                     f"%% of the dense transcript's words that may differ (default "
                                     f"{DEFAULT_MAX_DISAGREEMENT:g})", check="points",
                                     group=VALIDATION)
    allow_degradation: bool = option(False, "write an export that fails the quality gate, marked as degraded in "
                                     "the manifest and report", switch="--allow-degradation", group=VALIDATION)
    threads: int | None = option(None, "CPU threads for the backend", check="count", text="count")
    device: str = option("cpu", "torch device for calibration and reference (cpu, cuda)")
    # calibration statistics on Ray Data: "local" (this machine) or a cluster's address
    ray: str | None = option(None, "compute the calibration statistics with Ray Data: on a local Ray instance, or "
                             "on the cluster at ADDR (auto, ray://HEAD:10001); needs the [serve] extra",
                             extra={"nargs": "?", "const": "local", "metavar": "ADDR"})  # ray_jobs.cluster.LOCAL
    language: str | None = option("en", "language of the model's prompt (multilingual models; default en)")
    build_script: bool = option(False, "--engine trt: write trtexec commands instead of building",
                                switch="--build-script", group=GRAPHS)
    trt_max_batch: int = option(8, "TensorRT profile max batch", flags=("--max-batch",), check="count", group=GRAPHS,
                                feeds=("max_batch",))
    progress: bool = option(True, "no progress output", switch="--quiet")

    def __post_init__(self) -> None:
        for name, kind in field_types(type(self)).items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(kind, type) and issubclass(kind, Choice):
                setattr(self, name, kind.parse(value, name))
            elif kind is Path and not isinstance(value, Path):
                setattr(self, name, Path(value))

    def check(self) -> None:
        """Every value in range and every combination possible, before any
        work; an error names the field (the CLI writes it as its flag)."""
        for f in fields(self):
            if option_of(f).check:
                check_value(getattr(self, f.name), f.name, option_of(f).check)
        if self.precision == Precision.BF16 and self.engine != Engine.TRT:
            raise LiteASRError("`precision=bf16` is a TensorRT engine precision (ONNX Runtime's CPU provider has no "
                               "bf16 kernels)", "use `engine=trt` `precision=bf16`, or `precision=fp16` for ONNX "
                               "Runtime", field="precision")
        if self.engine == Engine.TRT and self.precision == Precision.INT8:
            raise LiteASRError("`precision=int8` is the ONNX Runtime CPU quantization",
                               "use `engine=trt` `precision=fp16`, or `engine=onnx` `precision=int8`",
                               field="precision")
        if self.engine == Engine.TRT and self.attention == Attention.FUSED:
            raise LiteASRError("TensorRT cannot import the fused com.microsoft attention node",
                               "use `attention=unfused` (the default for `engine=trt`)", field="attention")
        if self.target_wer_increase is not None and not self.validate:
            raise LiteASRError("`target_wer_increase` needs the quality checks", "drop `validate=False`",
                               field="target_wer_increase")


@functools.lru_cache(maxsize=None)
def field_types(cls: type) -> dict[str, Any]:
    """Each field's type, ``X | None`` read as ``X``."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in fields(cls):
        kind = hints[f.name]
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        out[f.name] = args[0] if typing.get_origin(kind) is not None and len(args) == 1 else kind
    return out
