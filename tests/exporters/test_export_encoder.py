"""encoder.onnx: interface, fp32 parity with PyTorch (dense and low-rank),
fused vs unfused reduced attention, fallbacks, int8."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from exporters.encoder import export_encoder, fused_op_problem
from engines.validation.compare import compare
from engines.validation.parity import float64
from liteasr_export.model.torch_transcriber import encoder_outputs as torch_encoder_outputs
from liteasr_export.core.graphs import encoder_spec
from liteasr_export.core.errors import ExportError
from liteasr_export.model.standin import apply_low_rank

ort = pytest.importorskip("onnxruntime")

STD = 0.2  # peaked attention: parity cannot pass by near-uniform softmax rows
RANKS = {"q_proj": 8, "k_proj": 8, "v_proj": 12, "out_proj": 16, "fc1": 32, "fc2": 24}


@pytest.fixture(scope="module")
def random_model(random_whisper):
    def make(compressed: bool):
        model = random_whisper(1, init_std=STD)
        with torch.no_grad():
            for layer in model.model.encoder.layers:
                for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj, layer.self_attn.out_proj, layer.fc1):
                    proj.bias.normal_(0, 0.3)
        if compressed:
            apply_low_rank(model, [dict(RANKS) for _ in model.model.encoder.layers], method="svd")
        return model

    return make


@pytest.fixture(scope="module")
def dense(random_model):
    return random_model(False)


@pytest.fixture(scope="module")
def lowrank(random_model):
    return random_model(True)


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 80, 3000)).astype(np.float32)


def _reference(model, features: np.ndarray) -> dict[str, np.ndarray]:
    """Hidden states and the decoder's cross K/V, computed by the float32 PyTorch model."""
    return torch_encoder_outputs(model, features)[1]


def _check_parity(model, features: np.ndarray, got: dict[str, np.ndarray], precision: str = "fp32") -> None:
    """Validation's parity rule: against the float64 run, float32 PyTorch's error as the noise level."""
    with float64(model):
        exact = torch_encoder_outputs(model, features)[1]
    compare("encoder.onnx", precision, exact, got, _reference(model, features)).raise_on_failure()


def _run(path, features: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input_features": features})))


def _max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def _op_types(path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def test_interface_matches_spec_and_batch_is_dynamic(dense, tmp_path):
    info = export_encoder(dense, tmp_path / "encoder.onnx")
    spec = encoder_spec(dense.config)
    model = onnx.load(info.path)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input_features"]
    assert [o.name for o in model.graph.output] == ["last_hidden_state"] + [
        f"cross_{k}.{i}" for i in range(2) for k in ("key", "value")
    ]
    assert info.outputs == [t.name for t in spec.outputs]
    for value, tensor in zip(list(model.graph.input) + list(model.graph.output), spec.inputs + spec.outputs):
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        assert dims == list(tensor.shape) and value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    for batch in (1, 3):
        x = np.zeros((batch, 80, 3000), np.float32)
        out = _run(info.path, x)
        assert out["last_hidden_state"].shape == (batch, 1500, 64)
        assert out["cross_value.1"].shape == (batch, 4, 1500, 16)
    assert model.opset_import[0].version >= 17 and not info.external_data


@pytest.mark.parametrize("attention", ["unfused", "fused"])
def test_dense_parity(dense, features, tmp_path, attention):
    info = export_encoder(dense, tmp_path / "encoder.onnx", attention=attention)
    assert info.reduced_layers == []
    _check_parity(dense, features, _run(info.path, features))


@pytest.mark.parametrize("fused_op", ["Attention", "MultiHeadAttention"])
def test_compressed_parity_fused_and_unfused(lowrank, features, tmp_path, fused_op):
    if fused_op_problem(fused_op, 23):
        pytest.skip(fused_op_problem(fused_op, 23))
    fused = export_encoder(lowrank, tmp_path / "fused.onnx", attention="fused", fused_op=fused_op)
    unfused = export_encoder(lowrank, tmp_path / "unfused.onnx", attention="unfused")
    assert fused.reduced_layers == [0, 1] == unfused.reduced_layers
    assert (fused.attention, fused.fused_op, unfused.attention) == ("fused", fused_op, "unfused")
    # two MatMuls per low-rank linear, one fused node per layer, no Softmax left
    ops = _op_types(fused.path)
    assert ops.count(fused_op) == 2 and "Softmax" not in ops
    assert _op_types(unfused.path).count("Softmax") == 2
    node = next(n for n in onnx.load(fused.path).graph.node if n.op_type == fused_op)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if fused_op == "Attention":
        assert attrs["q_num_heads"] == 4 and attrs["kv_num_heads"] == 1  # multi-query: one shared key head
    got_fused, got_unfused = _run(fused.path, features), _run(unfused.path, features)
    _check_parity(lowrank, features, got_fused)
    _check_parity(lowrank, features, got_unfused)
    assert _max_diff(got_fused, got_unfused) <= 1e-4


def test_reduced_attention_can_be_switched_off(lowrank, features, tmp_path):
    info = export_encoder(lowrank, tmp_path / "encoder.onnx", attention="unfused", reduced_attention=False)
    assert info.reduced_layers == []
    ops = _op_types(info.path)
    # per layer 6 low-rank linears (2 MatMuls each) + scores and context; 2 x 2 cross K/V
    assert ops.count("MatMul") == 2 * (6 * 2 + 2) + 2 * 2
    _check_parity(lowrank, features, _run(info.path, features))


def test_old_opset_falls_back_to_unfused_and_says_so(lowrank, features, tmp_path):
    info = export_encoder(lowrank, tmp_path / "encoder.onnx", attention="fused", fused_op="Attention", opset=17)
    assert info.attention == "unfused" and info.fused_op is None
    assert any("opset" in note for note in info.notes)
    ops = _op_types(info.path)
    assert "Attention" not in ops and "Gelu" not in ops and "Erf" in ops  # GELU spelled out before opset 20
    _check_parity(lowrank, features, _run(info.path, features))


def test_bad_arguments_raise_export_errors(dense, tmp_path):
    with pytest.raises(ExportError, match="opset"):
        export_encoder(dense, tmp_path / "a.onnx", opset=16)
    with pytest.raises(ExportError, match="attention mode"):
        export_encoder(dense, tmp_path / "a.onnx", attention="flash")
    with pytest.raises(ExportError, match="fused attention operator"):
        export_encoder(dense, tmp_path / "a.onnx", attention="fused", fused_op="FlashAttention")
    with pytest.raises(ExportError, match="precision"):
        export_encoder(dense, tmp_path / "a.onnx", precision="fp8")


def test_int8_quantizes_weight_matmuls(lowrank, features, tmp_path):
    info = export_encoder(lowrank, tmp_path / "encoder.onnx", attention="unfused", precision="int8")
    ops = _op_types(info.path)
    # per reduced layer: query 2, key 1, value 1, out 2, fc1 2, fc2 2 MatMuls; 2 x 2 cross K/V.
    # The second factor of query, out, fc1 and fc2 (rank-space input) stays float.
    assert info.precision == "int8" and info.int8["quantized_matmuls"] == 2 * 6 + 2 * 2
    assert ops.count("MatMulInteger") == info.int8["quantized_matmuls"]
    assert ops.count("MatMul") == 4 + 2 * 4  # attention scores and context, and the rank-space factors
    reference = _reference(lowrank, features)["last_hidden_state"]
    got = _run(info.path, features)["last_hidden_state"]
    assert np.abs(got - reference).mean() < 0.05 * np.abs(reference).mean()


def test_fp16_keeps_float32_interface(lowrank, features, tmp_path):
    info = export_encoder(lowrank, tmp_path / "encoder.onnx", precision="fp16", calibration_features=[features[:1]])
    model = onnx.load(info.path)
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in [*model.graph.input, *model.graph.output])
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert {"layers.0.self_attn_layer_norm", "layer_norm"} <= set(info.fp16["fp32_nodes"])
    assert info.fp16["finite"] is True
    got = _run(info.path, features)
    _check_parity(lowrank, features, got, "fp16")


def test_tiny_en_parity_dense_and_low_rank(tmp_path):
    from calibration.datasets import resolve_set
    from liteasr_export.core.frontend import load_audio, log_mel
    from liteasr_export.model.sources import load_model

    try:
        model = load_model("tiny.en").model
    except Exception as exc:  # the bundled weights are an optional package
        pytest.skip(f"tiny.en not available: {exc}")
    features = log_mel(load_audio(resolve_set("builtin", purpose="eval")[0].audio), 80)[None]
    dense = export_encoder(model, tmp_path / "dense.onnx")
    _check_parity(model, features, _run(dense.path, features))
    apply_low_rank(model, [{"q_proj": 32, "k_proj": 32, "v_proj": 48, "out_proj": 96, "fc1": 256}] * 4)
    low = export_encoder(model, tmp_path / "low.onnx")
    assert low.reduced_layers == [0, 1, 2, 3]
    _check_parity(model, features, _run(low.path, features))


# ------------------------------------------------------------ audio context (trimmed inputs)

#: mel frames tried: 30 s, 10 s, 2 s
CONTEXTS = (3000, 1000, 200)


@pytest.fixture(scope="module")
def exported(dense, lowrank, tmp_path_factory):
    """Each model's fp32 encoder.onnx (fused attention where available), once per module."""
    folder = tmp_path_factory.mktemp("audio_context")
    return {name: (model, export_encoder(model, folder / f"{name}.onnx").path)
            for name, model in (("dense", dense), ("lowrank", lowrank))}


@pytest.mark.parametrize("name", ["dense", "lowrank"])
@pytest.mark.parametrize("frames", CONTEXTS)
def test_trimmed_inputs_match_pytorch_on_the_sliced_positional_table(exported, features, name, frames):
    """The graph takes any even length: its outputs have half as many frames
    and pass validation's parity rule against PyTorch on the same trimmed
    input (the first frames/2 rows of the positional table)."""
    model, path = exported[name]
    trimmed = features[..., :frames]
    got = _run(path, trimmed)
    assert got["last_hidden_state"].shape == (2, frames // 2, 64)
    assert got["cross_key.1"].shape == (2, 4, frames // 2, 16)
    _check_parity(model, trimmed, got)


def test_a_trimmed_input_is_not_the_start_of_the_full_one(exported, features):
    """Attention sees only the trimmed frames: the trimmed output is its own,
    not the first rows of the 30 s output (so the tests above can fail)."""
    _, path = exported["dense"]
    full, short = _run(path, features)["last_hidden_state"], _run(path, features[..., :1000])["last_hidden_state"]
    assert np.abs(full[:, :500] - short).max() > 1e-3


def _fixed_length(path) -> onnx.ModelProto:
    """The same graph as the exporter wrote it before the length was dynamic:
    a 3000-frame input and the whole positional table added as a constant."""
    model = onnx.load(str(path))
    graph = model.graph
    sliced = next(n for n in graph.node if n.name == "stem.positions").output[0]
    kept = [n for n in graph.node if n.name not in ("stem.frames", "stem.positions")]
    for node in kept:
        node.input[:] = ["embed_positions" if i == sliced else i for i in node.input]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.value_info[:]
    graph.input[0].type.tensor_type.shape.dim[2].dim_value = 3000
    return model


@pytest.mark.parametrize("name", ["dense", "lowrank"])
@pytest.mark.parametrize("attention", ["auto", "unfused"])
def test_30_s_is_bit_for_bit_the_fixed_length_graph(dense, lowrank, features, tmp_path, name, attention):
    """On 3000 frames the dynamic graph computes exactly what the fixed-length
    graph did under ONNX Runtime's full optimizations (which fuse the
    positions' Add into layer 0's norm only when the shapes say they agree)."""
    from liteasr_export.core.runtime.ort_session import create_session

    model = {"dense": dense, "lowrank": lowrank}[name]
    info = export_encoder(model, tmp_path / "encoder.onnx", attention=attention)
    fixed = tmp_path / "fixed.onnx"
    onnx.save(_fixed_length(info.path), str(fixed))
    dynamic, before = create_session(info.path), create_session(fixed)
    assert before.get_inputs()[0].shape[2] == 3000 and dynamic.get_inputs()[0].shape[2] == "mel_frames"
    feeds = {"input_features": features}
    for got, want in zip(dynamic.run(None, feeds), before.run(None, feeds)):
        np.testing.assert_array_equal(got, want)
