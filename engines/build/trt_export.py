"""The ``--engine trt`` step after the ONNX export: the readiness check
(always), then either engines built here (:mod:`engines.build.trt_builder`) or a
``build_engines.sh`` of trtexec commands for the target machine
(:mod:`engines.build.trtexec_script`).
"""

from __future__ import annotations

from pathlib import Path

from liteasr_export.core.manifest import ENGINE_DIR, load_manifest

from ..trt_availability import tensorrt_version
from .trt_builder import TrtBuildOptions, build_engines
from .trt_readiness import REFERENCE_VERSION, check_artifacts
from .trtexec_script import write_build_script


def export_tensorrt(artifacts_dir: str | Path, options: TrtBuildOptions = TrtBuildOptions(), *,
                    build_script: bool = False) -> Path:
    """The ``--engine trt`` step after the ONNX export: the readiness check
    (always), then either engines built here or, with ``build_script``, a
    ``build_engines.sh`` of trtexec commands for the target machine.
    Returns the engine folder or the script."""
    root = Path(artifacts_dir)
    graphs = [g for g in options.graphs if load_manifest(root).has_graph(g)]
    check_artifacts(root, options.profile, target=tensorrt_version() or REFERENCE_VERSION, graphs=graphs)
    if build_script:
        return write_build_script(root, options)
    build_engines(root, options)
    return root / ENGINE_DIR
