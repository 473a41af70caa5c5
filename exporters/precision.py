"""Reduced precision for any exported graph (encoder, decoder, ...).

* :func:`convert_fp16`: float16 weights and compute with float32 islands. The
  islands are the overflow-prone operator types (:data:`FP32_OP_TYPES`:
  LayerNorm, Softmax, reductions, exp/log/pow) plus every node whose float32
  activations, measured on real inputs, come within ``headroom`` of float16's
  range (:func:`activation_maxima`). Graph inputs and outputs stay float32.
  The conversion itself is ONNX Runtime's ``onnxruntime.transformers.float16``.
* :func:`quantize_int8`: ONNX Runtime dynamic quantization of the MatMuls
  that have a constant weight (activation x activation products, e.g.
  attention scores, stay float).
* :func:`save_onnx`: save with external data when the graph is over 2 GB.

No torch import: usable on the ONNX Runtime side.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import onnx

from liteasr_export.core.errors import ExportError
from liteasr_export.core.graphs import FP32_OP_TYPES

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
#: protobuf cannot serialize a message of 2 GiB or more: above this, weights go to a .data file
EXTERNAL_DATA_BYTES = 1_800_000_000
Feeds = Mapping[str, np.ndarray]


def _initializer_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) or onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)


def save_onnx(model: onnx.ModelProto, path: str | Path, external: bool | None = None) -> bool:
    """Save ``model``; weights go to ``<name>.data`` beside it when the graph is
    too large for one protobuf (or ``external=True``). Returns whether they did."""
    path = Path(path)
    data = path.with_name(path.name + ".data")
    data.unlink(missing_ok=True)  # onnx appends to an existing data file
    if external is None:
        external = _initializer_bytes(model) > EXTERNAL_DATA_BYTES
    if external:
        onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data.name, size_threshold=1024)
    else:
        onnx.save_model(model, str(path))
    return external


def _session(model: onnx.ModelProto, workdir: Path, optimize: bool = False):
    import onnxruntime as ort  # on first use: importing onnxruntime writes a cache folder

    options = ort.SessionOptions()
    if not optimize:  # keep every node (and its output name) as written
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if _initializer_bytes(model) > EXTERNAL_DATA_BYTES:
        path = workdir / "model.onnx"
        save_onnx(model, path, external=True)
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def activation_maxima(model: onnx.ModelProto, feeds: Iterable[Feeds], outputs_per_run: int = 256) -> dict[str, float]:
    """Largest absolute value of every float tensor a node outputs, over all
    ``feeds`` (``inf`` where a value is not finite), keyed by tensor name.

    Node outputs are exposed as extra graph outputs, ``outputs_per_run`` at a
    time so that large graphs need not hold every activation at once."""
    feeds = list(feeds)
    if not feeds:
        raise ExportError("no inputs to measure activations on", "pass at least one calibration sample")
    producer = {out: node.name for node in model.graph.node for out in node.output if out}
    graph_outputs = {o.name for o in model.graph.output}
    names = [n for n in producer if n not in graph_outputs]
    maxima: dict[str, float] = {}
    original = list(model.graph.output)
    with tempfile.TemporaryDirectory() as tmp:
        for start in range(0, max(len(names), 1), outputs_per_run):
            chunk = names[start : start + outputs_per_run]
            del model.graph.output[:]
            model.graph.output.extend(original + [onnx.ValueInfoProto(name=n) for n in chunk])
            try:
                session = _session(model, Path(tmp))
            finally:
                del model.graph.output[:]
                model.graph.output.extend(original)
            wanted = [o.name for o in original] + chunk if start == 0 else chunk
            for feed in feeds:
                for name, value in zip(wanted, session.run(wanted, dict(feed))):
                    if value.dtype.kind != "f" or value.size == 0:
                        continue
                    peak = float(np.abs(value).max()) if np.isfinite(value).all() else float("inf")
                    maxima[name] = max(maxima.get(name, 0.0), peak)
            del session
    return maxima


def _merge_fp32_islands(model: onnx.ModelProto) -> int:
    """Drop float32 -> float16 -> float32 round trips between neighbouring float32
    nodes (ONNX Runtime's converter casts every blocked node's output down and
    back up, which would clip a value the islands exist to keep). Returns the
    number of Cast pairs removed."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    def cast_to(node: onnx.NodeProto) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    removed, rename = set(), {}
    for node in graph.node:
        if cast_to(node) != onnx.TensorProto.FLOAT16 or node.output[0] in outputs:
            continue
        ups = readers.get(node.output[0], [])
        if ups and all(cast_to(up) == onnx.TensorProto.FLOAT and up.output[0] not in outputs for up in ups):
            removed.update(id(n) for n in [node, *ups])
            rename.update({up.output[0]: node.input[0] for up in ups})
    kept = [n for n in graph.node if id(n) not in removed]
    for node in kept:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    del graph.node[:]
    graph.node.extend(kept)
    return len(rename)


@dataclass
class Fp16Report:
    """What stayed float32 and why."""

    fp32_op_types: list[str]
    fp32_nodes: list[str]  # every node kept in float32 (by type, or producing or reading an overflowing tensor)
    overflow_nodes: dict[str, float]  # node -> float32 max |output| that put it (and its readers) in float32
    checked_samples: int
    headroom: float
    external_data: bool
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # fp16 vs fp32 outputs on the samples
    finite: bool | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def convert_fp16(
    model: onnx.ModelProto,
    path: str | Path,
    *,
    feeds: Iterable[Feeds] | None = None,
    fp32_op_types: Iterable[str] = FP32_OP_TYPES,
    keep_nodes: Iterable[str] = (),
    headroom: float = 2.0,
    verify: bool = True,
) -> Fp16Report:
    """Write a float16 copy of a float32 graph to ``path`` with float32 islands.

    ``feeds``: real inputs (e.g. calibration log-mels) run through the float32
    graph; a node whose outputs reach ``FP16_MAX / headroom`` stays float32.
    With ``verify``, the float16 graph is run on the same inputs and its
    outputs compared with float32's (``max_abs_diff``, ``finite``).
    ``model`` is not modified."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel  # on first use: importing onnxruntime writes a cache folder

    feeds = list(feeds) if feeds is not None else []
    op_types = list(dict.fromkeys(fp32_op_types))
    overflow: dict[str, float] = {}
    blocked_nodes = set(keep_nodes)
    if feeds:
        # a tensor near float16's limit keeps both its producer and its readers in float32
        big = {t: m for t, m in activation_maxima(model, feeds).items() if not m * headroom < FP16_MAX}
        for node in model.graph.node:
            produced = [big[t] for t in node.output if t in big]
            if produced:
                overflow[node.name] = max(produced)
            if produced or any(t in big for t in node.input):
                blocked_nodes.add(node.name)
    unnamed = [n for n in model.graph.node if not n.name]
    if unnamed:
        raise ExportError(f"{len(unnamed)} nodes have no name", "name every node before fp16 conversion")
    fp32_nodes = [n.name for n in model.graph.node if n.op_type in op_types or n.name in blocked_nodes]

    with tempfile.TemporaryDirectory() as tmp:
        source: onnx.ModelProto | str = model
        if _initializer_bytes(model) > EXTERNAL_DATA_BYTES:  # in-memory shape inference cannot pass 2 GB
            source = str(Path(tmp) / "fp32.onnx")
            save_onnx(model, source, external=True)
        else:
            source = onnx.ModelProto()
            source.CopyFrom(model)
        converted = convert_float_to_float16(
            source,
            keep_io_types=True,
            op_block_list=list(DEFAULT_OP_BLOCK_LIST) + op_types,
            node_block_list=sorted(blocked_nodes),
        )
    _merge_fp32_islands(converted)
    OnnxModel.graph_topological_sort(converted.graph)  # the converter appends its casts at the end
    external = save_onnx(converted, path)
    report = Fp16Report(op_types, fp32_nodes, overflow, len(feeds), headroom, external)
    if verify and feeds:
        with tempfile.TemporaryDirectory() as tmp:
            reference, half = _session(model, Path(tmp), optimize=True), _session(converted, Path(tmp), optimize=True)
            names = [o.name for o in model.graph.output]
            for feed in feeds:
                for name, a, b in zip(names, reference.run(names, dict(feed)), half.run(names, dict(feed))):
                    diff = float(np.abs(a.astype(np.float64) - b).max()) if np.isfinite(b).all() else float("inf")
                    report.max_abs_diff[name] = max(report.max_abs_diff.get(name, 0.0), diff)
        report.finite = all(np.isfinite(v) for v in report.max_abs_diff.values())
    return report


@dataclass
class Int8Report:
    quantized_matmuls: int
    float_matmuls: list[str]  # activation x activation products left in float
    per_channel: bool
    external_data: bool

    def to_dict(self) -> dict:
        return asdict(self)


def quantize_int8(
    source: str | Path,
    path: str | Path,
    *,
    per_channel: bool = False,
    exclude_nodes: Iterable[str] = (),
) -> Int8Report:
    """Dynamic int8 quantization (int8 weights, uint8 activations quantized at
    run time) of every MatMul with a constant weight, for ONNX Runtime's CPU
    provider. ``source`` is a saved float32 graph (it may use external data)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # on first use: importing onnxruntime writes a cache folder

    source, path = Path(source), Path(path)
    model = onnx.load(str(source), load_external_data=False)
    constants = {t.name for t in model.graph.initializer}
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    float_matmuls = [n.name for n in matmuls if not any(i in constants for i in n.input)]
    excluded = set(exclude_nodes) | set(float_matmuls)
    external = source.with_name(source.name + ".data").exists() or source.stat().st_size > EXTERNAL_DATA_BYTES
    path.with_name(path.name + ".data").unlink(missing_ok=True)
    quantize_dynamic(
        source,
        path,
        op_types_to_quantize=["MatMul"],
        per_channel=per_channel,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=sorted(excluded),
        use_external_data_format=external,
        # contrib operators (com.microsoft) stop ONNX shape inference: their outputs are float
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return Int8Report(
        quantized_matmuls=len([n for n in matmuls if n.name not in excluded]),
        float_matmuls=float_matmuls,
        per_channel=per_channel,
        external_data=external,
    )
