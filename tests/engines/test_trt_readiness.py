"""The CPU-side TensorRT readiness check: control flow, operators, opsets,
Attention restrictions, input types, profile coverage, and the real
exported graphs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.build.trt_profiles import ProfileOptions, axis_ranges
from engines.build.trt_readiness import (
    MIN_OPSET,
    TRT_SUPPORTED_OPS,
    check_artifacts,
    check_graph,
    check_model,
    max_opset,
)
from liteasr_export.core.manifest import load_manifest
from liteasr_export.core.errors import ExportError

RANGES = axis_ranges({"n_text_ctx": 448, "n_audio_ctx": 1500})


@pytest.fixture(scope="module")
def if_graph(model_of, tensor):
    """``if_graph()``: y = x + 1 if cond else x - 1, with a Loop hidden in the else branch."""

    def make() -> onnx.ModelProto:
        one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
        then = helper.make_graph([helper.make_node("Add", ["x", "one"], ["t"], name="then_add")], "then", [],
                                 [tensor("t", ["batch", 4])])
        loop_body = helper.make_graph(
            [helper.make_node("Identity", ["c_in"], ["c_out"], name="body_id")], "body",
            [tensor("i", [], TensorProto.INT64), tensor("c_in", [], TensorProto.BOOL)],
            [tensor("c_out", [], TensorProto.BOOL)])
        otherwise = helper.make_graph(
            [helper.make_node("Sub", ["x", "one"], ["e"], name="else_sub"),
             helper.make_node("Loop", ["", "cond"], ["cond_out"], name="hidden_loop", body=loop_body)],
            "else", [], [tensor("e", ["batch", 4])])
        node = helper.make_node("If", ["cond"], ["y"], name="merged_decoder_if", then_branch=then,
                                else_branch=otherwise)
        return model_of([node], [tensor("x", ["batch", 4]), tensor("cond", [], TensorProto.BOOL)],
                        [tensor("y", ["batch", 4])], [one])

    return make


@pytest.fixture(scope="module")
def layer_norm_graph(model_of, tensor):
    """``layer_norm_graph(opset=18, dims=("batch", 8))``: LayerNormalization, then Softmax."""

    def make(opset: int = 18, dims=("batch", 8)) -> onnx.ModelProto:
        inits = [numpy_helper.from_array(np.ones(8, np.float32), "g"),
                 numpy_helper.from_array(np.zeros(8, np.float32), "b")]
        nodes = [helper.make_node("LayerNormalization", ["x", "g", "b"], ["n"], name="ln", axis=-1),
                 helper.make_node("Softmax", ["n"], ["y"], name="sm", axis=-1)]
        return model_of(nodes, [tensor("x", list(dims))], [tensor("y", list(dims))], inits, opset=opset)

    return make


def test_if_node_is_flagged_and_the_loop_inside_it_too(if_graph):
    report = check_model(if_graph(), "decoder", ranges=RANGES)
    assert not report.ok
    assert any("If" in p and "merged_decoder_if" in p for p in report.problems)
    assert any("Loop" in p and "merged_decoder_if/hidden_loop" in p for p in report.problems)
    assert report.op_counts["If"] == 1 and report.op_counts["Loop"] == 1
    with pytest.raises(ExportError, match="If"):
        report.raise_if_problems()


def test_clean_graph_passes(layer_norm_graph):
    report = check_model(layer_norm_graph(), "encoder", ranges=RANGES)
    assert report.ok, report.problems
    assert report.op_counts == {"LayerNormalization": 1, "Softmax": 1}
    assert report.raise_if_problems() is report


@pytest.mark.parametrize("opset, ok", [(MIN_OPSET - 1, False), (MIN_OPSET, True), (24, True), (25, False)])
def test_opset_bounds(opset, ok, layer_norm_graph):
    problems = check_model(layer_norm_graph(opset), "g").problems
    assert (not problems) == ok, problems


def test_older_tensorrt_parses_older_opsets(layer_norm_graph):
    assert max_opset((10, 0)) == 20 and max_opset((10, 8)) == 20 and max_opset((11, 2)) == 24
    problems = check_model(layer_norm_graph(23), "g", target=(10, 8)).problems
    assert problems and "opset 23" in problems[0] and "up to 20" in problems[0]


def test_custom_domain_and_unsupported_operators_are_flagged(model_of, tensor):
    nodes = [helper.make_node("MultiHeadAttention", ["x", "x", "x"], ["a"], name="mha", domain="com.microsoft",
                              num_heads=2),
             helper.make_node("MatMulInteger", ["q", "q"], ["y"], name="qmm")]
    model = model_of(nodes, [tensor("x", ["batch", 5, 8]), tensor("q", [4, 4], TensorProto.UINT8)],
                     [tensor("a", None), tensor("y", None, TensorProto.INT32)], extra_opsets=[("com.microsoft", 1)])
    report = check_model(model, "encoder")
    text = " | ".join(report.problems)
    assert "com.microsoft.MultiHeadAttention" in text and "plugin" in text
    assert "MatMulInteger ('qmm') is not supported" in text
    assert "MatMulInteger" not in TRT_SUPPORTED_OPS and "LayerNormalization" in TRT_SUPPORTED_OPS


@pytest.fixture(scope="module")
def attention_graph(model_of, tensor):
    """``attention_graph(q_shape, opset=23)``: one ONNX Attention node (2 query heads, 1 key head)."""

    def make(q_shape, opset: int = 23) -> onnx.ModelProto:
        node = helper.make_node("Attention", ["q", "k", "v"], ["o"], name="attn", q_num_heads=2, kv_num_heads=1)
        return model_of([node], [tensor("q", q_shape), tensor("k", q_shape), tensor("v", q_shape)], [tensor("o", None)],
                        opset=opset)

    return make


def test_attention_needs_4d_inputs_and_a_recent_tensorrt(attention_graph):
    flat = check_model(attention_graph(["batch", 10, 8]), "encoder", target=(10, 15)).problems
    assert len(flat) == 1 and "3-D inputs" in flat[0]
    assert check_model(attention_graph(["batch", 2, 10, 4]), "encoder", target=(10, 15)).ok
    old = check_model(attention_graph(["batch", 2, 10, 4]), "encoder", target=(10, 13)).problems
    assert any("needs TensorRT >= 10.14" in p for p in old)


def test_unprofiled_dynamic_dims_and_input_types_are_flagged(layer_norm_graph, model_of, tensor):
    report = check_model(layer_norm_graph(dims=("batch", "width")), "g", ranges=RANGES)
    assert report.problems == ["dynamic dimension x[1]=width is not covered by an optimization profile"]
    # without ranges the coverage check is skipped
    assert check_model(layer_norm_graph(dims=("batch", "width")), "g").ok
    strings = model_of([helper.make_node("Identity", ["s"], ["t"], name="id")], [tensor("s", [1], TensorProto.STRING)],
                       [tensor("t", [1], TensorProto.STRING)])
    assert any("STRING" in p for p in check_model(strings, "g").problems)


@pytest.mark.parametrize("low_rank", [False, True], ids=["dense", "low-rank"])
def test_exported_graphs_are_ready_when_attention_is_unfused(low_rank, exported_folder):
    folder = exported_folder("unfused", low_rank)
    reports = check_artifacts(folder, ProfileOptions())
    assert set(reports) == {"frontend", "encoder", "decoder"}
    for report in reports.values():
        assert report.ok, (report.graph, report.problems)
        assert not set(report.op_counts) & {"If", "Loop", "Scan"}
    assert reports["encoder"].op_counts["LayerNormalization"] == 5  # 2 per layer + the final one
    assert reports["decoder"].opset >= MIN_OPSET
    if low_rank:  # layer 0's attention runs in the reduced dimension: one shared key head
        assert load_manifest(folder).data["graphs"]["encoder"]["export"]["reduced_layers"] == [0]


def test_default_onnx_runtime_export_is_not_ready(tmp_path, exported_folder):
    """The ONNX Runtime export fuses attention into com.microsoft.MultiHeadAttention;
    ``--engine trt`` must export unfused attention instead."""
    folder = exported_folder("auto")
    encoder = check_graph(folder / "encoder.onnx", {"n_text_ctx": 448, "n_audio_ctx": 1500})
    if "com.microsoft.MultiHeadAttention" not in encoder.op_counts:
        pytest.skip(f"this onnxruntime exported {sorted(encoder.op_counts)} (no contrib attention)")
    assert not encoder.ok
    with pytest.raises(ExportError, match=r"encoder: .*com\.microsoft\.MultiHeadAttention"):
        check_artifacts(folder)
    reports = check_artifacts(folder, raise_on_problems=False)
    assert reports["decoder"].ok and reports["frontend"].ok


def test_tensorrt_modules_import_neither_torch_nor_tensorrt():
    """``--engine trt`` is imported lazily: loading these modules (the CLI does
    when it parses options) must not pull in torch, transformers or tensorrt."""
    code = ("import sys; import engines.build.trt_profiles, engines.build.trt_readiness, "
            "engines.build.trt_builder, engines.build.trtexec_script, engines.build.trt_export, "
            "engines.runtime.trt_runner, engines.runtime.trt_transcriber, engines.trt_availability; "
            "print(sorted(m for m in ('torch', 'transformers', 'tensorrt') if m in sys.modules))")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         check=True)
    assert out.stdout.strip() == "[]"
