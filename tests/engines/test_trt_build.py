"""TensorRT engines: the precision plan and how it is applied (CPU, with
stand-in layer objects), the messages where TensorRT or CUDA is missing, and,
where tensorrt and a CUDA device are present, real builds whose outputs and
greedy tokens are compared with ONNX Runtime."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from engines import trt_availability
from engines.build.trt_builder import (
    TrtBuildOptions,
    _pin_layers,
    build_engines,
    layer_onnx_nodes,
    plan_precision,
)
from engines.build.trt_profiles import ProfileOptions
from exporters.precision import convert_fp16
from liteasr_export.core.errors import EngineUnavailableError, ExportError
from liteasr_export.core.graphs import FP32_OP_TYPES
from liteasr_export.core.manifest import engine_path, load_manifest, timing_cache_path

MISSING = trt_availability.missing()
needs_trt = pytest.mark.skipif(bool(MISSING), reason="TensorRT build tests need tensorrt and a CUDA device: "
                               + "; ".join(MISSING))


# ---------------------------------------------------------------- precision plan (CPU)

def _fp16_graph(tmp_path: Path, model_of, tensor) -> onnx.ModelProto:
    """A small graph converted by the project's fp16 export with one node
    (``residual_add``) forced into float32, as measured overflow would."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    bias = numpy_helper.from_array(np.ones(4, np.float32), "bias")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="matmul"),
        helper.make_node("Softmax", ["h"], ["p"], name="softmax", axis=-1),
        helper.make_node("Add", ["p", "bias"], ["a"], name="residual_add"),
        helper.make_node("Relu", ["a"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="matmul2"),
    ]
    model = model_of(nodes, [tensor("x", ["batch", 4])], [tensor("y", ["batch", 4])], [w, bias])
    convert_fp16(model, tmp_path / "fp16.onnx", keep_nodes=["residual_add"], verify=False)
    return onnx.load(str(tmp_path / "fp16.onnx"))


def test_plan_pins_overflow_prone_types_and_the_float32_islands_of_an_fp16_graph(tmp_path, model_of, tensor):
    converted = _fp16_graph(tmp_path, model_of, tensor)
    plan = plan_precision(converted, "fp16", "encoder")
    assert plan.graph_dtype == "float16"
    # not the casts the conversion added, not the float16 MatMuls / Relu
    assert sorted(plan.fp32_nodes) == ["residual_add", "softmax"]
    assert "Softmax" in plan.reasons["softmax"] and "fp16 ONNX export" in plan.reasons["residual_add"]
    assert plan_precision(converted, "fp32").fp32_nodes == []


def test_plan_of_a_float32_graph_pins_by_type_only(exported_folder):
    folder = exported_folder("unfused")
    decoder = onnx.load(str(folder / "decoder.onnx"))
    plan = plan_precision(decoder, "bf16", "decoder")
    assert plan.graph_dtype == "float32"
    assert plan.fp32_nodes == [n.name for n in decoder.graph.node if n.op_type in FP32_OP_TYPES]
    pinned_types = [n.op_type for n in decoder.graph.node if n.name in set(plan.fp32_nodes)]
    # 2 layers: 3 LayerNorms each plus the final one, self- and cross-attention softmax each
    assert pinned_types.count("LayerNormalization") == 7 and pinned_types.count("Softmax") == 4


def test_plan_rejects_unnamed_nodes_and_unknown_precisions(model_of, tensor):
    model = model_of([helper.make_node("Softmax", ["x"], ["y"])], [tensor("x", [2])], [tensor("y", [2])])
    with pytest.raises(ExportError, match="no name"):
        plan_precision(model, "fp16")
    with pytest.raises(ExportError, match="fp32, fp16, bf16"):
        plan_precision(model, "int4")
    with pytest.raises(ExportError):
        TrtBuildOptions(precision="fp8")


def test_layers_map_back_to_onnx_nodes_through_name_and_metadata():
    assert layer_onnx_nodes("ln") == {"ln"}
    assert layer_onnx_nodes("ONNXTRT_Broadcast_12", "[ONNX Layer: layers.0.fc1]") == {"ONNXTRT_Broadcast_12",
                                                                                       "layers.0.fc1"}
    assert layer_onnx_nodes("x", "[ONNX Layer: f/a][ONNX Layer: f/b]") == {"x", "f/a", "f/b"}


class _Layer:
    def __init__(self, name, type_, dtypes, metadata=""):
        self.name, self.type, self.metadata = name, type_, metadata
        self._outputs = [SimpleNamespace(dtype=d) for d in dtypes]
        self.precision, self.output_types = None, {}

    @property
    def num_outputs(self):
        return len(self._outputs)

    def get_output(self, i):
        return self._outputs[i]

    def set_output_type(self, i, dtype):
        self.output_types[i] = dtype


def test_pinning_sets_precision_and_output_types_on_matching_float_layers():
    trt = SimpleNamespace(float32="f32", float16="f16", bfloat16="bf16", int64="i64",
                          LayerType=SimpleNamespace(NORMALIZATION="norm", SOFTMAX="softmax", REDUCE="reduce",
                                                    ELEMENTWISE="ew", SHAPE="shape", MATRIX_MULTIPLY="mm"))
    layers = [
        _Layer("node_layer_norm", "norm", ["f32"]),  # by type (and name)
        _Layer("some_softmax", "softmax", ["f16"]),  # by type only
        _Layer("pow_node", "ew", ["f32"]),  # by name
        _Layer("ONNXTRT_helper_3", "ew", ["f32"], "[ONNX Layer: pow_node]"),  # by metadata
        _Layer("pow_node_shape", "shape", ["i64"], "[ONNX Layer: pow_node]"),  # integer output: left alone
        _Layer("matmul", "mm", ["f32"]),  # not planned
    ]
    network = SimpleNamespace(num_layers=len(layers), get_layer=lambda i: layers[i])
    plan = SimpleNamespace(fp32_nodes=["node_layer_norm", "pow_node"])
    assert _pin_layers(trt, network, plan) == 4
    assert [layer.precision for layer in layers] == ["f32", "f32", "f32", "f32", None, None]
    assert layers[1].output_types == {0: "f32"} and layers[4].output_types == {}


# ---------------------------------------------------------------- TensorRT missing

@pytest.mark.skipif(not MISSING, reason="TensorRT and CUDA are present: the unavailable path cannot be seen")
def test_missing_tensorrt_or_cuda_is_named_with_a_fix(tmp_path, exported_folder):
    from engines.runtime.trt_transcriber import TrtTranscriber
    from liteasr_export.app.runners import open_runner

    folder = exported_folder("unfused")
    for attempt in (lambda: TrtTranscriber(folder), lambda: open_runner("trt", artifacts=folder),
                    lambda: build_engines(folder)):
        with pytest.raises(EngineUnavailableError) as info:
            attempt()
        message = str(info.value)
        assert MISSING[0] in message and "--build-script" in message
    assert not (folder / "trt").exists()  # nothing half-built


# ---------------------------------------------------------------- real builds (TensorRT + CUDA)

@pytest.fixture(scope="module")
def built(tmp_path_factory, exported_folder) -> Path:
    folder = Path(shutil.copytree(exported_folder("unfused", low_rank=True), tmp_path_factory.mktemp("trt") / "a"))
    build_engines(folder, TrtBuildOptions(precision="fp32", profile=ProfileOptions(max_batch=2, max_decoder_tokens=64)))
    return folder


@pytest.mark.trt
@needs_trt
def test_fp32_engines_match_onnx_runtime(built, speech_clip):
    import torch

    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from engines.runtime.trt_transcriber import TrtTranscriber
    from liteasr_export.core.frontend import log_mel

    for graph in ("frontend", "encoder", "decoder"):
        assert engine_path(built, graph).stat().st_size > 0
    assert timing_cache_path(built).stat().st_size > 0
    assert load_manifest(built).data["tensorrt"]["engines"]["decoder"]["profile"]["past_key.0"]["max"][2] == 63
    trt_model, ort_model = TrtTranscriber(built), OnnxTranscriber(built, threads=1)
    features = np.stack([log_mel(speech_clip, 80), log_mel(speech_clip[: 16000], 80)])
    cross_trt = [c.cpu().numpy() for c in trt_model.encode(features)]
    for a, b in zip(cross_trt, ort_model.encode(features)):
        assert np.abs(a - b).max() <= 1e-3
    assert np.abs(trt_model.features(speech_clip) - ort_model.features(speech_clip)).max() <= 1e-4
    assert trt_model.transcribe_features(features) == ort_model.transcribe_features(features)
    with pytest.raises(Exception, match="outside the engine's profile"):
        trt_model.encoder.run({"input_features": torch.zeros(3, 80, 3000)})


@pytest.mark.trt
@needs_trt
def test_fp16_engines_pin_layers_and_stay_close(built, tmp_path, speech_clip):
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from engines.runtime.trt_transcriber import TrtTranscriber
    from liteasr_export.core.frontend import log_mel

    folder = Path(shutil.copytree(built, tmp_path / "fp16"))
    cache_before = timing_cache_path(folder).stat().st_size
    report = build_engines(folder, TrtBuildOptions(precision="fp16", graphs=("encoder", "decoder")))
    assert timing_cache_path(folder).stat().st_size >= cache_before  # loaded, extended, saved
    engines = load_manifest(folder).data["tensorrt"]["engines"]
    if report.engines["encoder"].typing == "weak":
        assert engines["encoder"]["fp32_layers"] >= 5 and engines["decoder"]["fp32_layers"] >= 7
    features = log_mel(speech_clip, 80)[None]
    got = [c.float().cpu().numpy() for c in TrtTranscriber(folder).encode(features)]
    for a, b in zip(got, OnnxTranscriber(folder, threads=1).encode(features)):
        assert np.isfinite(a).all() and np.abs(a - b).max() <= 5e-2


# ---------------------------------------------------------------- audio context

def test_audio_context_range_reads_both_engines_profiles():
    from engines.runtime.trt_transcriber import audio_context_range

    encoder = ((1, 80, 200), (1, 80, 3000), (8, 80, 3000))
    cross = ((1, 6, 100, 64), (1, 6, 1500, 64), (8, 6, 1500, 64))
    assert audio_context_range(encoder, cross) == (200, 3000)
    old_encoder = ((1, 80, 3000), (1, 80, 3000), (8, 80, 3000))  # engines built for 30 s only
    old_cross = ((1, 6, 1500, 64), (1, 6, 1500, 64), (8, 6, 1500, 64))
    assert audio_context_range(old_encoder, cross) == (3000, 3000)
    assert audio_context_range(encoder, old_cross) == (3000, 3000)


@pytest.mark.trt
@needs_trt
def test_engines_take_the_audio_contexts_of_their_profiles(built, speech_clip):
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from engines.runtime.trt_transcriber import TrtTranscriber
    from liteasr_export.core.errors import ArtifactError
    from liteasr_export.core.frontend import log_mel
    from liteasr_export.core.windowed import TranscribeOptions

    settings = TranscribeOptions(audio_context=1000)
    trt_model = TrtTranscriber(built, settings=settings)
    ort_model = OnnxTranscriber(built, threads=1, settings=settings)
    features = log_mel(speech_clip, 80)[None, :, :1000]
    for a, b in zip([c.cpu().numpy() for c in trt_model.encode(features)], ort_model.encode(features)):
        assert a.shape[2] == 500 and np.abs(a - b).max() <= 1e-3
    with pytest.raises(ArtifactError, match="200 to 3000 mel frames") as error:
        trt_model.configure(TranscribeOptions(audio_context=100))
    assert error.value.field == "audio_context"
