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
    assert ranges["mel_frames"] == DimRange(200, 3000, 3000)  # the encoder's input: 2 s to 30 s, tuned for 30 s
    assert ranges["frames"] == DimRange(100, 1500, 1500)  # its output and the decoder's cross K/V: half of it
    assert ranges["samples"] == DimRange(1, N_SAMPLES, N_SAMPLES)
    # opt_past never exceeds the largest cache
    assert axis_ranges(DIMS, ProfileOptions(max_decoder_tokens=16, opt_past=64))["past"] == DimRange(0, 15, 15)


def test_audio_context_ranges_are_options_and_keep_encoder_and_decoder_together():
    ranges = axis_ranges(DIMS, ProfileOptions(min_mel_frames=1000, opt_mel_frames=2000))
    assert ranges["mel_frames"] == DimRange(1000, 2000, 3000)
    assert ranges["frames"] == DimRange(500, 1000, 1500)
    fixed = axis_ranges(DIMS, ProfileOptions(min_mel_frames=3000))  # engines for 30 s only
    assert fixed["mel_frames"] == DimRange(3000, 3000, 3000) and fixed["frames"] == DimRange(1500, 1500, 1500)
    short = axis_ranges({"n_text_ctx": 448, "n_audio_ctx": 750})  # a model of 15 s: the longest is its own
    assert short["mel_frames"] == DimRange(200, 1500, 1500)
    encoder = graph_profile("encoder", [{"name": "input_features", "shape": ["batch", 80, "mel_frames"]}], ranges)
    assert encoder.shapes["input_features"] == ShapeRange((1, 80, 1000), (1, 80, 2000), (8, 80, 3000))
    # a folder exported before the length was dynamic: its fixed 3000 stays
    old = graph_profile("encoder", [{"name": "input_features", "shape": ["batch", 80, 3000]}], ranges)
    assert old.shapes["input_features"] == ShapeRange((1, 80, 3000), (1, 80, 3000), (8, 80, 3000))
    for bad in (dict(min_mel_frames=201), dict(min_mel_frames=0), dict(min_mel_frames=400, opt_mel_frames=200)):
        with pytest.raises(ExportError, match="mel_frames") as error:
            ProfileOptions(**bad)
        assert error.value.field in ("min_mel_frames", "opt_mel_frames")
    with pytest.raises(ExportError, match="at most 3000"):
        axis_ranges(DIMS, ProfileOptions(opt_mel_frames=4000))


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
        "--minShapes=input_ids:1x1,cross_key.0:1x6x100x64",
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
    assert decoder["cross_key.0"] == ShapeRange((1, heads, 100, head_dim), (1, heads, 1500, head_dim),
                                                (4, heads, 1500, head_dim))
    # the encoder takes 2 s to 30 s of mel frames, tuned for 30 s
    assert profiles["encoder"].shapes["input_features"] == ShapeRange((1, 80, 200), (1, 80, 3000), (4, 80, 3000))
    assert profiles["frontend"].shapes["audio"].max == (4, N_SAMPLES)
    # reading the ONNX file directly gives the same profile as the manifest's record
    assert onnx_profile(folder / "decoder.onnx", manifest.model, ProfileOptions(max_batch=4)).shapes == decoder
