"""Parity against float64 separates arithmetic noise from defects: clean
exports pass with a wide margin, and each injected defect fails by orders of
magnitude.

Each defect is injected into one float32 graph exported from the true model
(edited with onnx) or into a copy of the compressed model before export; the
check always compares with the float64 and float32 runs of the TRUE model, so
a defect that parity let through would be shipped."""

from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from engines.validation.compare import ParityReport, compare
from engines.validation.parity import float64, parity
from liteasr_export.model.torch_transcriber import encoder_outputs as torch_encoder_outputs
from exporters.encoder import build_encoder_graph, export_encoder
from exporters.precision import quantize_int8, save_onnx
from liteasr_export.core.errors import ToleranceError
from liteasr_export.model.standin import apply_low_rank

ort = pytest.importorskip("onnxruntime")

STD = 0.2  # peaked attention: a wrong attention scale changes the output
#: layer 0 low-rank (reduced attention, low-rank fc1); layer 1 dense (square 64 x 64 projections)
RANKS = [{"q_proj": 8, "k_proj": 8, "v_proj": 12, "out_proj": 16, "fc1": 32}, {}]
#: a defect must exceed its limit by this factor at least (clean exports use a few percent of it)
SEPARATION = 100.0


def _excess(report: ParityReport) -> float:
    """How far past its limits the worst output is (1.0: exactly at a limit)."""
    return max(max(o.error / o.limit, o.error_quantile / o.quantile_limit) for o in report.outputs)


@pytest.fixture(scope="module")
def model(random_whisper):
    model = random_whisper(3, init_std=STD)
    with torch.no_grad():
        for layer in model.model.encoder.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.v_proj, layer.self_attn.out_proj, layer.fc1,
                         layer.fc2):
                proj.bias.normal_(0, 0.3)
    return apply_low_rank(model, RANKS, method="svd")


@pytest.fixture(scope="module")
def features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 80, 3000)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(model, features):
    """The true model's float64 outputs and its float32 outputs (the noise)."""
    _, fp32 = torch_encoder_outputs(model, features)
    with float64(model):
        _, exact = torch_encoder_outputs(model, features)
    return exact, fp32


@pytest.fixture(scope="module")
def clean(model) -> onnx.ModelProto:
    graph, _ = build_encoder_graph(model)  # unfused attention, layer 0 in the reduced dimension
    return graph


def _check(graph: onnx.ModelProto, features, reference, tmp_path, threads: int = 2) -> ParityReport:
    path = tmp_path / "encoder.onnx"
    onnx.save(graph, str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    exact, fp32 = reference
    return compare("encoder.onnx", "fp32", exact, dict(zip(names, session.run(names, {"input_features": features}))),
                   fp32)


def _initializer(graph: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in graph.graph.initializer if t.name == name)


def _set(graph: onnx.ModelProto, name: str, values: np.ndarray) -> None:
    _initializer(graph, name).CopyFrom(numpy_helper.from_array(np.ascontiguousarray(values, np.float32), name))


def _get(graph: onnx.ModelProto, name: str) -> np.ndarray:
    return numpy_helper.to_array(_initializer(graph, name))


def _node(graph: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in graph.graph.node if n.name == name)


def _transposed_factor(g: onnx.ModelProto) -> None:
    w = _get(g, "layers.1.self_attn.out_proj.weight")
    assert w.shape[0] == w.shape[1]  # square: the transposed graph still runs
    _set(g, "layers.1.self_attn.out_proj.weight", w.T)


def _rank_cut_by_one(g: onnx.ModelProto) -> None:
    w1, w2 = _get(g, "layers.0.fc1.weight1"), _get(g, "layers.0.fc1.weight2")
    assert w1.shape[1] == w2.shape[0] == RANKS[0]["fc1"]
    _set(g, "layers.0.fc1.weight1", w1[:, :-1])  # the factorization written at rank k - 1
    _set(g, "layers.0.fc1.weight2", w2[:-1])


def _wrong_bias(g: onnx.ModelProto) -> None:
    _set(g, "layers.1.self_attn.out_proj.bias", np.zeros_like(_get(g, "layers.1.self_attn.out_proj.bias")))


def _dropped_layer_norm(g: onnx.ModelProto) -> None:
    node = _node(g, "layers.1.final_layer_norm")
    node.CopyFrom(helper.make_node("Identity", [node.input[0]], list(node.output), name=node.name))


def _attention_scale_off(g: onnx.ModelProto) -> None:
    """The scores of the reduced layer scaled twice by 1/sqrt(2): off by a factor sqrt(2)."""
    scores = _node(g, "layers.0.self_attn.attention.scores")
    softmax = _node(g, "layers.0.self_attn.attention.softmax")
    g.graph.initializer.append(numpy_helper.from_array(np.array(2**-0.5, np.float32), "defect.scale"))
    mul = helper.make_node("Mul", [scores.output[0], "defect.scale"], ["defect.scaled"], name="defect.mul")
    softmax.input[0] = "defect.scaled"
    nodes = list(g.graph.node)
    nodes.insert(nodes.index(softmax), mul)
    del g.graph.node[:]
    g.graph.node.extend(nodes)


def _positions_shifted(g: onnx.ModelProto) -> None:
    positions = _get(g, "embed_positions")
    _set(g, "embed_positions", np.concatenate([positions[1:], positions[-1:]]))  # frame t gets t + 1's row


GRAPH_DEFECTS = {
    "transposed square factor": _transposed_factor,
    "rank cut by one": _rank_cut_by_one,
    "wrong bias": _wrong_bias,
    "dropped layer norm": _dropped_layer_norm,
    "attention scale off by sqrt 2": _attention_scale_off,
    "positional table shifted by one frame": _positions_shifted,
}


@pytest.mark.parametrize("threads", [1, 16])
def test_clean_graph_passes_with_margin(clean, features, reference, tmp_path, threads):
    report = _check(copy.deepcopy(clean), features, reference, tmp_path, threads)
    assert report.passed, report.failures()
    assert _excess(report) < 0.1  # noise uses at most a tenth of the limits


@pytest.mark.parametrize("defect", sorted(GRAPH_DEFECTS))
def test_graph_defect_fails_by_orders_of_magnitude(clean, features, reference, tmp_path, defect):
    graph = copy.deepcopy(clean)
    GRAPH_DEFECTS[defect](graph)
    onnx.checker.check_model(graph)
    report = _check(graph, features, reference, tmp_path)
    assert not report.passed
    assert _excess(report) > SEPARATION
    with pytest.raises(ToleranceError, match=r"encoder\.onnx \(fp32\) fails parity: .*against float64 \(float32 "
                                             r"PyTorch's .*limit"):
        report.raise_on_failure()


def test_int8_node_in_a_float32_graph_fails(clean, features, reference, tmp_path):
    """One weight MatMul dynamically quantized, as --int8 would, in a graph validated as fp32."""
    source = tmp_path / "fp32.onnx"
    save_onnx(copy.deepcopy(clean), source)
    matmuls = [n.name for n in clean.graph.node if n.op_type == "MatMul"]
    quantize_int8(source, tmp_path / "int8.onnx", exclude_nodes=[m for m in matmuls if m != "layers.1.fc1.matmul"])
    graph = onnx.load(str(tmp_path / "int8.onnx"))
    assert sum(n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in graph.graph.node) == 1
    report = _check(graph, features, reference, tmp_path)
    assert not report.passed and _excess(report) > SEPARATION


def test_positional_shift_in_the_compressed_model_fails(model, features, reference, tmp_path):
    """The defect made in (a copy of) the compressed PyTorch model, exported as usual."""
    broken = copy.deepcopy(model)
    with torch.no_grad():
        table = broken.model.encoder.embed_positions.weight
        table.copy_(torch.cat([table[1:], table[-1:]]))
    graph = onnx.load(export_encoder(broken, tmp_path / "broken.onnx", attention="auto").path)
    report = _check(graph, features, reference, tmp_path)
    assert not report.passed and _excess(report) > SEPARATION


def test_fused_attention_export_passes(model, features, reference, tmp_path):
    graph = onnx.load(export_encoder(model, tmp_path / "fused.onnx", attention="auto").path)
    report = _check(graph, features, reference, tmp_path)
    assert report.passed and _excess(report) < 0.1


# ------------------------------------------------------------------ end to end, decoder logits


@pytest.fixture(scope="module")
def loaded(tiny_en_tokenizer_json, random_loaded):
    return random_loaded(tiny_en_tokenizer_json, low_rank=True, seed=5)


def _parity(loaded, exported, out, threads: int = 2, frames: int = 3000) -> list[ParityReport]:
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    export_artifacts(exported, out, frontend=False)
    features = np.random.default_rng(1).standard_normal((2, 80, frames)).astype(np.float32)
    return parity(TorchTranscriber(loaded), OnnxTranscriber(out, threads=threads), features, "fp32")


def test_clean_artifacts_pass_end_to_end_and_the_model_stays_float32(loaded, tmp_path):
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    reports = _parity(loaded, loaded, tmp_path / "out", threads=1)
    assert [r.artifact for r in reports] == ["encoder.onnx", "decoder.onnx"]
    assert all(r.passed for r in reports) and max(_excess(r) for r in reports) < 0.1
    logits = reports[1].outputs[0]
    assert logits.name == "logits" and 0 < logits.noise < logits.limit
    after = loaded.model.state_dict()  # the float64 round trip is exact
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("frames", [1000, 200])
def test_parity_runs_on_a_trimmed_audio_context(loaded, tmp_path, frames):
    """The float64 reference and the artifacts take trimmed inputs alike
    (the sliced positional table): clean artifacts pass with the same margin."""
    reports = _parity(loaded, loaded, tmp_path / "out", threads=1, frames=frames)
    assert all(r.passed for r in reports) and max(_excess(r) for r in reports) < 0.1


def test_positions_off_by_one_fail_on_a_trimmed_input(clean, model, tmp_path):
    """A graph that adds the wrong rows of the positional table is caught on
    a trimmed input too."""
    features = np.random.default_rng(2).standard_normal((2, 80, 1000)).astype(np.float32)
    _, fp32 = torch_encoder_outputs(model, features)
    with float64(model):
        _, exact = torch_encoder_outputs(model, features)
    graph = copy.deepcopy(clean)
    _set(graph, "embed_positions", np.roll(_get(graph, "embed_positions"), 1, axis=0))
    report = _check(graph, features, (exact, fp32), tmp_path)
    assert not report.passed and _excess(report) > SEPARATION
    assert _check(clean, features, (exact, fp32), tmp_path).passed


def test_decoder_defect_fails_on_logits(loaded, tmp_path):
    broken = copy.deepcopy(loaded)
    with torch.no_grad():
        bias = broken.model.model.decoder.layers[1].fc2.bias  # (a constant shift would cancel in the next LayerNorm)
        bias.copy_(bias + 0.05 * torch.randn(bias.shape, generator=torch.Generator().manual_seed(0)))
    reports = _parity(loaded, broken, tmp_path / "out")
    encoder, decoder = reports
    assert encoder.passed and not decoder.passed and _excess(decoder) > SEPARATION
