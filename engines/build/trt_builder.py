"""TensorRT engines from an artifacts folder, on TensorRT's Python API (10.x / 11.x).

Per graph: parse the ONNX file, add one optimization profile
(:mod:`engines.build.trt_profiles`), choose the precision, load and save a timing
cache, and write a serialized plan to ``trt/<graph>.plan``.

Precision. The precision plan (:func:`plan_precision`) is computed on CPU
from the ONNX graph: the overflow-prone operator types that the ONNX fp16
export also keeps in float32 (:data:`liteasr_export.core.graphs.FP32_OP_TYPES`:
LayerNormalization, Softmax, reductions, Pow/Exp/Log/Sqrt) plus, in a graph
already converted to float16, every node the conversion left in float32 (its
measured overflow islands). How it is applied depends on TensorRT:

* weakly typed builds (TensorRT 10.x): ``BuilderFlag.FP16`` / ``BF16`` with
  ``OBEY_PRECISION_CONSTRAINTS``; the planned layers, matched by ONNX node
  name (layer name or the parser's ``[ONNX Layer: ...]`` metadata), and every
  normalization / softmax / reduce layer, get ``precision`` and output types
  float32;
* strongly typed builds (TensorRT 11.x has no other kind): types come from
  the graph itself, so an fp16 engine needs the fp16 ONNX export (whose float32
  islands are the same plan); a float32 graph builds in float32, with a note.

The ``frontend`` graph is always built in float32 (its parity bound is 1e-4).
Importing this module imports onnx only; tensorrt is imported by the build.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import onnx

from liteasr_export.core.errors import EngineUnavailableError, ExportError
from liteasr_export.core.graphs import FP32_OP_TYPES, GRAPH_FILES, TRT_PRECISIONS
from liteasr_export.core.manifest import engine_path, load_manifest, timing_cache_path, update_manifest

from ..trt_availability import require_tensorrt, tensorrt_version
from .trt_profiles import GraphProfile, ProfileOptions, manifest_profiles
from .trt_readiness import check_artifacts

log = logging.getLogger(__name__)

PRECISIONS = TRT_PRECISIONS
#: graphs an engine is built for, in build order
ENGINE_GRAPHS = tuple(GRAPH_FILES)  # every exported graph gets an engine
#: graphs always built in float32
FP32_GRAPHS = ("frontend",)
#: TensorRT layer types pinned to float32 under fp16/bf16 whatever their names
#: (LayerNormalization, Softmax and the reductions of any decomposed norm)
PINNED_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX", "REDUCE")
#: manifest section the builder writes
MANIFEST_SECTION = "tensorrt"

_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")
#: node types whose float32 outputs in an fp16 graph are not compute islands
_TYPE_PLUMBING = frozenset({"Cast", "Shape", "Constant", "ConstantOfShape", "Identity"})


# ---------------------------------------------------------------- precision plan (CPU)

@dataclass
class PrecisionPlan:
    """Which ONNX nodes run in float32 when the engine is fp16 / bf16, and why."""

    graph: str
    precision: str
    graph_dtype: str  # "float32" or "float16": the type of the graph's float weights
    fp32_nodes: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # node -> why it is pinned

    @property
    def reduced(self) -> bool:
        return self.precision != "fp32"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _graph_dtype(model: onnx.ModelProto) -> str:
    types = {t.data_type for t in model.graph.initializer}
    return "float16" if onnx.TensorProto.FLOAT16 in types else "float32"


def _float32_outputs(model: onnx.ModelProto) -> set[str]:
    """Tensors shape inference types as float32 (graph outputs included)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - graphs shape inference cannot type: no islands found
        return set()
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    return {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def plan_precision(model: onnx.ModelProto, precision: str, graph: str = "graph",
                   op_types: Iterable[str] = FP32_OP_TYPES) -> PrecisionPlan:
    """The float32 layers of an fp16/bf16 engine of ``model`` (nothing for fp32).

    Nodes are pinned by type (``op_types``) and, when the graph is already
    float16, where the ONNX conversion kept them in float32 (their outputs are
    typed float32)."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown TensorRT precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    plan = PrecisionPlan(graph, precision, _graph_dtype(model))
    if precision == "fp32":
        return plan
    op_types = set(op_types)
    islands = _float32_outputs(model) if plan.graph_dtype == "float16" else set()
    for node in model.graph.node:
        if node.op_type in op_types:
            reason = f"{node.op_type} overflows or loses accuracy in reduced precision"
        elif node.op_type not in _TYPE_PLUMBING and any(o in islands for o in node.output if o):
            reason = "kept in float32 by the fp16 ONNX export"
        else:
            continue
        if not node.name:
            raise ExportError(f"{graph}: a {node.op_type} node has no name, so it cannot be pinned to float32",
                              "re-export the graph (the exporters name every node)")
        plan.fp32_nodes.append(node.name)
        plan.reasons[node.name] = reason
    return plan


def layer_onnx_nodes(layer_name: str, metadata: str = "") -> set[str]:
    """ONNX node names a TensorRT layer comes from: its name (the parser names
    a node's main layer after it) and the ``[ONNX Layer: name]`` entries of
    its metadata (helper layers the parser adds carry them too)."""
    return {layer_name, *_ONNX_LAYER.findall(metadata or "")}


# ---------------------------------------------------------------- build (TensorRT)

@dataclass(frozen=True)
class TrtBuildOptions:
    """Everything a build needs besides the folder (the CLI's ``--trt-*`` options).

    ``timing_cache``: file loaded before and saved after each build (default
    ``trt/timing.cache`` in the folder); ``use_timing_cache=False`` builds without one. ``workspace_mb``: TensorRT's workspace pool limit (None:
    TensorRT's default, the device's memory). ``optimization_level``:
    ``builder_optimization_level`` 0-5 (None: TensorRT's default, 3)."""

    precision: str = "fp32"
    profile: ProfileOptions = ProfileOptions()
    timing_cache: str | None = None
    use_timing_cache: bool = True
    workspace_mb: int | None = None
    optimization_level: int | None = None
    graphs: tuple[str, ...] = ENGINE_GRAPHS

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ExportError(f"unknown TensorRT precision {self.precision!r}", f"use one of {', '.join(PRECISIONS)}")

    def graph_precision(self, graph: str) -> str:
        return "fp32" if graph in FP32_GRAPHS else self.precision


@dataclass
class EngineInfo:
    graph: str
    file: str
    precision: str  # requested
    typing: str  # "weak" (builder flags + constraints) or "strong" (types from the graph)
    profile: dict[str, Any]
    fp32_layers: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _weakly_typed(trt) -> bool:
    """TensorRT 10.x still has the precision builder flags; 11.x builds strongly typed only."""
    return hasattr(trt.BuilderFlag, "FP16") and hasattr(trt.BuilderFlag, "OBEY_PRECISION_CONSTRAINTS")


def _pin_layers(trt, network, plan: PrecisionPlan) -> int:
    """Set float32 precision and output types on the planned layers; returns how many."""
    names = set(plan.fp32_nodes)
    types = {getattr(trt.LayerType, t) for t in PINNED_LAYER_TYPES if hasattr(trt.LayerType, t)}
    floats = {trt.float32, trt.float16, getattr(trt, "bfloat16", trt.float16)}
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type not in types and not layer_onnx_nodes(layer.name, getattr(layer, "metadata", "")) & names:
            continue
        outputs = [j for j in range(layer.num_outputs) if layer.get_output(j).dtype in floats]
        if not outputs:
            continue  # shape and index layers stay as they are
        layer.precision = trt.float32
        for j in outputs:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def _check_precision_support(precision: str) -> None:
    if precision == "bf16":
        import torch  # CUDA's device query; torch is needed only where an engine is built

        major, minor = torch.cuda.get_device_capability()
        if (major, minor) < (8, 0):
            raise EngineUnavailableError(f"bf16 engines need compute capability 8.0 or newer (this GPU has "
                                         f"{major}.{minor})", "build with `precision=fp16` or in fp32",
                                         field="precision")


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    profile: GraphProfile,
    *,
    precision: str = "fp32",
    timing_cache: str | Path | None = None,
    workspace_mb: int | None = None,
    optimization_level: int | None = None,
    op_types: Iterable[str] = FP32_OP_TYPES,
) -> EngineInfo:
    """Build and serialize one engine. Raises :class:`EngineUnavailableError`
    without TensorRT or a CUDA device, :class:`ExportError` when parsing or
    building fails."""
    trt = require_tensorrt()
    _check_precision_support(precision)
    onnx_path, plan_path = Path(onnx_path), Path(plan_path)
    start = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    weak = _weakly_typed(trt)
    flags = 0 if weak else 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):  # reads external weights beside the file
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {'; '.join(errors[:5])}",
                          "run the readiness check (engines.build.trt_readiness) and re-export the graph")
    inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if inputs != set(profile.shapes):
        raise ExportError(f"{onnx_path.name} inputs {sorted(inputs)} differ from its profile {sorted(profile.shapes)}",
                          "the manifest does not match the graph: re-export the artifacts folder")

    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    trt_profile = builder.create_optimization_profile()
    for name, shape in profile.shapes.items():
        trt_profile.set_shape(name, shape.min, shape.opt, shape.max)
    config.add_optimization_profile(trt_profile)

    model = onnx.load(str(onnx_path), load_external_data=False)
    plan = plan_precision(model, precision, profile.graph, op_types)
    info = EngineInfo(profile.graph, str(plan_path), precision, "weak" if weak else "strong", profile.to_dict())
    if plan.reduced and weak:
        config.set_flag(trt.BuilderFlag.FP16 if precision == "fp16" else trt.BuilderFlag.BF16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        info.fp32_layers = _pin_layers(trt, network, plan)
    elif plan.reduced:
        wanted = {"fp16": "float16", "bf16": "bfloat16"}[precision]
        if plan.graph_dtype != wanted:
            note = (f"TensorRT {trt.__version__} builds strongly typed networks only: {onnx_path.name} is "
                    f"{plan.graph_dtype}, so this engine is {plan.graph_dtype}; export a {wanted} graph "
                    "(liteasr-export --fp16) to build it in reduced precision")
            info.notes.append(note)
            log.warning(note)

    cache_bytes = b""
    if timing_cache is not None and Path(timing_cache).is_file():
        cache_bytes = Path(timing_cache).read_bytes()
    if timing_cache is not None:
        config.set_timing_cache(config.create_timing_cache(cache_bytes), False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path.name} (see its log above)",
                          "check the readiness report, the GPU's free memory and the profile sizes")
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_bytes(memoryview(serialized))
    if timing_cache is not None:
        Path(timing_cache).parent.mkdir(parents=True, exist_ok=True)
        Path(timing_cache).write_bytes(memoryview(config.get_timing_cache().serialize()))
    info.seconds = round(time.perf_counter() - start, 2)
    return info


@dataclass
class TrtBuildReport:
    tensorrt_version: str
    device: str
    engines: dict[str, EngineInfo]

    def to_dict(self) -> dict[str, Any]:
        return {"tensorrt_version": self.tensorrt_version, "device": self.device,
                "engines": {g: asdict(e) for g, e in self.engines.items()}}


def build_engines(artifacts_dir: str | Path, options: TrtBuildOptions = TrtBuildOptions()) -> TrtBuildReport:
    """Build an engine for every graph of the folder (``options.graphs`` that
    it has), after the readiness check, and record them in the manifest's
    ``tensorrt`` section. The plans are specific to this GPU and TensorRT version."""
    import torch  # the GPU's name; torch is needed only where an engine is built

    trt = require_tensorrt()
    root = Path(artifacts_dir)
    manifest = load_manifest(root)
    graphs = [g for g in options.graphs if manifest.has_graph(g)]
    check_artifacts(root, options.profile, target=tensorrt_version(), graphs=graphs)
    profiles = manifest_profiles(manifest, options.profile, graphs)
    cache = None
    if options.use_timing_cache:
        cache = Path(options.timing_cache) if options.timing_cache else timing_cache_path(root)
    engines = {}
    for graph in graphs:
        info = build_engine(manifest.graph_path(graph), engine_path(root, graph), profiles[graph],
                            precision=options.graph_precision(graph), timing_cache=cache,
                            workspace_mb=options.workspace_mb, optimization_level=options.optimization_level)
        info.file = str(engine_path(root, graph).relative_to(root))
        engines[graph] = info
        log.info("built %s (%s, %d layers pinned to fp32) in %.1f s", info.file, info.precision, info.fp32_layers,
                 info.seconds)
    report = TrtBuildReport(trt.__version__, torch.cuda.get_device_name(), engines)
    update_manifest(root, **{MANIFEST_SECTION: report.to_dict()})
    return report
