"""``build_engines.sh``: trtexec commands that build the same engines as
:func:`engines.build.trt_builder.build_engines`, for the machine that will run them.

TensorRT plans are specific to one GPU model and TensorRT version, so
building on the target machine is a real use, not only a fallback for
machines without TensorRT. The script uses the same optimization profiles
(:mod:`engines.build.trt_profiles`), precision plan (which layers stay float32) and
timing cache file as the Python builder, and picks the flags of the
TensorRT it finds: weakly typed (``--fp16 --precisionConstraints=obey
--layerPrecisions=...``) where trtexec still has precision constraints
(10.x), strongly typed (``--stronglyTyped``: types from the graph) otherwise.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import onnx

from liteasr_export.core.manifest import ENGINE_DIR, TIMING_CACHE_NAME, load_manifest

from .trt_builder import TrtBuildOptions, plan_precision
from .trt_profiles import manifest_profiles

SCRIPT_NAME = "build_engines.sh"
#: characters trtexec's layer specs use as separators: such names cannot be pinned from the command line
_SPEC_SEPARATORS = (",", ":")

_HEADER = """\
#!/usr/bin/env bash
# Build TensorRT engines for this artifacts folder with trtexec.
#
# README. TensorRT engines only run on the GPU model and TensorRT version that
# built them, so run this script on the deployment machine (TensorRT 10.x or
# 11.x, trtexec on PATH or named by TRTEXEC=/path/to/trtexec). It writes
# {engine_dir}/<graph>.plan beside the ONNX graphs and reuses
# {engine_dir}/{cache} across builds; `liteasr-transcribe --engine trt
# --artifacts <this folder>` then loads the plans.
#
# Written by liteasr-export: precision {precision}; profiles (min/opt/max) as the
# Python builder uses them; under fp16/bf16 the layers listed per graph stay
# float32 (LayerNorm, Softmax, reductions, and the float32 islands of an fp16
# ONNX graph). TensorRT 11 builds strongly typed networks only: there each
# engine takes the precision of its ONNX graph.
set -euo pipefail
cd "$(dirname "$0")"
TRTEXEC="${{TRTEXEC:-trtexec}}"
command -v "$TRTEXEC" >/dev/null || {{ echo "trtexec not found: install TensorRT or set TRTEXEC" >&2; exit 1; }}
if "$TRTEXEC" --help 2>&1 | grep -q -- '--precisionConstraints'; then WEAK_TYPING=1; else WEAK_TYPING=0; fi
mkdir -p {engine_dir}
"""


def _quote(args: list[str]) -> str:
    return " \\\n    ".join(shlex.quote(a) if a != '"$TRTEXEC"' else a for a in args)


def graph_commands(graph: str, onnx_file: str, profile_args: list[str], precision: str,
                   fp32_nodes: list[str], options: TrtBuildOptions) -> tuple[list[str], list[str], list[str]]:
    """trtexec arguments of one graph: (both modes, weakly typed extras, strongly typed extras)."""
    common = ['"$TRTEXEC"', f"--onnx={onnx_file}", f"--saveEngine={ENGINE_DIR}/{graph}.plan", *profile_args]
    if options.use_timing_cache:
        # the folder's own cache: a path on the exporting machine means nothing on the target
        common.append(f"--timingCacheFile={ENGINE_DIR}/{TIMING_CACHE_NAME}")
    if options.workspace_mb is not None:
        common.append(f"--memPoolSize=workspace:{int(options.workspace_mb)}M")
    if options.optimization_level is not None:
        common.append(f"--builderOptimizationLevel={int(options.optimization_level)}")
    weak: list[str] = []
    if precision != "fp32":
        weak += [f"--{precision}", "--precisionConstraints=obey"]
        names = [n for n in fp32_nodes if not any(c in n for c in _SPEC_SEPARATORS)]
        if names:
            weak.append("--layerPrecisions=" + ",".join(f"{n}:fp32" for n in names))
            weak.append("--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in names))
    return common, weak, ["--stronglyTyped"]


def render_script(artifacts_dir: str | Path, options: TrtBuildOptions = TrtBuildOptions()) -> str:
    """The script's text for the folder's graphs (``options.graphs`` that it has)."""
    manifest = load_manifest(artifacts_dir)
    graphs = [g for g in options.graphs if manifest.has_graph(g)]
    profiles = manifest_profiles(manifest, options.profile, graphs)
    parts = [_HEADER.format(engine_dir=ENGINE_DIR, cache=TIMING_CACHE_NAME, precision=options.precision)]
    for graph in graphs:
        path = manifest.graph_path(graph)
        precision = options.graph_precision(graph)
        plan = plan_precision(onnx.load(str(path), load_external_data=False), precision, graph)
        skipped = [n for n in plan.fp32_nodes if any(c in n for c in _SPEC_SEPARATORS)]
        common, weak, strong = graph_commands(graph, path.name, profiles[graph].trtexec_args(), precision,
                                              plan.fp32_nodes, options)
        parts.append(f"\n# {graph}: {precision}, {len(plan.fp32_nodes)} layers pinned to fp32"
                     + (f" ({len(skipped)} not nameable on trtexec's command line)" if skipped else "") + "\n")
        parts.append(f'echo "building {ENGINE_DIR}/{graph}.plan" >&2\n')
        parts.append('if [ "$WEAK_TYPING" = 1 ]; then\n  ' + _quote(common + weak) + "\nelse\n")
        if precision != "fp32" and plan.graph_dtype == "float32":
            parts.append(f'  echo "note: strongly typed TensorRT builds {path.name} (float32) in float32" >&2\n')
        parts.append("  " + _quote(common + strong) + "\nfi\n")
    return "".join(parts)


def write_build_script(artifacts_dir: str | Path, options: TrtBuildOptions = TrtBuildOptions()) -> Path:
    """Write ``build_engines.sh`` (executable) into the folder: it works from
    there, wherever the folder is copied."""
    path = Path(artifacts_dir) / SCRIPT_NAME
    path.write_text(render_script(artifacts_dir, options))
    path.chmod(0o755)
    return path
