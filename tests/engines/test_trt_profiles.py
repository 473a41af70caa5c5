"""TensorRT optimization profiles: axis ranges from the model and options,
shapes read from the graphs, trtexec arguments, and bad options."""

from __future__ import annotations

import pytest

from engines.build.trt_profiles import (
    DimRange,
    ProfileOptions,
    ShapeRange,
    axis_ranges,
    graph_profile,
    manifest_profiles,
    onnx_profile,
)
from liteasr_export.core.graphs import decoder_input_names
from liteasr_export.core.manifest import load_manifest
from liteasr_export.core.errors import ExportError
from liteasr_export.core.frontend import N_SAMPLES

DIMS = {"n_text_ctx": 448, "n_audio_ctx": 1500}


def test_axis_ranges_follow_model_and_options():
    ranges = axis_ranges(DIMS, ProfileOptions(max_batch=4, opt_batch=2, max_decoder_tokens=200, opt_past=32))
    assert ranges["batch"] == DimRange(1, 2, 4)
    assert ranges["windows"] == DimRange(1, 2, 4)  # the decoder's cross K/V, one per window at most
    assert ranges["tokens"] == DimRange(1, 1, 200)
    assert ranges["past"] == DimRange(0, 32, 199)  # the cache starts empty
    assert ranges["frames"] == DimRange(1500, 1500, 1500)
    assert ranges["samples"] == DimRange(1, N_SAMPLES, N_SAMPLES)
    # opt_past never exceeds the largest cache
    assert axis_ranges(DIMS, ProfileOptions(max_decoder_tokens=16, opt_past=64))["past"] == DimRange(0, 15, 15)


def test_bad_options_are_rejected_with_a_fix():
    with pytest.raises(ExportError, match="at most 448"):
        axis_ranges(DIMS, ProfileOptions(max_decoder_tokens=449))
    with pytest.raises(ExportError, match="opt .* <= max"):
        ProfileOptions(max_batch=2, opt_batch=4)
    with pytest.raises(ExportError, match="max_batch") as error:  # the field; liteasr-export shows --max-batch
        ProfileOptions(max_batch=0)
    assert error.value.field == "max_batch" and "--" not in str(error.value)
    with pytest.raises(ExportError):
        DimRange(3, 2, 4)


def test_graph_profile_keeps_static_dims_and_names_uncovered_ones():
    ranges = axis_ranges(DIMS, ProfileOptions(max_batch=8))
    inputs = [{"name": "input_ids", "shape": ["batch", "tokens"]},
              {"name": "past_key.0", "shape": ["batch", 6, "past", 64]}]
    profile = graph_profile("decoder", inputs, ranges)
    assert profile.shapes["past_key.0"] == ShapeRange((1, 6, 0, 64), (1, 6, 64, 64), (8, 6, 447, 64))
    assert profile.shapes["input_ids"].dynamic
    assert not graph_profile("x", [{"name": "fixed", "shape": [2, 3]}], ranges).shapes["fixed"].dynamic
    with pytest.raises(ExportError, match=r"mystery\[1\]=width"):
        graph_profile("g", [{"name": "mystery", "shape": ["batch", "width"]}], ranges)
    with pytest.raises(ExportError, match=r"unnamed\[0\]=\?"):
        graph_profile("g", [{"name": "unnamed", "shape": [0, 4]}], ranges)


def test_trtexec_arguments():
    ranges = axis_ranges(DIMS, ProfileOptions(max_batch=2))
    profile = graph_profile("decoder", [{"name": "input_ids", "shape": ["batch", "tokens"]},
                                        {"name": "cross_key.0", "shape": ["batch", 6, "frames", 64]}], ranges)
    assert profile.trtexec_args() == [
        "--minShapes=input_ids:1x1,cross_key.0:1x6x1500x64",
        "--optShapes=input_ids:1x1,cross_key.0:1x6x1500x64",
        "--maxShapes=input_ids:2x448,cross_key.0:2x6x1500x64",
    ]
    assert profile.to_dict()["input_ids"] == {"min": [1, 1], "opt": [1, 1], "max": [2, 448]}


def test_profiles_of_an_exported_folder_read_names_from_the_graphs(exported_folder):
    folder = exported_folder("unfused")
    manifest = load_manifest(folder)
    profiles = manifest_profiles(manifest, ProfileOptions(max_batch=4))
    assert set(profiles) == {"frontend", "encoder", "decoder"}
    n_layers, heads, head_dim = (manifest.model[k] for k in ("decoder_layers", "decoder_heads", "head_dim"))
    decoder = profiles["decoder"].shapes
    assert list(decoder) == decoder_input_names(n_layers)
    assert decoder["past_value.1"] == ShapeRange((1, heads, 0, head_dim), (1, heads, 64, head_dim),
                                                 (4, heads, 447, head_dim))
    assert decoder["cross_key.0"].max == (4, heads, 1500, head_dim)
    assert profiles["encoder"].shapes["input_features"] == ShapeRange((1, 80, 3000), (1, 80, 3000), (4, 80, 3000))
    assert profiles["frontend"].shapes["audio"].max == (4, N_SAMPLES)
    # reading the ONNX file directly gives the same profile as the manifest's record
    assert onnx_profile(folder / "decoder.onnx", manifest.model, ProfileOptions(max_batch=4)).shapes == decoder
