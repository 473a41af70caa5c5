"""Audio that would decode to garbage: NaN / infinite samples are refused,
float audio far outside [-1, 1] (even beyond float32's range) is normalized
with a warning, a header's absurd sample rate or duration is refused before
decoding, decoding holds the output and one block in memory, a folder or a
FIFO is not "not found", and one bad or missing file does not end a whole
evaluation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
import warnings

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.core.errors import EXIT_BAD_INPUT, EXIT_ITEMS_FAILED, AudioError, AudioTooLongError
from liteasr_export.core.frontend import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioWarning, check_samples, load_audio

CLI = "import sys; from liteasr_export.app.cli import {0} as m; sys.exit(m(sys.argv[1:]))"


def _float_wav(path, audio):
    sf.write(str(path), np.asarray(audio, np.float32), 16000, subtype="FLOAT", format="WAV")
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, speech_clip, bad):
    audio = speech_clip.copy()
    audio[1000:1003] = bad
    with pytest.raises(AudioError, match="3 NaN or infinite samples"):
        load_audio(_float_wav(tmp_path / "bad.wav", audio))
    with pytest.raises(AudioError, match="NaN or infinite"):
        check_samples(audio)


def test_transcriber_refuses_non_finite_arrays(random_artifacts):
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber

    audio = np.zeros(16000, np.float32)
    audio[5] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        OnnxTranscriber(random_artifacts).transcribe(audio)


def test_mis_scaled_float_audio_is_normalized_with_a_warning(tmp_path, speech_clip):
    scaled = _float_wav(tmp_path / "int16-range.wav", speech_clip * 32768.0)
    with pytest.warns(AudioWarning, match="far outside \\[-1, 1\\]; normalized"):
        audio = load_audio(scaled)
    assert abs(float(np.max(np.abs(audio))) - 1.0) < 1e-3
    np.testing.assert_allclose(audio, speech_clip / np.max(np.abs(speech_clip)), atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(_float_wav(tmp_path / "loud.wav", np.clip(speech_clip * 1.5, -1.9, 1.9)))  # mild: left alone


def test_cli_warns_on_one_line(tmp_path, speech_clip, random_artifacts):
    scaled = _float_wav(tmp_path / "int16-range.wav", speech_clip * 32768.0)
    code = "import sys; from liteasr_export.app.cli import transcribe_main as m; sys.exit(m(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "--engine", "onnx", "--artifacts", str(random_artifacts),
                             str(scaled)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"liteasr-transcribe: warning: {scaled}: samples reach {32768.0 * np.max(np.abs(speech_clip)):.4g}, "
        "far outside [-1, 1]; normalized to a peak of 1"]


def test_folder_given_as_audio(tmp_path):
    with pytest.raises(AudioError, match="is a folder, not an audio file"):
        load_audio(tmp_path)


def test_eval_records_an_undecodable_file_and_goes_on(tmp_path, speech_clip_path, random_artifacts):
    (tmp_path / "broken.wav").write_bytes(b"RIFF????WAVEjunk")
    lines = [{"audio": speech_clip_path, "text": "one"}, {"audio": "broken.wav", "text": "two"},
             {"audio": speech_clip_path, "text": "three"}]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    code = "import sys; from liteasr_export.app.cli import eval_main as m; sys.exit(m(sys.argv[1:]))"
    base = [sys.executable, "-c", code, "--engine", "onnx", "--artifacts", str(random_artifacts),
            "--eval", str(tmp_path / "set.jsonl")]
    result = subprocess.run([*base, "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_ITEMS_FAILED, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 2 and report["failed"] == 1
    assert [bool(item["error"]) for item in report["items"]] == [False, True, False]
    assert "cannot decode audio file" in report["items"][1]["error"]
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "1 utterance(s) could not be transcribed" in err[0] and "broken.wav" in err[0]
    text = subprocess.run(base, capture_output=True, text=True, timeout=300)
    assert text.returncode == EXIT_ITEMS_FAILED and text.stdout.startswith("WER ") and "on 2 utterances" in text.stdout


@pytest.mark.parametrize("peak, channels, subtype, rate", [
    (1e39, 1, "DOUBLE", 16000),  # beyond float32's range
    (3e38, 2, "FLOAT", 16000),  # each channel within float32, their sum not
    (1e30, 1, "FLOAT", 44100),  # resampled
    (1e20, 1, "FLOAT", 16000),  # its square overflows float32
])
def test_huge_finite_samples_are_normalized_not_refused(tmp_path, speech_clip, peak, channels, subtype, rate):
    clip = speech_clip.astype(np.float64) / np.max(np.abs(speech_clip))
    path = tmp_path / "huge.wav"
    sf.write(str(path), np.repeat((clip * peak)[:, None], channels, axis=1), rate, subtype=subtype)
    with pytest.warns(AudioWarning, match="far outside \\[-1, 1\\]; normalized to a peak of 1"):
        audio = load_audio(path)
    assert np.isfinite(audio).all() and 0.5 < float(np.max(np.abs(audio))) < 1.2
    if rate == 16000:
        np.testing.assert_allclose(audio, clip, atol=1e-6)


def test_transcriber_normalizes_a_float64_array_beyond_float32(random_artifacts, speech_clip):
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber

    transcriber = OnnxTranscriber(random_artifacts)
    with pytest.warns(AudioWarning, match="normalized"):
        huge = transcriber.transcribe(speech_clip.astype(np.float64) * 1e40)
    assert huge == transcriber.transcribe(speech_clip / np.max(np.abs(speech_clip)))
    with pytest.warns(AudioWarning, match="samples reach 1e\\+39"):
        assert check_samples(np.array([0.5, -1e39])).dtype == np.float32


@pytest.mark.parametrize("rate", [1, MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1])
def test_an_absurd_sample_rate_is_refused_from_the_header(tmp_path, rate):
    path = tmp_path / "forged.wav"
    sf.write(str(path), np.zeros(1500, np.int16), rate, subtype="PCM_16")  # 3 KB; at 1 Hz 25 minutes
    start = time.perf_counter()
    with pytest.raises(AudioError, match=f"states a sample rate of {rate} Hz") as caught:
        load_audio(path)
    assert time.perf_counter() - start < 1.0
    assert f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz" in caught.value.fix
    for fine in (MIN_SAMPLE_RATE, 8000):
        sf.write(str(path), np.zeros(1500, np.int16), fine, subtype="PCM_16")
        assert load_audio(path).size == round(1500 * 16000 / fine)


def test_max_seconds_is_checked_from_the_header(tmp_path):
    path = tmp_path / "three-seconds.flac"
    sf.write(str(path), np.zeros(3 * 8000, np.int16), 8000)
    with pytest.raises(AudioTooLongError, match="is 3 s long, more than the 2.5 s accepted"):
        load_audio(path, max_seconds=2.5)
    assert load_audio(path, max_seconds=3).size == 3 * 16000


def test_decoding_holds_the_output_and_one_block(tmp_path):
    """A minute of 48 kHz stereo float: 23 MB of samples as the file has
    them, 3.8 MB once mixed and resampled to 16 kHz."""
    seconds, rate = 60, 48000
    path = tmp_path / "stereo.wav"
    noise = np.random.default_rng(0).standard_normal((seconds * rate, 2)).astype(np.float32) * 0.1
    sf.write(str(path), noise, rate, subtype="FLOAT")
    del noise
    output = seconds * 16000 * 4
    tracemalloc.start()
    try:
        audio = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert audio.nbytes == output
    assert peak < 3 * output, f"{peak / 2**20:.1f} MB to decode {output / 2**20:.1f} MB"


@pytest.fixture()
def fifo(tmp_path):
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    return path


def test_a_fifo_is_not_a_regular_file(fifo):
    with pytest.raises(AudioError, match="is not a regular file \\(a FIFO\\)"):
        load_audio(fifo)  # and does not wait for a writer


def test_transcribe_says_a_fifo_is_no_regular_file(fifo, random_artifacts):
    result = subprocess.run([sys.executable, "-c", CLI.format("transcribe_main"), "--engine", "onnx",
                             "--artifacts", str(random_artifacts), str(fifo)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.strip().splitlines() == [
        f"liteasr-transcribe: error: {fifo} is not a regular file (a FIFO). save the audio to a file and pass "
        "that file"]


def test_eval_records_missing_files_folders_and_fifos_and_goes_on(tmp_path, fifo, speech_clip_path, random_artifacts):
    (tmp_path / "folder.wav").mkdir()
    lines = [{"audio": speech_clip_path, "text": "one"}, {"audio": "missing.wav", "text": "two"},
             {"audio": "folder.wav", "text": "three"}, {"audio": fifo.name, "text": "four"}]
    (tmp_path / "set.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = subprocess.run([sys.executable, "-c", CLI.format("eval_main"), "--engine", "onnx", "--artifacts",
                             str(random_artifacts), "--eval", str(tmp_path / "set.jsonl"), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == EXIT_ITEMS_FAILED, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 1 and report["failed"] == 3
    errors = [item["error"] for item in report["items"]]
    assert errors[0] is None
    assert "audio file not found" in errors[1] and str(tmp_path / "missing.wav") in errors[1]
    assert "is a folder, not an audio file" in errors[2]
    assert "is not a regular file (a FIFO)" in errors[3]
