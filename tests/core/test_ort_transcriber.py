"""ONNX Runtime transcription from an artifacts folder: greedy tokens equal to
the PyTorch reference (dense and low-rank), long audio, other sample rates,
broken folders, and no torch / transformers import on that path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
from exporters.artifacts import export_artifacts
from liteasr_export.core.graphs import GRAPH_FILES
from liteasr_export.core.manifest import load_manifest, update_manifest, write_manifest
from liteasr_export.core.decoding import SearchOptions
from liteasr_export.core.errors import ArtifactError, LiteASRError
from liteasr_export.core.frontend import SAMPLE_RATE, log_mel, resample, split_windows
from liteasr_export.core.windowed import TranscribeOptions
from liteasr_export.model.torch_transcriber import TorchTranscriber

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["dense", "low-rank"])
def exported(request, tmp_path_factory, tiny_en_tokenizer_json, random_loaded):
    loaded = random_loaded(tiny_en_tokenizer_json, request.param == "low-rank", seed=5)
    out = tmp_path_factory.mktemp(f"artifacts-{request.param}")
    export_artifacts(loaded, out)
    return loaded, out


@pytest.fixture(scope="module")
def dense(tmp_path_factory, tiny_en_tokenizer_json, random_loaded):
    loaded = random_loaded(tiny_en_tokenizer_json, False, seed=6)
    out = tmp_path_factory.mktemp("artifacts")
    export_artifacts(loaded, out)
    return loaded, out


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def test_greedy_tokens_equal_pytorch(exported, speech_clip, random_max_new_tokens):
    loaded, out = exported
    features = np.stack([log_mel(speech_clip, 80), log_mel(_noise(3.0), 80)])
    expected = TorchTranscriber(loaded).transcribe_features(features)
    got = OnnxTranscriber(out, threads=1).transcribe_features(features)
    assert got == expected
    assert all(len(ids) == random_max_new_tokens for ids in got)  # the loop ran to its limit on both


def test_long_audio_is_split_into_windows_like_pytorch(dense, speech_clip):
    loaded, out = dense
    audio = np.concatenate([speech_clip, _noise(2.0), speech_clip, speech_clip, speech_clip, _noise(12.0, 1)])
    assert len(split_windows(audio)) == 2
    text = OnnxTranscriber(out, threads=1).transcribe(audio)
    assert text == TorchTranscriber(loaded).transcribe(audio)
    assert text


def test_frontend_graph_and_numpy_frontend_agree(dense, speech_clip):
    _, out = dense
    graph = OnnxTranscriber(out, threads=1, frontend="graph")
    numpy_frontend = OnnxTranscriber(out, threads=1, frontend="numpy")
    assert graph.frontend is not None and numpy_frontend.frontend is None
    assert np.abs(graph.features(speech_clip) - numpy_frontend.features(speech_clip)).max() <= 1e-4
    assert graph.transcribe(speech_clip) == numpy_frontend.transcribe(speech_clip)


def test_other_sample_rates_are_resampled(dense, speech_clip):
    transcriber = OnnxTranscriber(dense[1], threads=1)
    audio_8k = resample(speech_clip, SAMPLE_RATE, 8000)
    assert transcriber.transcribe(audio_8k, sample_rate=8000) == transcriber.transcribe(resample(audio_8k, 8000))


def test_manifest_describes_the_folder(dense):
    loaded, out = dense
    manifest = load_manifest(out)
    assert manifest.model["decoder_layers"] == 2 and manifest.model["n_mels"] == 80
    assert manifest.decoding == loaded.decoding
    assert manifest.frontend.n_mels == 80
    decoder = manifest.data["graphs"]["decoder"]
    assert decoder["file"] == "decoder.onnx"
    assert decoder["inputs"][1] == {"name": "past_key.0", "shape": ["batch", 4, "past", 16], "dtype": "float32"}
    assert manifest.data["graphs"]["frontend"]["outputs"][0]["shape"] == ["batch", 80, 3000]
    assert {o["name"] for o in manifest.data["graphs"]["encoder"]["outputs"]} >= {"cross_key.1", "cross_value.1"}


def test_update_manifest_adds_sections_and_keeps_the_rest(dense, tmp_path):
    copy = Path(shutil.copytree(dense[1], tmp_path / "copy"))
    update_manifest(copy, parity={"decoder": 1e-6})
    data = load_manifest(copy).data
    assert data["parity"] == {"decoder": 1e-6}
    assert data["graphs"] == load_manifest(dense[1]).data["graphs"]


@pytest.mark.parametrize("graph", ["encoder", "decoder", "frontend"])
def test_missing_graph_is_named(dense, tmp_path, graph):
    copy = Path(shutil.copytree(dense[1], tmp_path / "copy"))
    (copy / GRAPH_FILES[graph]).unlink()
    with pytest.raises(ArtifactError, match=GRAPH_FILES[graph]):
        OnnxTranscriber(copy)


def test_missing_external_weights_and_tokenizer_are_named(dense, tmp_path):
    copy = Path(shutil.copytree(dense[1], tmp_path / "copy"))
    data = load_manifest(copy).data
    data["graphs"]["decoder"]["data"] = "decoder.onnx.data"  # as written for graphs over 2 GB
    write_manifest(copy, data)
    with pytest.raises(ArtifactError, match="decoder graph weights decoder.onnx.data"):
        OnnxTranscriber(copy)
    (copy / "tokenizer.json").unlink()
    del data["graphs"]["decoder"]["data"]
    write_manifest(copy, data)
    with pytest.raises(ArtifactError, match="tokenizer.json"):
        load_manifest(copy)


def test_not_an_artifacts_folder(tmp_path):
    with pytest.raises(ArtifactError, match="manifest.json"):
        OnnxTranscriber(tmp_path)
    with pytest.raises(ArtifactError, match="not found"):
        OnnxTranscriber(tmp_path / "nowhere")


_CHILD = """
import json, sys
from liteasr_export.app.cli import eval_main, transcribe_main
code = transcribe_main(["--engine", "onnx", "--artifacts", sys.argv[1], "--threads", "1", "--no-timestamps", sys.argv[2]])
code += eval_main(["--engine", "onnx", "--artifacts", sys.argv[1], "--threads", "1", "--eval", sys.argv[3]])
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
print(json.dumps({"code": code, "heavy": heavy}))
"""


def test_cli_onnx_path_imports_neither_torch_nor_transformers(dense, speech_clip, tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, speech_clip, SAMPLE_RATE)
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(json.dumps({"audio": "a.wav", "text": "anything"}) + "\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", _CHILD, str(dense[1]), str(wav), str(manifest)],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    text, wer_line, status = result.stdout.strip().splitlines()
    assert json.loads(status) == {"code": 0, "heavy": []}  # transcription and scoring alike
    assert text == OnnxTranscriber(dense[1], threads=1).transcribe(speech_clip)
    assert wer_line.startswith("WER ") and "on 1 utterances" in wer_line


def test_tiny_en_transcripts_equal_pytorch(tmp_path):
    """Real weights: the whole ONNX pipeline against the PyTorch reference."""
    from calibration.datasets import resolve_set
    from liteasr_export.core.frontend import load_audio
    from liteasr_export.model.sources import load_model

    loaded = load_model("tiny.en")
    export_artifacts(loaded, tmp_path)
    onnx_transcriber = OnnxTranscriber(tmp_path, threads=2)
    torch_transcriber = TorchTranscriber(loaded)
    for utterance in resolve_set("builtin", purpose="eval")[:3]:
        audio = load_audio(utterance.audio)
        text = onnx_transcriber.transcribe(audio)
        assert text == torch_transcriber.transcribe(audio)
        assert len(text.split()) >= 5


# ------------------------------------------------------------ audio context

def _encoded_lengths(transcriber) -> list[int]:
    """Record the mel frames of every batch ``transcriber`` encodes."""
    lengths: list[int] = []
    encode = transcriber.encode
    transcriber.encode = lambda features: lengths.append(features.shape[-1]) or encode(features)
    return lengths


@pytest.mark.parametrize("frames", [1000, 200])
def test_a_trimmed_audio_context_gives_pytorch_s_tokens(exported, speech_clip, frames):
    """Windows are encoded on their first ``frames`` mel frames, by ONNX
    Runtime and PyTorch alike (both slice the positional table)."""
    loaded, out = exported
    settings = TranscribeOptions(search=SearchOptions.greedy(), audio_context=frames)
    features = np.stack([log_mel(speech_clip, 80), log_mel(_noise(3.0), 80)])
    onnx_transcriber = OnnxTranscriber(out, threads=1, settings=settings)
    lengths = _encoded_lengths(onnx_transcriber)
    got = onnx_transcriber.transcribe_features(features)
    assert lengths == [frames]
    assert got == TorchTranscriber(loaded, settings=settings).transcribe_features(features)
    full = OnnxTranscriber(out, threads=1, settings=TranscribeOptions(search=SearchOptions.greedy()))
    assert got != full.transcribe_features(features)  # the model saw less: its tokens change


def test_full_context_is_the_default_and_encodes_30_s(dense, speech_clip):
    _, out = dense
    audio = np.concatenate([speech_clip, _noise(1.0)])
    default = OnnxTranscriber(out, threads=1)
    assert TranscribeOptions().audio_context is None and default.context_frames == 3000
    lengths = _encoded_lengths(default)
    expected = default.transcribe_detailed([audio])[0]
    assert lengths == [3000]
    for same in ("full", None, 3000, 4000):  # more than 30 s is 30 s
        transcriber = OnnxTranscriber(out, threads=1, settings=TranscribeOptions(audio_context=same))
        assert transcriber.transcribe_detailed([audio])[0] == expected


@pytest.mark.parametrize("timestamps", [False, True])
def test_a_short_context_cuts_long_audio_into_short_windows(dense, speech_clip, timestamps):
    """No audio is dropped: a 2 s context decodes a longer recording in
    windows of at most 2 s, as PyTorch does."""
    loaded, out = dense
    audio = np.concatenate([speech_clip, _noise(1.0)])
    assert audio.size > 4 * 2 * SAMPLE_RATE
    settings = TranscribeOptions(search=SearchOptions.greedy(), timestamps=timestamps, audio_context=200)
    transcriber = OnnxTranscriber(out, threads=1, settings=settings)
    lengths = _encoded_lengths(transcriber)
    result = transcriber.transcribe_detailed([audio])[0]
    assert set(lengths) == {200}
    assert len(result.windows) >= 4 and result.windows[0].start == 0
    assert all(w.end - w.start <= 2.0 + 1e-9 for w in result.windows)
    if not timestamps:  # windows tile the audio
        assert result.windows[-1].end == pytest.approx(audio.size / SAMPLE_RATE)
    expected = TorchTranscriber(loaded, settings=settings).transcribe_detailed([audio])[0]
    assert (result.text, result.segments) == (expected.text, expected.segments)  # log-probs differ in float noise
    assert [(w.start, w.end) for w in result.windows] == [(w.start, w.end) for w in expected.windows]


@pytest.mark.parametrize("bad", [201, 0, -2, 1.5, "half", True])
def test_a_bad_audio_context_names_the_parameter(dense, bad):
    transcriber = OnnxTranscriber(dense[1], threads=1)
    with pytest.raises(LiteASRError, match="audio_context") as error:
        transcriber.configure(TranscribeOptions(audio_context=bad))
    assert error.value.field == "audio_context" and "--" not in str(error.value)
    assert transcriber.settings.audio_context is None  # refused settings are not kept


def test_a_fixed_length_encoder_refuses_a_short_context(dense, tmp_path, copy_artifacts):
    """A folder exported before the encoder's length was dynamic (3000 mel
    frames only) still transcribes 30 s windows, and says why it cannot
    take a shorter context."""
    import onnx

    copy = copy_artifacts(dense[1], tmp_path / "old")
    model = onnx.load(str(copy / "encoder.onnx"))
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 3000
    onnx.save(model, str(copy / "encoder.onnx"))
    transcriber = OnnxTranscriber(copy, threads=1, verify=False)
    assert transcriber.configure(TranscribeOptions(audio_context="full")).context_frames == 3000
    with pytest.raises(ArtifactError, match="exported before") as error:
        transcriber.configure(TranscribeOptions(audio_context=1000))
    assert error.value.field == "audio_context"


def test_auto_encodes_each_window_at_its_length_bucket(dense, speech_clip):
    """``auto``: a 3 s recording is encoded at 4 s, a 12 s one at 15 s
    (audio + 1 s, rounded up to a bucket), the full window of a long one at
    30 s and its rest at its own bucket, in separate groups of one batch."""
    from liteasr_export.core.windowed import auto_context_frames

    _, out = dense
    settings = TranscribeOptions(search=SearchOptions.greedy(), audio_context="auto")
    transcriber = OnnxTranscriber(out, threads=1, settings=settings)
    lengths = _encoded_lengths(transcriber)
    short, middle, long = _noise(3.0, 1), _noise(12.0, 2), _noise(35.0, 3)
    results = transcriber.transcribe_detailed([short, middle, long])
    assert [w.audio_context for w in results[0].windows] == [400]
    assert [w.audio_context for w in results[1].windows] == [1500]
    first, rest = results[2].windows  # cut in the quietest moment of its last 5 s: about 25 to 30 s, and the rest
    assert first.audio_context == 3000
    rest_samples = round((rest.end - rest.start) * SAMPLE_RATE)
    assert 5 <= rest.end - rest.start <= 10 and rest.audio_context == auto_context_frames(rest_samples) in (600, 700, 800, 900, 1000, 1200)
    # one encode per bucket: the windows of one bucket are encoded together
    assert sorted(lengths) == sorted({400, 1500, 3000, rest.audio_context})
    assert not any(w.full_context_retry for r in results for w in r.windows)


def test_a_failed_trimmed_decode_is_decoded_again_on_30_s(dense, speech_clip):
    """A window that fails the fallback test on its trimmed context (here
    every window: no log-probability passes 0) is decoded again on the full
    30 s, with the whole temperature fallback; its report says so. Without
    the failure, nothing is decoded twice."""
    _, out = dense
    failing = SearchOptions(beam_size=1, temperatures=(0.0, 0.5), logprob_threshold=0.0, no_speech_threshold=None)
    transcriber = OnnxTranscriber(out, threads=1, settings=TranscribeOptions(search=failing, audio_context=200))
    lengths = _encoded_lengths(transcriber)
    windows = transcriber.transcribe_detailed([speech_clip[: 2 * SAMPLE_RATE]])[0].windows
    assert lengths == [200, 3000]
    assert len(windows) == 1 and windows[0].full_context_retry and windows[0].audio_context == 3000
    assert windows[0].temperatures_tried == [0.0, 0.5]  # the fallback ran on 30 s, not on the trimmed context

    passing = TranscribeOptions(search=SearchOptions.greedy(), audio_context=200)
    transcriber = OnnxTranscriber(out, threads=1, settings=passing)
    lengths = _encoded_lengths(transcriber)
    windows = transcriber.transcribe_detailed([speech_clip[: 2 * SAMPLE_RATE]])[0].windows
    assert lengths == [200] and not windows[0].full_context_retry and windows[0].audio_context == 200


@pytest.mark.parametrize("text, expected", [("full", "full"), ("auto", "auto"), (" AUTO ", "auto"), ("10", 1000),
                                            ("7.5s", 750), ("1000f", 1000), ("999f", 1000), ("1e3f", 1000), ("45", 3000),
                                            ("0.001", 2)])
def test_audio_context_as_a_person_writes_it(text, expected):
    from liteasr_export.core.windowed import parse_audio_context

    assert parse_audio_context(text) == expected


@pytest.mark.parametrize("text", ["", "half", "-1", "0", "nan", "inf", "10x", "1_000f", "1 0s", "0x10"])
def test_an_unreadable_audio_context_names_the_parameter(text):
    from liteasr_export.core.windowed import parse_audio_context

    with pytest.raises(LiteASRError, match="`?audio_context") as error:
        parse_audio_context(text)
    assert error.value.field == "audio_context" and "--" not in str(error.value)
