"""CPU-only TensorRT readiness check of an ONNX graph.

TensorRT cannot run here, so everything its ONNX parser would reject is
checked from the graph itself, before any engine is built (and on every
``--engine trt`` export):

* opset of the default domain between :data:`MIN_OPSET` (LayerNormalization
  is one node from 17 on) and the newest opset the target TensorRT parses;
* no ``If`` / ``Loop`` / ``Scan`` anywhere (the project's graphs are written
  without control flow: TensorRT cannot build the merged-decoder ``If``
  graph, and data-dependent loops defeat its optimizer);
* every operator in :data:`TRT_SUPPORTED_OPS` (no custom domains such as
  ``com.microsoft``, which need plugins), new enough for the target version,
  with the restrictions TensorRT documents for ``Attention``;
* input dtypes TensorRT accepts, and every dynamic input dimension covered by
  an optimization profile (:mod:`engines.build.trt_profiles`).

onnx only (no tensorrt, no torch).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import onnx

from liteasr_export.core.errors import ExportError
from liteasr_export.core.graphs import MIN_OPSET
from liteasr_export.core.manifest import load_manifest

from .trt_profiles import DimRange, ProfileOptions, axis_ranges, uncovered_dims

#: control flow the project's graphs must not contain
CONTROL_FLOW_OPS = frozenset({"If", "Loop", "Scan"})
#: the TensorRT version the operator table below describes
REFERENCE_VERSION = (10, 15)
#: newest default-domain opset each TensorRT parses (operators.md headers:
#: "TensorRT 10.0 supports ... opset 9 to opset 20", 10.15: "... to opset 24")
MAX_OPSET = {(10, 0): 20, (10, 15): 24}

# Operators marked "Y" in onnx-tensorrt's docs/operators.md for TensorRT 10.15
# (github.com/onnx/onnx-tensorrt, docs/operators.md, "Operator Support Matrix").
# Operators marked "N" there (e.g. DFT, MatMulInteger, DynamicQuantizeLinear,
# Sequence*, Optional*, Unique, the String* operators) are absent.
TRT_SUPPORTED_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool
BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape
Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu
Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization
GRU HammingWindow HannWindow HardSigmoid HardSwish Hardmax Identity If ImageScaler
InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax
Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish
Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal
ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum
ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign RotaryEmbedding
Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid Sign Sin
Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())

#: operators newer than TensorRT 10.0's parser (NVIDIA/TensorRT CHANGELOG.md:
#: 10.14 "Added support for the Attention operator"; onnx-tensorrt Changelog
#: 10.15: RotaryEmbedding, RMSNormalization, TensorScatter)
OP_SINCE: dict[str, tuple[int, int]] = {
    "Attention": (10, 14),
    "RMSNormalization": (10, 15),
    "RotaryEmbedding": (10, 15),
    "TensorScatter": (10, 15),
}

#: input element types TensorRT accepts at engine I/O
TRT_INPUT_TYPES = frozenset({
    onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.INT32,
    onnx.TensorProto.INT64, onnx.TensorProto.BOOL, onnx.TensorProto.UINT8, onnx.TensorProto.INT8,
})


def max_opset(version: tuple[int, int]) -> int:
    """Newest opset TensorRT ``version`` parses (the nearest documented one below it)."""
    known = [v for v in MAX_OPSET if v <= tuple(version)]
    return MAX_OPSET[max(known)] if known else min(MAX_OPSET.values())


@dataclass
class ReadinessReport:
    """Why a graph would not build with TensorRT (``problems``), and what is
    worth knowing but does not stop a build (``notes``)."""

    graph: str
    target: tuple[int, int]
    opset: int | None
    op_counts: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_problems(self) -> "ReadinessReport":
        if self.problems:
            raise ExportError(
                f"{self.graph} is not ready for TensorRT {'.'.join(map(str, self.target))}: "
                + "; ".join(self.problems),
                "export for TensorRT with --engine trt (unfused attention, opset >= 17, no custom operators)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"graph": self.graph, "target": ".".join(map(str, self.target)), "opset": self.opset,
                "ok": self.ok, "problems": self.problems, "notes": self.notes, "op_counts": self.op_counts}


def _all_nodes(graph: onnx.GraphProto, path: str = "") -> Iterable[tuple[str, onnx.NodeProto]]:
    """Every node, including those inside subgraph attributes (If branches, Loop bodies)."""
    for node in graph.node:
        yield path, node
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subgraphs:
                yield from _all_nodes(sub, f"{path}{node.name or node.op_type}/")


def _ranks(model: onnx.ModelProto) -> dict[str, int]:
    """Rank of every tensor shape inference can tell (inputs, outputs, values)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - custom domains or odd graphs: rank checks are then skipped
        inferred = model
    values = list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


def _attention_problems(node: onnx.NodeProto, ranks: Mapping[str, int]) -> list[str]:
    """TensorRT's documented restrictions of the standard ``Attention`` operator."""
    problems = []
    q_rank = ranks.get(node.input[0]) if node.input else None
    if q_rank is not None and q_rank != 4:
        problems.append(f"Attention node {node.name!r} has {q_rank}-D inputs: TensorRT takes only 4-D Q/K/V "
                        "(heads as the second dimension, not q_num_heads/kv_num_heads)")
    if any(node.input[i] for i in range(4, len(node.input))):
        problems.append(f"Attention node {node.name!r} uses past_key/past_value/nonpad_kv_seqlen inputs, "
                        "which TensorRT does not support")
    if len([o for o in node.output if o]) > 1:
        problems.append(f"Attention node {node.name!r} uses present/qk outputs, which TensorRT does not support")
    return problems


def check_model(
    model: onnx.ModelProto,
    graph: str = "graph",
    *,
    ranges: Mapping[str, DimRange] | None = None,
    target: tuple[int, int] = REFERENCE_VERSION,
) -> ReadinessReport:
    """Check an in-memory graph (external weights need not be loaded).

    ``ranges``: the profile axis ranges (:func:`engines.build.trt_profiles.axis_ranges`);
    None skips the dynamic-dimension check. ``target``: the TensorRT version
    (major, minor) that will parse the graph."""
    target = tuple(target)[:2]
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = opsets.get("ai.onnx")
    report = ReadinessReport(graph, target, opset)
    newest = max_opset(target)
    if opset is None:
        report.problems.append("no default-domain opset import")
    elif opset < MIN_OPSET:
        report.problems.append(f"opset {opset} < {MIN_OPSET} (LayerNormalization must be one node)")
    elif opset > newest:
        report.problems.append(f"opset {opset} is newer than TensorRT {target[0]}.{target[1]} parses "
                               f"(up to {newest})")

    counts: Counter[str] = Counter()
    ranks: dict[str, int] | None = None
    for path, node in _all_nodes(model.graph):
        domain = node.domain or "ai.onnx"
        key = node.op_type if domain in ("ai.onnx", "") else f"{domain}.{node.op_type}"
        counts[key] += 1
        where = f"{path}{node.name or '(unnamed)'}"
        if node.op_type in CONTROL_FLOW_OPS and domain == "ai.onnx":
            report.problems.append(f"control flow node {node.op_type} {where!r}: the graph must be free of "
                                   "If/Loop/Scan")
        elif domain != "ai.onnx":
            report.problems.append(f"{key} ({where!r}) is a custom-domain operator TensorRT's ONNX parser "
                                   "does not import (it would need a plugin)")
        elif node.op_type not in TRT_SUPPORTED_OPS:
            report.problems.append(f"{node.op_type} ({where!r}) is not supported by TensorRT's ONNX parser")
        elif node.op_type in OP_SINCE and target < OP_SINCE[node.op_type]:
            since = ".".join(map(str, OP_SINCE[node.op_type]))
            report.problems.append(f"{node.op_type} ({where!r}) needs TensorRT >= {since}")
        if node.op_type == "Attention" and domain == "ai.onnx":
            if ranks is None:
                ranks = _ranks(model)
            report.problems.extend(_attention_problems(node, ranks))
    report.op_counts = dict(sorted(counts.items()))

    initializers = {i.name for i in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    for value in inputs:
        elem = value.type.tensor_type.elem_type
        if elem not in TRT_INPUT_TYPES:
            report.problems.append(f"input {value.name!r} has type {onnx.TensorProto.DataType.Name(elem)}, "
                                   "which TensorRT does not accept at engine I/O")
    if ranges is not None:
        records = [{"name": v.name, "shape": [d.dim_param if d.dim_param else d.dim_value
                                              for d in v.type.tensor_type.shape.dim]} for v in inputs]
        for dim in uncovered_dims(records, ranges):
            report.problems.append(f"dynamic dimension {dim} is not covered by an optimization profile")
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        report.notes.append("weights are in an external data file: keep it beside the .onnx when building")
    return report


def check_graph(path: str | Path, model_dims: Mapping[str, Any] | None = None, *,
                options: ProfileOptions = ProfileOptions(), target: tuple[int, int] = REFERENCE_VERSION,
                graph: str | None = None) -> ReadinessReport:
    """Check an ONNX file (weights stay on disk). ``model_dims`` (the
    manifest's ``model`` section) enables the profile-coverage check."""
    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    ranges = axis_ranges(model_dims, options) if model_dims is not None else None
    return check_model(model, graph or path.stem, ranges=ranges, target=target)


def check_artifacts(artifacts_dir: str | Path, options: ProfileOptions = ProfileOptions(), *,
                    target: tuple[int, int] = REFERENCE_VERSION, raise_on_problems: bool = True,
                    graphs: Iterable[str] | None = None) -> dict[str, ReadinessReport]:
    """Check every graph of an artifacts folder; with ``raise_on_problems``
    an :class:`ExportError` lists the problems of every failing graph."""
    manifest = load_manifest(artifacts_dir)
    names = list(graphs) if graphs is not None else list(manifest.data["graphs"])
    reports = {g: check_graph(manifest.graph_path(g), manifest.model, options=options, target=target, graph=g)
               for g in names}
    failing = [r for r in reports.values() if not r.ok]
    if raise_on_problems and failing:
        version = ".".join(map(str, target))
        raise ExportError(
            f"graphs not ready for TensorRT {version}: "
            + " | ".join(f"{r.graph}: " + "; ".join(r.problems[:5]) + (" ..." if len(r.problems) > 5 else "")
                         for r in failing),
            "re-export with `engine=trt` (it writes unfused attention and no custom operators), "
            "or use `engine=onnx` for this folder")
    return reports
