"""frontend.onnx: PCM -> normalized log-mel equal to the Python frontend
(max abs diff <= 1e-4), built from plain TensorRT-parsable operators."""

from __future__ import annotations

import numpy as np
import pytest

from liteasr_export.core.runtime.ort_session import create_session
from exporters.frontend import build_frontend, dft_matrix, export_frontend
from liteasr_export.core.frontend import N_FFT, N_SAMPLES, log_mel

TOLERANCE = 1e-4


@pytest.fixture(scope="module", params=[80, 128])
def frontend(request, tmp_path_factory):
    n_mels = request.param
    path = export_frontend(n_mels, tmp_path_factory.mktemp("frontend") / "frontend.onnx")
    return n_mels, create_session(path, threads=1)


def _run(frontend, audio: np.ndarray) -> np.ndarray:
    n_mels, session = frontend
    out = session.run(None, {"audio": np.atleast_2d(audio).astype(np.float32)})[0]
    assert out.shape == (np.atleast_2d(audio).shape[0], n_mels, 3000)
    return out


def test_dft_matrix_is_the_windowed_rfft():
    frame = np.random.default_rng(0).standard_normal(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    expected = np.fft.rfft(frame * window)
    got = frame @ dft_matrix().astype(np.float64)
    n_bins = N_FFT // 2 + 1
    np.testing.assert_allclose(got[:n_bins] + 1j * got[n_bins:], expected, atol=1e-4)


def test_graph_uses_only_portable_operators():
    proto = build_frontend(80)
    assert [i.name for i in proto.graph.input] == ["audio"]
    assert [o.name for o in proto.graph.output] == ["input_features"]
    ops = {node.op_type for node in proto.graph.node}
    assert not ops & {"If", "Loop", "Scan", "STFT", "DFT"}
    assert "MatMul" in ops
    assert all(o.version >= 17 for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    pad_modes = {a.s for n in proto.graph.node if n.op_type == "Pad" for a in n.attribute if a.name == "mode"}
    assert pad_modes <= {b"constant"}


def test_speech_equals_the_python_frontend(frontend, speech_clip):
    n_mels = frontend[0]
    diff = np.abs(_run(frontend, speech_clip)[0] - log_mel(speech_clip, n_mels)).max()
    assert diff <= TOLERANCE


@pytest.mark.parametrize("length", [1, 150, 200, 201, 399, 400, 16000, 160 * 777 + 13, N_SAMPLES])
def test_every_length_up_to_one_window(frontend, length):
    audio = (0.1 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    diff = np.abs(_run(frontend, audio)[0] - log_mel(audio, frontend[0])).max()
    assert diff <= TOLERANCE


def test_pure_tone_and_silence(frontend):
    """A loud tone has the widest dynamic range fp32 DFT must resolve; silence
    hits the log floor."""
    tone = np.sin(np.arange(48000) * 0.3).astype(np.float32)
    silence = np.zeros(8000, np.float32)
    for audio in (tone, silence):
        assert np.abs(_run(frontend, audio)[0] - log_mel(audio, frontend[0])).max() <= TOLERANCE


def test_each_row_of_a_batch_is_normalised_by_its_own_max(frontend):
    rng = np.random.default_rng(7)
    loud = rng.standard_normal(32000).astype(np.float32)
    quiet = (1e-3 * rng.standard_normal(32000)).astype(np.float32)
    out = _run(frontend, np.stack([loud, quiet]))
    for row, audio in zip(out, (loud, quiet)):
        assert np.abs(row - log_mel(audio, frontend[0])).max() <= TOLERANCE
    assert not np.allclose(out[0], out[1], atol=0.1)
