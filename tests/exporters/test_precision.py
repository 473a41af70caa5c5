"""fp16 with float32 islands chosen from real activations, int8 of weight
MatMuls, external data: on small hand-made graphs (the functions take any graph)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exporters.precision import activation_maxima, convert_fp16, quantize_int8, save_onnx

ort = pytest.importorskip("onnxruntime")


def _graph() -> onnx.ModelProto:
    """x (B, 8) -> MatMul by 1000 I (overflows float16 for |x| > 65) -> LayerNorm
    -> Softmax, plus a scaled-back branch ``x @ W * 1e-3``."""
    nodes = [
        helper.make_node("MatMul", ["x", "w_big"], ["big"], name="scale_up"),
        helper.make_node("Mul", ["big", "tiny"], ["back"], name="scale_down"),
        helper.make_node("LayerNormalization", ["big", "gamma", "beta"], ["normed"], name="norm", axis=-1),
        helper.make_node("Softmax", ["normed"], ["probs"], name="softmax", axis=-1),
    ]
    inits = [
        numpy_helper.from_array((np.eye(8) * 1000).astype(np.float32), "w_big"),
        numpy_helper.from_array(np.array(1e-3, np.float32), "tiny"),
        numpy_helper.from_array(np.ones(8, np.float32), "gamma"),
        numpy_helper.from_array(np.zeros(8, np.float32), "beta"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 8]) for n in ("back", "probs")], inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})


X = np.linspace(-100, 100, 16, dtype=np.float32).reshape(2, 8)


def test_activation_maxima_per_node():
    maxima = activation_maxima(_graph(), [{"x": X}, {"x": X / 10}], outputs_per_run=1)
    assert maxima["big"] == pytest.approx(1e5)
    assert maxima["back"] == pytest.approx(100, rel=1e-5)
    assert 0 < maxima["probs"] <= 1


def _reference_run(path, x):
    """float16 computed faithfully (numpy): ONNX Runtime's CPU provider runs some
    float16 operators in float32 and would hide an overflow."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(str(path)).run(None, {"x": x})


def test_fp16_keeps_overflowing_nodes_in_float32(tmp_path):
    report = convert_fp16(_graph(), tmp_path / "checked.onnx", feeds=[{"x": X}])
    assert set(report.overflow_nodes) == {"scale_up"} and report.checked_samples == 1
    assert report.overflow_nodes["scale_up"] == pytest.approx(1e5)
    # its reader scale_down stays float32 too: a float16 input could not hold 1e5
    assert set(report.fp32_nodes) == {"scale_up", "scale_down", "norm", "softmax"}
    assert report.finite is True and report.max_abs_diff["back"] < 0.1
    back, probs = _reference_run(tmp_path / "checked.onnx", X)
    assert back.dtype == np.float32 and np.allclose(back, X, atol=0.1) and np.isfinite(probs).all()

    # the same conversion without looking at activations overflows
    unchecked = convert_fp16(_graph(), tmp_path / "unchecked.onnx")
    assert unchecked.overflow_nodes == {} and unchecked.finite is None
    back, _ = _reference_run(tmp_path / "unchecked.onnx", X)
    assert not np.isfinite(back).all()


def test_fp16_weights_with_float32_islands_by_type(tmp_path):
    small = X / 1000  # nothing near float16's limit: only LayerNorm and Softmax stay float32
    report = convert_fp16(_graph(), tmp_path / "half.onnx", feeds=[{"x": small}])
    assert report.overflow_nodes == {} and set(report.fp32_nodes) == {"norm", "softmax"}
    model = onnx.load(str(tmp_path / "half.onnx"))
    assert [v.type.tensor_type.elem_type for v in [*model.graph.input, *model.graph.output]] == [TensorProto.FLOAT] * 3
    types = {t.name: t.data_type for t in model.graph.initializer}
    assert types["w_big"] == types["tiny"] == TensorProto.FLOAT16
    assert types["gamma"] == types["beta"] == TensorProto.FLOAT
    producers = {out: n for n in model.graph.node for out in n.output}
    norm = next(n for n in model.graph.node if n.name == "norm")
    cast = producers[norm.input[0]]  # the float16 MatMul output is cast up for LayerNorm
    assert cast.op_type == "Cast" and helper.get_attribute_value(cast.attribute[0]) == TensorProto.FLOAT
    back, probs = _run(tmp_path / "half.onnx", small)
    assert back.dtype == np.float32 and np.allclose(back, small, atol=1e-3)
    assert report.max_abs_diff["probs"] < 1e-2


def _matmul_graph() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="weight_matmul"),
        helper.make_node("Transpose", ["h"], ["ht"], name="transpose", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["h", "ht"], ["y"], name="activation_matmul"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 6, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6, 6])],
        [numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32) / 4, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_quantizes_only_weight_matmuls(tmp_path, per_channel):
    save_onnx(_matmul_graph(), tmp_path / "fp32.onnx")
    report = quantize_int8(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", per_channel=per_channel)
    assert report.quantized_matmuls == 1 and report.float_matmuls == ["activation_matmul"]
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 1 and ops.count("MatMul") == 1
    x = np.random.default_rng(1).standard_normal((2, 6, 16)).astype(np.float32)
    (expected,) = ort.InferenceSession(str(tmp_path / "fp32.onnx")).run(None, {"x": x})
    (got,) = ort.InferenceSession(str(tmp_path / "int8.onnx")).run(None, {"x": x})
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_save_onnx_external_data(tmp_path):
    path = tmp_path / "g.onnx"
    for _ in range(2):  # a second save must not append to the old data file
        assert save_onnx(_matmul_graph(), path, external=True) is True
    data = tmp_path / "g.onnx.data"
    assert data.stat().st_size == 16 * 32 * 4
    assert save_onnx(_matmul_graph(), tmp_path / "small.onnx") is False
    assert not (tmp_path / "small.onnx.data").exists()
    x = np.ones((1, 6, 16), np.float32)
    assert np.allclose(_run_x(path, x), _run_x(tmp_path / "small.onnx", x))


def _run_x(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
