"""``decoder.onnx``: one Whisper decoder graph for the first and every later step.

Inputs: ``input_ids`` (batch, tokens) int64; per decoder layer i
``past_key.{i}`` / ``past_value.{i}`` (batch, heads, past, head_dim) with
``past`` possibly 0, and ``cross_key.{i}`` / ``cross_value.{i}`` (windows,
heads, frames, head_dim) from ``encoder.onnx``. Outputs: ``logits`` (batch,
tokens, vocab) and ``present_key.{i}`` / ``present_value.{i}`` (batch, heads,
past + tokens, head_dim). Positions and the causal mask come from the past
length inside the graph, so there is no ``If`` node (TensorRT cannot build the
merged-decoder ``If`` graph of optimum's export).

The graph is traced from Hugging Face's own decoder: the explicit tensors are
wrapped into an ``EncoderDecoderCache`` whose cross-attention part is already
filled, which makes HF reuse the given cross K/V instead of projecting encoder
states. The decoder is never factorized, so this graph is the same for dense
and compressed models.

Rows share their window's cross K/V: ``batch`` is a multiple of ``windows``
and row ``r`` attends to window ``r // (batch / windows)``, so the beams (or
samples) of a window read one copy instead of one each. Cross K/V are what a
decoder step reads per row (tiny.en: 18 MB; the 80 MB vocabulary projection
is read once for all rows), so beam 5 over 8 windows reads 147 MB of them
per step instead of 737 MB. With as many windows as rows (greedy
decoding, the C++ runtime) the graph computes what a plain decoder does.
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import onnx
import onnxscript.optimizer
import torch
from transformers import AttentionInterface
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
from transformers.models.whisper.modeling_whisper import eager_attention_forward

from liteasr_export.core.errors import ExportError
from liteasr_export.core.graphs import OPSETS, decoder_input_names, decoder_output_names, graph_precision

from .precision import quantize_int8, save_onnx

OPSET = OPSETS["decoder"]
#: the attention implementation the decoder is traced with (registered below)
SHARED_CROSS_ATTENTION = "liteasr_shared_cross"


def shared_cross_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                           **kwargs) -> tuple[torch.Tensor, None]:
    """transformers' eager attention, except in cross-attention, where the
    rows (batch) are grouped by window: query (batch, heads, tokens, dim)
    against key and value (windows, heads, frames, dim). The rows of a window
    become extra query positions of one MatMul over its keys, so no key is
    copied per row. Eager (MatMul-Softmax-MatMul) everywhere: ONNX Runtime
    folds the key transpose into the MatMul."""
    if not getattr(module, "liteasr_cross", False):
        return eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout, **kwargs)
    rows, heads, tokens, dim = query.shape
    windows = key.shape[0]
    torch._check(rows % windows == 0)
    group = rows // windows
    scaling = dim**-0.5 if scaling is None else scaling
    q = query.reshape(windows, group, heads, tokens, dim).transpose(1, 2).reshape(windows, heads, group * tokens, dim)
    weights = torch.softmax(torch.matmul(q, key.transpose(2, 3)) * scaling, dim=-1)
    out = torch.matmul(weights, value).reshape(windows, heads, group, tokens, dim)
    return out.permute(0, 2, 3, 1, 4).reshape(rows, tokens, heads, dim), None


AttentionInterface.register(SHARED_CROSS_ATTENTION, shared_cross_attention)
# the causal mask in eager's form (additive floats), which eager attention expects
ALL_MASK_ATTENTION_FUNCTIONS.register(SHARED_CROSS_ATTENTION, eager_mask)


class DecoderWithCache(torch.nn.Module):
    """HF Whisper decoder + output projection with explicit cache tensors."""

    def __init__(self, model: "WhisperForConditionalGeneration") -> None:  # noqa: F821
        super().__init__()
        self.decoder = model.model.decoder
        self.proj_out = model.proj_out
        self.n_layers = model.config.decoder_layers

    def forward(self, input_ids: torch.Tensor, *cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.n_layers
        past, cross = cache[: 2 * n], cache[2 * n :]
        pairs = lambda flat: [(flat[2 * i], flat[2 * i + 1]) for i in range(n)]  # noqa: E731
        kv_cache = EncoderDecoderCache(DynamicCache(pairs(past)), DynamicCache(pairs(cross)))
        # Cross-attention runs only when encoder states are given; with the
        # cross cache filled HF reads K/V from it and never looks at them.
        placeholder = cross[0].new_zeros(cross[0].shape[0], 0, self.decoder.config.d_model)
        out = self.decoder(
            input_ids=input_ids,
            encoder_hidden_states=placeholder,
            cache=kv_cache,
            use_cache=True,
        )
        logits = self.proj_out(out.last_hidden_state)
        presents = []
        for layer in kv_cache.self_attention_cache.layers:
            presents += [layer.keys, layer.values]
        return (logits, *presents)


def cross_kv(model: "WhisperForConditionalGeneration", hidden: torch.Tensor) -> list[torch.Tensor]:  # noqa: F821
    """The decoder's cross K/V of encoder states, as ``encoder.onnx`` returns
    them: ``[key.0, value.0, key.1, ...]``, each (batch, heads, frames, head_dim)."""
    out = []
    for layer in model.model.decoder.layers:
        attn = layer.encoder_attn
        for proj in (attn.k_proj, attn.v_proj):
            b, t, _ = hidden.shape
            out.append(proj(hidden).view(b, t, attn.num_heads, attn.head_dim).transpose(1, 2).contiguous())
    return out


def _example_inputs(model, batch: int, windows: int, tokens: int, past: int, frames: int) -> tuple[torch.Tensor, ...]:
    cfg = model.config
    heads = cfg.decoder_attention_heads
    head_dim = cfg.d_model // heads
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (batch, tokens), generator=gen)
    past_t = [torch.randn(batch, heads, past, head_dim, generator=gen) for _ in range(2 * cfg.decoder_layers)]
    cross_t = [torch.randn(windows, heads, frames, head_dim, generator=gen) for _ in range(2 * cfg.decoder_layers)]
    return (ids, *past_t, *cross_t)


def export_decoder(model: "WhisperForConditionalGeneration", path: str | Path, *,  # noqa: F821
                   opset: int = OPSET, precision: str = "fp32") -> Path:
    """Export ``decoder.onnx`` (dynamic batch, tokens, past and frames).

    ``precision`` is the export's (:data:`liteasr_export.core.graphs.GRAPH_PRECISION`):
    the decoder graph is float32 except under ``int8``, a dynamic int8
    quantization of every MatMul with a constant weight (the vocabulary
    projection included), for ONNX Runtime's CPU provider.
    """
    int8 = graph_precision(precision, "decoder") == "int8"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = model.config.decoder_layers
    wrapper = DecoderWithCache(model).eval()
    # Example sizes above 1 everywhere (torch.export specialises dims of size
    # 0 and 1), and more rows than windows, so the grouping is traced.
    example = _example_inputs(model, batch=4, windows=2, tokens=3, past=5, frames=7)
    batch, windows, tokens = torch.export.Dim("batch"), torch.export.Dim("windows"), torch.export.Dim("tokens")
    past, frames = torch.export.Dim("past"), torch.export.Dim("frames")
    kv_past = [{0: batch, 2: past}] * (2 * n)
    kv_cross = [{0: windows, 2: frames}] * (2 * n)
    try:
        with torch.no_grad(), warnings.catch_warnings(), _quiet_registry(), _shared_cross(model):
            # every past/cross tensor shares the same Dim objects: that is intended
            warnings.filterwarnings("ignore", message=".*will not be used, since it shares the same shape")
            program = torch.onnx.export(
                wrapper,
                example,
                dynamo=True,
                input_names=decoder_input_names(n),
                output_names=decoder_output_names(n),
                opset_version=opset,
                dynamic_shapes={"input_ids": {0: batch, 1: tokens}, "cache": (*kv_past, *kv_cross)},
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many unrelated types
        raise ExportError(f"decoder export failed: {exc}", "report the model config and the torch version") from exc
    if int8:
        _quantize(program, path)
    else:
        save_onnx(program.model_proto, path)
    _check_graph(path, n)
    return path


@contextmanager
def _shared_cross(model: "WhisperForConditionalGeneration") -> Iterator[None]:  # noqa: F821
    """Trace with :func:`shared_cross_attention`, its cross-attention modules
    marked; the model's attention implementation is restored afterwards."""
    attn_implementation = model.config._attn_implementation
    cross = [layer.encoder_attn for layer in model.model.decoder.layers]
    model.set_attn_implementation(SHARED_CROSS_ATTENTION)
    for module in cross:
        module.liteasr_cross = True
    try:
        yield
    finally:
        for module in cross:
            del module.liteasr_cross
        model.set_attn_implementation(attn_implementation)


@contextmanager
def _quiet_registry() -> Iterator[None]:
    """The exporter's operator registry logs one warning per torchvision
    operator when torchvision is absent (and others when it does not match
    torch); Whisper uses none of them."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _quantize(program: "torch.onnx.ONNXProgram", path: Path) -> None:
    """Fold ``Transpose(weight)`` into constants first: the tied vocabulary
    projection is traced as MatMul(x, Transpose(embedding)), and dynamic
    quantization only rewrites MatMuls whose weight is a constant."""
    onnxscript.optimizer.optimize(program.model, input_size_limit=2**62, output_size_limit=2**62)
    fp32 = path.with_name(path.stem + ".fp32.onnx")
    try:
        save_onnx(program.model_proto, fp32)
        quantize_int8(fp32, path)
    finally:
        for stale in (fp32, fp32.with_name(fp32.name + ".data")):
            stale.unlink(missing_ok=True)


def _check_graph(path: Path, n_layers: int) -> None:
    graph = onnx.load(str(path), load_external_data=False).graph
    control = sorted({node.op_type for node in graph.node if node.op_type in ("If", "Loop", "Scan")})
    if control:
        raise ExportError(f"{path.name} holds control-flow nodes {control}", "TensorRT cannot build them; report this")
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    if inputs != decoder_input_names(n_layers) or outputs != decoder_output_names(n_layers):
        raise ExportError(f"{path.name} has inputs {inputs[:3]}... and outputs {outputs[:3]}...",
                          "the export lost or renamed a tensor; report this")
