"""One spec per graph (liteasr_export.core.graphs): file names, interfaces, opsets,
tolerances and what each export precision makes of each graph."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from liteasr_export.core.graphs import (ENCODER_FRAMES_AXIS, GRAPH_FILES, GRAPH_PRECISION, GRAPH_SPECS,
                                   MEL_FRAMES_AXIS, MEL_FRAMES_PER_ENCODER_FRAME, MIN_OPSET, N_MEL_FRAMES, OPSETS,
                                   PRECISIONS, TRT_PRECISIONS, cross_names, decoder_input_names, decoder_output_names,
                                   graph_precision, tolerance_for)

TINY = SimpleNamespace(num_mel_bins=80, d_model=384, decoder_attention_heads=6, decoder_layers=4,
                       max_source_positions=1500, vocab_size=51864)


@pytest.mark.parametrize("graph", sorted(GRAPH_SPECS))
def test_each_graph_has_one_spec(graph):
    spec = GRAPH_SPECS[graph](TINY)
    assert spec.name == graph and spec.filename == GRAPH_FILES[graph]
    assert spec.opset == OPSETS[graph] >= MIN_OPSET
    compared = [n for n in spec.output_names if not n.startswith("present_")]  # the K/V cache feeds the logits
    for name in compared:
        for precision in ("fp32", "fp16", "int8"):
            assert tolerance_for(precision, name).floor > 0


def test_encoder_outputs_are_decoder_inputs():
    encoder, decoder = GRAPH_SPECS["encoder"](TINY), GRAPH_SPECS["decoder"](TINY)
    assert encoder.output_names[1:] == cross_names(4) == decoder.input_names[-8:]
    assert decoder.input_names == decoder_input_names(4) and decoder.output_names == decoder_output_names(4)
    assert GRAPH_SPECS["frontend"](TINY).output_names == encoder.input_names


def test_the_audio_context_axes_are_dynamic_and_shared_by_encoder_and_decoder():
    """The encoder takes any number of mel frames (``mel_frames``) and returns
    ``frames`` = half of them, the length axis of the decoder's cross K/V too;
    the frontend still writes whole 30 s windows."""
    encoder, decoder = GRAPH_SPECS["encoder"](TINY), GRAPH_SPECS["decoder"](TINY)
    assert encoder.inputs[0].shape == ("batch", 80, MEL_FRAMES_AXIS) and MEL_FRAMES_AXIS == "mel_frames"
    assert encoder.inputs[0].dynamic_axes == {0: "batch", 2: "mel_frames"}
    assert encoder.output("last_hidden_state").shape == ("batch", ENCODER_FRAMES_AXIS, 384)
    for name in cross_names(4):
        assert encoder.output(name).shape == ("batch", 6, ENCODER_FRAMES_AXIS, 64)
        assert next(t for t in decoder.inputs if t.name == name).shape == ("windows", 6, ENCODER_FRAMES_AXIS, 64)
    assert ENCODER_FRAMES_AXIS == "frames"  # what decoder graphs were always exported with
    assert GRAPH_SPECS["frontend"](TINY).outputs[0].shape == ("batch", 80, N_MEL_FRAMES)
    assert N_MEL_FRAMES // MEL_FRAMES_PER_ENCODER_FRAME == TINY.max_source_positions


def test_precision_of_each_graph():
    assert set(GRAPH_PRECISION) == set(PRECISIONS) and set(TRT_PRECISIONS) < set(PRECISIONS)
    assert {p: graph_precision(p, "decoder") for p in PRECISIONS} == {"fp32": "fp32", "fp16": "fp32",
                                                                       "bf16": "fp32", "int8": "int8"}
    assert {graph_precision(p, "frontend") for p in PRECISIONS} == {"fp32"}
    assert graph_precision("fp16", "encoder") == "fp16" and graph_precision("bf16", "encoder") == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        graph_precision("fp8", "encoder")


def test_each_exported_graph_describes_itself(random_artifacts):
    """The key manifest fields are in every .onnx file's metadata_props."""
    import json

    import onnx

    from liteasr_export.core.manifest import load_manifest

    manifest = load_manifest(random_artifacts)
    for graph in ("frontend", "encoder", "decoder"):
        model = onnx.load(str(manifest.graph_path(graph)), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        assert props["liteasr.format"] == manifest.data["format"] and props["liteasr.graph"] == graph
        assert props["liteasr.name"] == manifest.data["name"] and props["liteasr.precision"] == "fp32"
        assert json.loads(props["liteasr.model"]) == manifest.model


def test_a_manifest_says_whether_its_decoder_shares_cross_kv():
    """Folders exported before the sharing (cross K/V batched like the rows)
    are decoded with one copy per row; newer ones with one per window."""
    from pathlib import Path

    from liteasr_export.core.graphs import shares_cross
    from liteasr_export.core.manifest import Manifest

    def manifest(first_axis):
        inputs = [{"name": "input_ids", "shape": ["batch", "tokens"]},
                  {"name": "cross_key.0", "shape": [first_axis, 6, "frames", 64]}]
        return Manifest(Path("."), {"graphs": {"decoder": {"inputs": inputs}}})

    assert manifest("windows").decoder_shares_cross
    assert not manifest("batch").decoder_shares_cross
    assert not Manifest(Path("."), {"graphs": {}}).decoder_shares_cross
    assert shares_cross(["windows", 6]) and not shares_cross(["batch", 6]) and not shares_cross([])
