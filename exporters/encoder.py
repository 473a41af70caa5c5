"""``encoder.onnx``: log-mel -> encoder hidden states and every decoder layer's
cross-attention K/V (computed once per window, which keeps decoder weights out
of the per-token graph), dense or low-rank.

The graph is written node by node from the weights (``onnx.helper``) rather
than traced: that gives direct control over the fused attention node, the
per-layer reduced attention (``exporters/reduced_attention.py``), node names
that the fp16 report can cite, and external data for models over 2 GB without
a tracing pass over a 600M-parameter model.

Interface (shared with the decoder graph and every runner):

* input ``input_features`` float32 ``(batch, n_mels, mel_frames)``, 3000
  mel frames for a 30 s window, fewer (even) for a trimmed audio context;
* output ``last_hidden_state`` float32 ``(batch, frames, d_model)``, with
  ``frames = mel_frames / 2`` (1500 for 30 s);
* outputs ``cross_key.{i}`` / ``cross_value.{i}`` float32
  ``(batch, decoder_heads, frames, head_dim)`` for every decoder layer ``i``:
  the decoder's ``encoder_attn.k_proj`` / ``v_proj`` applied to
  ``last_hidden_state``, heads split, not scaled.

Dynamic axes: batch, and the length (``mel_frames`` in, ``frames`` out; see
:mod:`liteasr_export.core.graphs`): the positional table is sliced to the
input's length, so 3000 frames compute what the fixed-length graph did. The
attention plan (reduced or standard per layer) is chosen for 30 s. With
``precision="fp16"`` the weights and compute are float16 but the inputs and
outputs stay float32 (casts at the boundary).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Literal

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from liteasr_export.core.errors import ExportError
from liteasr_export.core.graphs import MIN_OPSET, OPSETS, PRECISIONS, encoder_spec, graph_precision

from .precision import Fp16Report, Int8Report, convert_fp16, quantize_int8, save_onnx
from .reduced_attention import AttentionPlan, Factors, FoldedAttention, linear_factors, plan_encoder

log = logging.getLogger(__name__)

#: the standard fused ``Attention`` operator exists from opset 23 on
ATTENTION_OPSET = 23
DEFAULT_OPSET = OPSETS["encoder"]
#: fused attention operators, fastest first on ONNX Runtime's CPU provider
#: (measured by bench/encoder_latency.py; ``MultiHeadAttention`` is ONNX
#: Runtime's com.microsoft operator, ``Attention`` the standard opset-23 one)
FUSED_OPS: tuple[str, ...] = ("MultiHeadAttention", "Attention")
LAYER_NORM_EPS = 1e-5

AttentionMode = Literal["auto", "fused", "unfused"]


@dataclass
class EncoderExportInfo:
    """What was written and how; goes into the export report and manifest."""

    path: str
    opset: int
    attention: str  # "fused" or "unfused"
    fused_op: str | None
    precision: str  # "fp32", "fp16" or "int8"
    reduced_layers: list[int]
    plans: list[dict]
    external_data: bool
    inputs: list[str]
    outputs: list[str]
    notes: list[str] = field(default_factory=list)
    fp16: dict | None = None
    int8: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class _GraphBuilder:
    """Collects named nodes and initializers; every node gets a readable name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._consts: dict[tuple, str] = {}
        self.opsets: dict[str, int] = {}

    def weight(self, name: str, array: np.ndarray, dtype=np.float32) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=dtype), name))
        return name

    def ints(self, values: Iterable[int]) -> str:
        """A shared int64 constant (reshape shapes, repeats)."""
        key = tuple(int(v) for v in values)
        if key not in self._consts:
            self._consts[key] = self.weight(f"const.i64.{len(self._consts)}", np.array(key), np.int64)
        return self._consts[key]

    def node(self, op: str, inputs: list[str], name: str, output: str | None = None, domain: str = "", **attrs) -> str:
        out = output or f"{name}.out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, domain=domain or None, **attrs))
        if domain:
            self.opsets.setdefault(domain, 1)
        return out

    def linear(self, x: str, f: Factors, name: str, output: str | None = None) -> str:
        """A linear layer as one MatMul, or two for a low-rank one, plus the bias."""
        last = f.w2 is None and f.b is None
        y = self.node("MatMul", [x, self.weight(f"{name}.weight1" if f.w2 is not None else f"{name}.weight", f.w1)],
                      f"{name}.matmul1" if f.w2 is not None else f"{name}.matmul", output if last else None)
        if f.w2 is not None:
            y = self.node("MatMul", [y, self.weight(f"{name}.weight2", f.w2)], f"{name}.matmul2",
                          output if f.b is None else None)
        if f.b is not None:
            y = self.node("Add", [y, self.weight(f"{name}.bias", f.b)], f"{name}.add_bias", output)
        return y

    def layer_norm(self, x: str, ln, name: str, output: str | None = None) -> str:
        w = self.weight(f"{name}.weight", ln.weight.detach().numpy())
        b = self.weight(f"{name}.bias", ln.bias.detach().numpy())
        return self.node("LayerNormalization", [x, w, b], name, output, axis=-1, epsilon=float(ln.eps))


def _gelu(g: _GraphBuilder, x: str, name: str, opset: int, approximate: str = "none") -> str:
    if opset >= 20:
        return g.node("Gelu", [x], name, approximate=approximate)
    if approximate != "none":
        raise ExportError(f"tanh-approximated GELU needs opset >= 20 (got {opset})", "export with opset=20 or higher")
    # 0.5 x (1 + erf(x / sqrt 2)); ONNX Runtime fuses this pattern into one Gelu kernel
    half = g.weight(f"{name}.half", np.array(0.5))
    one = g.weight(f"{name}.one", np.array(1.0))
    root2 = g.weight(f"{name}.sqrt2", np.array(np.sqrt(2.0)))
    e = g.node("Erf", [g.node("Div", [x, root2], f"{name}.div")], f"{name}.erf")
    return g.node("Mul", [g.node("Mul", [x, half], f"{name}.mul_half"), g.node("Add", [e, one], f"{name}.add_one")], f"{name}.mul")


_ACTIVATIONS = {"gelu": "none", "gelu_new": "tanh", "gelu_fast": "tanh", "gelu_pytorch_tanh": "tanh"}


def _activation(g: _GraphBuilder, x: str, name: str, opset: int, kind: str) -> str:
    if kind == "relu":
        return g.node("Relu", [x], name)
    if kind not in _ACTIVATIONS:
        raise ExportError(f"unsupported encoder activation {kind!r}", f"use one of {', '.join([*_ACTIVATIONS, 'relu'])}")
    return _gelu(g, x, name, opset, _ACTIVATIONS[kind])


def _attention(g: _GraphBuilder, q: str, k: str, v: str, *, heads: int, kv_heads: int, qk_width: int,
               v_width: int, fused_op: str | None, name: str) -> str:
    """``softmax(q k^T) v`` per head (scale already folded into ``q``); inputs and
    output are ``(B, N, heads * width)`` (``kv_heads * width`` for k and v)."""
    if fused_op == "Attention":
        return g.node("Attention", [q, k, v], name, q_num_heads=heads, kv_num_heads=kv_heads, scale=1.0)
    if fused_op == "MultiHeadAttention":
        if kv_heads != heads:  # com.microsoft.MultiHeadAttention has no shared-key form: repeat the head
            repeats = g.ints([1, 1, heads // kv_heads])
            k = g.node("Tile", [k, repeats], f"{name}.tile_key")
            v = g.node("Tile", [v, repeats], f"{name}.tile_value")
        return g.node("MultiHeadAttention", [q, k, v], name, domain="com.microsoft", num_heads=heads, scale=1.0)
    if kv_heads == 1:
        # unfused multi-query: the heads move into the query rows, (B, H*N, r_k) @ (B, r_k, N) is one
        # plain batched GEMM (a broadcast (B,H,N,r) @ (B,1,r,N) MatMul measured slower on ORT CPU)
        qh = g.node("Transpose", [g.node("Reshape", [q, g.ints([0, 0, heads, qk_width])], f"{name}.q_split")],
                    f"{name}.q_heads", perm=[0, 2, 1, 3])
        qh = g.node("Reshape", [qh, g.ints([0, -1, qk_width])], f"{name}.q_rows")
        kt = g.node("Transpose", [k], f"{name}.k_transpose", perm=[0, 2, 1])
        p = g.node("Softmax", [g.node("MatMul", [qh, kt], f"{name}.scores")], f"{name}.softmax", axis=-1)
        o = g.node("Reshape", [g.node("MatMul", [p, v], f"{name}.context"), g.ints([0, heads, -1, v_width])],
                   f"{name}.context_heads")
        o = g.node("Transpose", [o], f"{name}.merge", perm=[0, 2, 1, 3])
        return g.node("Reshape", [o, g.ints([0, 0, heads * v_width])], f"{name}.merge_heads")
    # unfused: (B,H,N,w) @ (B,H,w,N) per head
    qh = g.node("Transpose", [g.node("Reshape", [q, g.ints([0, 0, heads, qk_width])], f"{name}.q_split")],
                f"{name}.q_heads", perm=[0, 2, 1, 3])
    kh = g.node("Transpose", [g.node("Reshape", [k, g.ints([0, 0, kv_heads, qk_width])], f"{name}.k_split")],
                f"{name}.k_heads", perm=[0, 2, 3, 1])
    vh = g.node("Transpose", [g.node("Reshape", [v, g.ints([0, 0, kv_heads, v_width])], f"{name}.v_split")],
                f"{name}.v_heads", perm=[0, 2, 1, 3])
    p = g.node("Softmax", [g.node("MatMul", [qh, kh], f"{name}.scores")], f"{name}.softmax", axis=-1)
    o = g.node("Transpose", [g.node("MatMul", [p, vh], f"{name}.context")], f"{name}.merge", perm=[0, 2, 1, 3])
    return g.node("Reshape", [o, g.ints([0, 0, heads * v_width])], f"{name}.merge_heads")


def _self_attention(g: _GraphBuilder, x: str, attn, folded: FoldedAttention | None, fused_op: str | None,
                    name: str) -> str:
    heads = attn.num_heads
    if folded is not None:  # reduced: H query heads of width r_k against one shared key and value head
        q = g.linear(x, folded.query, f"{name}.query_reduced")
        k = g.linear(x, folded.key, f"{name}.key_reduced")
        v = g.linear(x, folded.value, f"{name}.value_reduced")
        o = _attention(g, q, k, v, heads=heads, kv_heads=1, qk_width=folded.key_rank, v_width=folded.value_rank,
                       fused_op=fused_op, name=f"{name}.attention")
        return g.linear(o, folded.out, f"{name}.out_folded")
    head_dim = attn.head_dim
    q = g.linear(x, linear_factors(attn.q_proj).scaled(head_dim**-0.5), f"{name}.q_proj")
    k = g.linear(x, linear_factors(attn.k_proj), f"{name}.k_proj")
    v = g.linear(x, linear_factors(attn.v_proj), f"{name}.v_proj")
    o = _attention(g, q, k, v, heads=heads, kv_heads=heads, qk_width=head_dim, v_width=head_dim,
                   fused_op=fused_op, name=f"{name}.attention")
    return g.linear(o, linear_factors(attn.out_proj), f"{name}.out_proj")


def attention_graph(heads: int, kv_heads: int, qk_width: int, v_width: int, fused_op: str | None,
                    opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """One attention node (or its unfused form) alone: inputs ``q, k, v``
    ``(batch, frames, heads*width)``, output ``(batch, frames, heads*v_width)``.
    Used to ask the runtime whether it supports an operator, and by benchmarks."""
    g = _GraphBuilder()
    _attention(g, "q", "k", "v", heads=heads, kv_heads=kv_heads, qk_width=qk_width, v_width=v_width,
               fused_op=fused_op, name="attention")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "frames", w])
          for n, w in (("q", heads * qk_width), ("k", kv_heads * qk_width), ("v", kv_heads * v_width))]
    out = helper.make_tensor_value_info(g.nodes[-1].output[0], TensorProto.FLOAT, None)
    graph = helper.make_graph(g.nodes, "attention", io, [out], g.initializers)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in g.opsets.items()]
    return helper.make_model(graph, opset_imports=opsets, ir_version=10)


@lru_cache(maxsize=None)
def fused_op_problem(op: str, opset: int) -> str | None:
    """Why ``op`` cannot be used at ``opset`` on this ONNX Runtime (CPU), or None.

    The check runs a tiny shared-key attention and compares it with the
    unfused form, so "supported" means "runs and is correct"."""
    if op == "Attention" and opset < ATTENTION_OPSET:
        return f"the standard Attention operator needs opset >= {ATTENTION_OPSET} (export uses {opset})"
    import onnxruntime as ort  # on first use: importing onnxruntime writes a cache folder

    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal((1, 5, w)).astype(np.float32) for n, w in (("q", 8), ("k", 4), ("v", 8))}
    try:
        fused = ort.InferenceSession(attention_graph(2, 1, 4, 8, op, opset).SerializeToString(),
                                     providers=["CPUExecutionProvider"])
        reference = ort.InferenceSession(attention_graph(2, 1, 4, 8, None, max(opset, MIN_OPSET)).SerializeToString(),
                                         providers=["CPUExecutionProvider"])
        diff = np.abs(fused.run(None, feeds)[0] - reference.run(None, feeds)[0]).max()
    except Exception as exc:  # ORT raises its own exception types (NotImplemented, Fail, ...)
        return f"onnxruntime {ort.__version__} cannot run {op} with a shared key head ({str(exc).splitlines()[0]})"
    if not diff < 1e-5:
        return f"onnxruntime {ort.__version__} computes {op} with a shared key head wrongly (max diff {diff:.2e})"
    return None


def resolve_attention(attention: AttentionMode, opset: int, fused_op: str | None = None) -> tuple[str | None, list[str]]:
    """The fused operator to use (None: unfused) and notes on any fallback."""
    if attention not in ("auto", "fused", "unfused"):
        raise ExportError(f"unknown attention mode {attention!r}", "use auto, fused or unfused")
    if attention == "unfused":
        return None, []
    if fused_op is not None and fused_op not in FUSED_OPS:
        raise ExportError(f"unknown fused attention operator {fused_op!r}", f"use one of {', '.join(FUSED_OPS)}")
    problems = []
    for op in [fused_op] if fused_op else FUSED_OPS:
        problem = fused_op_problem(op, opset)
        if problem is None:
            return op, []
        problems.append(problem)
    note = "fused attention unavailable, using MatMul-Softmax-MatMul: " + "; ".join(problems)
    if attention == "fused":
        log.warning(note)
    return None, [note]


def _positions(g: _GraphBuilder, frames: str, table: np.ndarray, config) -> str:
    """The positional table's first ``T`` rows, ``T`` read from ``frames``
    ``(B, T, d)``: a shorter input (an audio context under 30 s) takes the
    first positions, as whisper.cpp and sherpa-onnx do. A Slice copies the
    rows unchanged, so 3000 mel frames add exactly the table they always did."""
    length = g.node("Shape", [frames], "stem.frames", start=1, end=2)
    table = g.weight("embed_positions", table[: config.max_source_positions])
    return g.node("Slice", [table, g.ints([0]), length, g.ints([0])], "stem.positions")


def build_encoder_graph(model, *, opset: int = DEFAULT_OPSET, fused_op: str | None = None,
                        reduced_attention: bool = True) -> tuple[onnx.ModelProto, list[AttentionPlan]]:
    """The float32 encoder graph of a (possibly low-rank) ``WhisperForConditionalGeneration``."""
    config = model.config
    encoder = model.get_encoder()
    decoder = model.get_decoder()
    spec = encoder_spec(config)
    g = _GraphBuilder()
    act = config.activation_function

    x = spec.inputs[0].name
    stem_act = "gelu"  # the conv stem uses exact GELU whatever the config says
    for i, conv in enumerate((encoder.conv1, encoder.conv2), start=1):
        w = g.weight(f"conv{i}.weight", conv.weight.detach().numpy())
        b = g.weight(f"conv{i}.bias", conv.bias.detach().numpy())
        x = g.node("Conv", [x, w, b], f"conv{i}", kernel_shape=[conv.kernel_size[0]], pads=[conv.padding[0]] * 2,
                   strides=[conv.stride[0]])
        x = _activation(g, x, f"conv{i}.gelu", opset, stem_act)
    x = g.node("Transpose", [x], "stem.to_frames", perm=[0, 2, 1])
    positions = _positions(g, x, encoder.embed_positions.weight.detach().numpy(), config)
    h = g.node("Add", [x, positions], "stem.add_positions")
    # Every addend of the residual stream is declared (batch, frames, d_model): shape inference loses the
    # length in reshapes (-1), and ONNX Runtime fuses an Add into the next norm (SkipLayerNormalization)
    # only when its inputs' shapes agree, as they did when every length was 1500. With the same fusions,
    # 30 s stays bit-for-bit what the fixed-length graph computed.
    frames, d_model = spec.outputs[0].shape[1:]
    shapes = [helper.make_tensor_value_info(positions, TensorProto.FLOAT, [frames, d_model])]
    stream = lambda *names: shapes.extend(  # noqa: E731
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", frames, d_model]) for n in names)
    stream(x, h)

    plans = plan_encoder(model, config.max_source_positions)
    for i, (layer, (_, folded)) in enumerate(zip(encoder.layers, plans)):
        p = f"layers.{i}"
        a = g.layer_norm(h, layer.self_attn_layer_norm, f"{p}.self_attn_layer_norm")
        a = _self_attention(g, a, layer.self_attn, folded if reduced_attention else None, fused_op, f"{p}.self_attn")
        h = g.node("Add", [h, a], f"{p}.residual_attn")
        f = g.layer_norm(h, layer.final_layer_norm, f"{p}.final_layer_norm")
        f = _activation(g, g.linear(f, linear_factors(layer.fc1), f"{p}.fc1"), f"{p}.activation", opset, act)
        f = g.linear(f, linear_factors(layer.fc2), f"{p}.fc2")
        stream(a, h, f)
        h = g.node("Add", [h, f], f"{p}.residual_ffn")
        stream(h)
    out_name = spec.outputs[0].name
    h = g.layer_norm(h, encoder.layer_norm, "layer_norm", out_name)

    heads = config.decoder_attention_heads
    head_dim = config.d_model // heads
    for i, layer in enumerate(decoder.layers):
        for kind, proj in (("key", layer.encoder_attn.k_proj), ("value", layer.encoder_attn.v_proj)):
            name = f"decoder.{i}.cross_{kind}"
            y = g.linear(h, linear_factors(proj), name)
            y = g.node("Reshape", [y, g.ints([0, 0, heads, head_dim])], f"{name}.split_heads")
            g.node("Transpose", [y], f"{name}.heads_first", f"cross_{kind}.{i}", perm=[0, 2, 1, 3])

    graph = helper.make_graph(g.nodes, "whisper_encoder", [t.value_info() for t in spec.inputs],
                              [t.value_info() for t in spec.outputs], value_info=shapes)
    opsets = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in g.opsets.items()]
    onnx_model = helper.make_model(graph, opset_imports=opsets, producer_name="liteasr-export")
    onnx_model.ir_version = min(onnx_model.ir_version, 10)  # readable by ONNX Runtime 1.20+
    # move the weights in one at a time: protobuf copies on insert, and large-v3 holds 3 GB of them
    g.initializers.reverse()
    while g.initializers:
        onnx_model.graph.initializer.append(g.initializers.pop())
    return onnx_model, [p for p, _ in plans]


def export_encoder(
    model,
    path: str | Path,
    *,
    attention: AttentionMode = "auto",
    fused_op: str | None = None,
    opset: int = DEFAULT_OPSET,
    reduced_attention: bool = True,
    precision: str = "fp32",
    calibration_features: Iterable[np.ndarray] | None = None,
) -> EncoderExportInfo:
    """Write ``encoder.onnx`` (plus ``encoder.onnx.data`` when over 2 GB).

    ``attention``: "auto"/"fused" use a fused attention node where this
    ONNX Runtime runs one (``fused_op`` forces which); "fused" warns when it
    has to fall back to MatMul-Softmax-MatMul, "unfused" always writes that.
    ``reduced_attention``: run attention in the reduced dimension in the
    layers where it saves multiply-adds. ``precision`` (the export's, see
    :data:`liteasr_export.core.graphs.GRAPH_PRECISION`): ``fp16`` writes float16
    weights and compute with fp32 islands; ``calibration_features`` (log-mel
    batches ``(B, n_mels, 3000)``) are run through the float32 graph to find
    nodes whose outputs would overflow float16. ``int8``: dynamic int8
    quantization of the MatMuls. ``bf16`` (TensorRT's) writes float32.
    """
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old for the encoder graph",
                          f"export with opset={MIN_OPSET} or newer (liteasr-export uses {DEFAULT_OPSET})")
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}", f"use one of {', '.join(PRECISIONS)}")
    precision = graph_precision(precision, "encoder")
    fp16, int8 = precision == "fp16", precision == "int8"
    model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    op, notes = resolve_attention(attention, opset, fused_op)
    with torch.no_grad():
        onnx_model, plans = build_encoder_graph(model, opset=opset, fused_op=op, reduced_attention=reduced_attention)
    reduced = [p.layer for p in plans if p.kind == "reduced"] if reduced_attention else []
    fp16_report: Fp16Report | None = None
    int8_report: Int8Report | None = None
    if fp16:
        feeds = None
        if calibration_features is not None:
            feeds = ({"input_features": np.asarray(f, dtype=np.float32)} for f in calibration_features)
        else:
            notes.append("fp16: no calibration features given, overflow not checked on activations")
        fp16_report = convert_fp16(onnx_model, path, feeds=feeds)
        external = fp16_report.external_data
    elif int8:
        fp32_path = path.with_name(path.stem + ".fp32.onnx")
        save_onnx(onnx_model, fp32_path)
        # The second factor's MatMul reads the rank-r activation, whose few
        # channels carry all the signal: quantizing it per tensor cost tiny.en
        # 4.8 WER points for no speed (bench/e2e_vs_faster_whisper.py), so it
        # stays float; per-channel weights handle Whisper's outlier channels.
        rank_space = [n.name for n in onnx_model.graph.node if n.name.endswith(".matmul2")]
        del onnx_model
        int8_report = quantize_int8(fp32_path, path, per_channel=True, exclude_nodes=rank_space)
        for stale in (fp32_path, fp32_path.with_name(fp32_path.name + ".data")):
            stale.unlink(missing_ok=True)
        external = int8_report.external_data
    else:
        external = save_onnx(onnx_model, path)
    spec = encoder_spec(model.config)
    return EncoderExportInfo(
        path=str(path),
        opset=opset,
        attention="fused" if op else "unfused",
        fused_op=op,
        precision=precision,
        reduced_layers=reduced,
        plans=[asdict(p) for p in plans],
        external_data=external,
        inputs=[t.name for t in spec.inputs],
        outputs=[t.name for t in spec.outputs],
        notes=notes,
        fp16=fp16_report.to_dict() if fp16_report else None,
        int8=int8_report.to_dict() if int8_report else None,
    )
