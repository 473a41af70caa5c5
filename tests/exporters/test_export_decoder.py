"""decoder.onnx: one graph for every step (no If/Loop), dynamic axes, and
logits equal to Hugging Face's cached decoder over a 20-step greedy decode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from liteasr_export.core.runtime.ort_session import create_session
from exporters.decoder import cross_kv, export_decoder
from liteasr_export.core.errors import ToleranceError
from liteasr_export.core.graphs import decoder_input_names, decoder_output_names, decoder_spec

SOT, NO_TIMESTAMPS = 50257, 50362  # tiny.en's prompt ids (the random models share its vocabulary size)


def check_decoder(
    model: "WhisperForConditionalGeneration",  # noqa: F821
    path: str | Path,
    encoder_hidden: torch.Tensor,
    prompt: list[int],
    *,
    steps: int = 20,
    atol: float = 1e-3,
    session=None,
) -> float:
    """Greedy-decode ``steps`` tokens with PyTorch (HF's own cache) and feed the
    same tokens to ``decoder.onnx`` in ONNX Runtime; return the largest logits
    difference, raising :class:`ToleranceError` above ``atol``."""
    session = session or create_session(path)
    n = model.config.decoder_layers
    batch = encoder_hidden.shape[0]
    with torch.no_grad():
        cross = [t.numpy() for t in cross_kv(model, encoder_hidden)]
        ids = torch.tensor([prompt] * batch, dtype=torch.long)
        heads = model.config.decoder_attention_heads
        head_dim = model.config.d_model // heads
        past = [np.zeros((batch, heads, 0, head_dim), np.float32)] * (2 * n)
        ref_cache = None
        worst = 0.0
        for step in range(steps):
            ref = model(encoder_outputs=(encoder_hidden,), decoder_input_ids=ids, cache=ref_cache,
                        use_cache=True)
            ref_cache = ref.cache
            feeds = dict(zip(decoder_input_names(n), [ids.numpy(), *past, *cross]))
            logits, *past = session.run(None, feeds)
            worst = max(worst, float(np.abs(logits - ref.logits.numpy()).max()))
            ids = ref.logits[:, -1].argmax(-1, keepdim=True)
    if not worst <= atol:
        raise ToleranceError(f"decoder.onnx logits differ from PyTorch by {worst:.3g} over {steps} steps "
                             f"(limit {atol})",
                             "re-export with the installed torch/onnxruntime; report the versions if it persists")
    return worst


@pytest.fixture(scope="module")
def model(random_whisper):
    return random_whisper(seed=1)


@pytest.fixture(scope="module")
def decoder_path(model, tmp_path_factory):
    return export_decoder(model, tmp_path_factory.mktemp("decoder") / "decoder.onnx")


@pytest.fixture(scope="module")
def session(decoder_path):
    return create_session(decoder_path, threads=1)


def _hidden(batch: int, seed: int = 0, frames: int = 1500) -> torch.Tensor:
    return torch.randn(batch, frames, 64, generator=torch.Generator().manual_seed(seed))


def test_graph_has_no_control_flow_and_the_agreed_interface(model, decoder_path):
    proto = onnx.load(str(decoder_path))
    ops = {node.op_type for node in proto.graph.node}
    assert not ops & {"If", "Loop", "Scan"}
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in proto.graph.input] == decoder_input_names(2)
    assert [o.name for o in proto.graph.output] == decoder_output_names(2)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in [*proto.graph.input, *proto.graph.output]}
    assert dims["input_ids"] == ["batch", "tokens"]
    assert dims["past_key.1"] == ["batch", 4, "past", 16]
    assert dims["cross_value.0"] == ["windows", 4, "frames", 16]  # shared by a window's rows
    assert dims["logits"] == ["batch", "tokens", 51864]
    assert dims["present_value.1"][0] == "batch" and dims["present_value.1"][2] not in (0, "past")
    spec = decoder_spec(model.config)
    assert [(t.name, list(t.shape)) for t in spec.inputs] == [(i.name, dims[i.name]) for i in proto.graph.input]
    assert [t.name for t in spec.outputs] == [o.name for o in proto.graph.output]


@pytest.mark.parametrize("batch,prompt", [(2, [SOT, NO_TIMESTAMPS]), (1, [SOT, 50259, 50359, 50363])])
def test_logits_match_pytorch_over_a_20_step_greedy_decode(model, decoder_path, session, batch, prompt):
    worst = check_decoder(model, decoder_path, _hidden(batch), prompt, steps=20, atol=1e-3, session=session)
    assert worst <= 1e-3


def test_several_new_tokens_after_a_past_are_causally_masked(model, session):
    """Feed 2 tokens, then 3 at once: logits equal one uncached 5-token pass."""
    hidden = _hidden(2, seed=3)
    ids = torch.tensor([[SOT, NO_TIMESTAMPS, 11, 22, 33], [SOT, NO_TIMESTAMPS, 44, 55, 66]])
    with torch.no_grad():
        ref = model(encoder_outputs=(hidden,), decoder_input_ids=ids, use_cache=False).logits.numpy()
        cross = [t.numpy() for t in cross_kv(model, hidden)]
    names = decoder_input_names(2)
    empty = [np.zeros((2, 4, 0, 16), np.float32)] * 4
    first, *past = session.run(None, dict(zip(names, [ids[:, :2].numpy(), *empty, *cross])))
    second, *present = session.run(None, dict(zip(names, [ids[:, 2:].numpy(), *past, *cross])))
    assert present[0].shape == (2, 4, 5, 16)
    np.testing.assert_allclose(first, ref[:, :2], atol=1e-4)
    np.testing.assert_allclose(second, ref[:, 2:], atol=1e-4)


def test_rows_of_a_window_share_its_cross_kv(model, session):
    """Three windows of four rows each (beams) read one copy of their
    window's cross K/V: logits equal PyTorch's over one copy per row, and
    the rows of different windows differ."""
    hidden = _hidden(3, seed=5)
    group = 4
    rows = np.random.default_rng(0).integers(0, 50000, (3 * group, 1))
    ids = np.concatenate([np.full((3 * group, 1), SOT), rows], axis=1)
    with torch.no_grad():
        per_row = hidden.repeat_interleave(group, 0)
        ref = model(encoder_outputs=(per_row,), decoder_input_ids=torch.tensor(ids), use_cache=False).logits.numpy()
        cross = [t.numpy() for t in cross_kv(model, hidden)]
    empty = [np.zeros((3 * group, 4, 0, 16), np.float32)] * 4
    logits, *_ = session.run(None, dict(zip(decoder_input_names(2), [ids, *empty, *cross])))
    np.testing.assert_allclose(logits, ref, atol=1e-4)
    assert not np.allclose(logits[0], logits[group])


def test_cross_length_is_dynamic(model, decoder_path, session):
    """Cross K/V of a shorter encoder output (e.g. a cropped-window model) work too."""
    assert check_decoder(model, decoder_path, _hidden(1, frames=300), [SOT, NO_TIMESTAMPS], steps=3,
                         session=session) <= 1e-3


def test_check_fails_when_the_graph_differs_from_the_model(model, decoder_path, session, random_whisper):
    other = random_whisper(seed=2)
    with pytest.raises(ToleranceError, match="decoder.onnx logits differ"):
        check_decoder(other, decoder_path, _hidden(1), [SOT, NO_TIMESTAMPS], steps=2, session=session)


def test_int8_decoder_quantizes_the_vocabulary_projection(model, tmp_path):
    path = export_decoder(model, tmp_path / "decoder.onnx", precision="int8")
    proto = onnx.load(str(path))
    ops = [node.op_type for node in proto.graph.node]
    assert "MatMul" in ops or "MatMulInteger" in ops
    int8_weights = [i for i in proto.graph.initializer if i.data_type == onnx.TensorProto.INT8]
    assert any(51864 in tuple(i.dims) for i in int8_weights)  # the (d_model, vocab) projection
    assert not {"If", "Loop"} & set(ops)
    # int8 is a lossy format: it must stay close, not equal
    worst = check_decoder(model, path, _hidden(1), [SOT, NO_TIMESTAMPS], steps=5, atol=0.5)
    assert worst > 0


def test_tiny_en_real_weights(tmp_path, speech_clip):
    """Real weights on real speech: the 1e-3 bound holds where logits are large."""
    from liteasr_export.core.frontend import log_mel
    from liteasr_export.model.sources import load_model

    loaded = load_model("tiny.en")
    features = torch.from_numpy(log_mel(speech_clip, 80)[None])
    with torch.no_grad():
        hidden = loaded.model.model.encoder(features).last_hidden_state
    path = export_decoder(loaded.model, tmp_path / "decoder.onnx")
    assert check_decoder(loaded.model, path, hidden, loaded.decoding.prompt, steps=20, atol=1e-3) <= 1e-3


@pytest.mark.parametrize("frames", [500, 100])
def test_cross_kv_of_a_trimmed_audio_context_match_pytorch(model, decoder_path, session, frames):
    """Cross K/V of fewer encoder frames (an audio context under 30 s: 10 s, 2 s)
    go through the same graph, whose ``frames`` axis is dynamic."""
    assert check_decoder(model, decoder_path, _hidden(2, seed=7, frames=frames), [SOT, NO_TIMESTAMPS],
                         steps=20, atol=1e-3, session=session) <= 1e-3
