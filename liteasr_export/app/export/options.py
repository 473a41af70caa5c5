"""The options of ``liteasr-export`` as plain data, shared by the CLI, the
pipeline and its stages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from liteasr_export.core.graphs import PRECISIONS

__all__ = ["PRECISIONS", "ExportOptions"]


@dataclass
class ExportOptions:
    """Everything ``liteasr-export`` accepts, as plain data."""

    output: Path
    model: str = "tiny.en"
    engine: str = "onnx"  # onnx | trt
    precision: str = "fp32"  # one of PRECISIONS; what it makes of each graph: graphs.GRAPH_PRECISION
    force: bool = False
    compress: bool = True
    calib: str = "default"
    calib_samples: int | None = None  # utterances per calibration source
    packing: str = "both"
    augment: str | None = None
    policy: str = "budget"
    preset: str | None = None
    theta: str | None = None
    target_size: float | None = None
    shrinkage: float = 0.0
    probe_windows: int = 12
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
    #: clips of the --eval set compared for numerical parity; each runs the model in
    #: float32 and float64 (the reference), so 2 windows cost what 4 did before
    parity_clips: int = 2
    gate_sets: str = "default"
    gate_clips: int = 150
    max_wer_increase: float = 1.0
    max_disagreement: float = 10.0
    allow_degradation: bool = False
    threads: int | None = None
    device: str = "cpu"
    ray: str | None = None  # calibration statistics on Ray Data: "local" (this machine) or a cluster's address
    language: str | None = "en"
    build_script: bool = False
    trt_max_batch: int = 8
    progress: bool = True
