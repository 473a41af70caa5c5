"""Audio that would decode to garbage: NaN / infinite samples are refused,
float audio far outside [-1, 1] is normalized with a warning, a folder is not
"not found", and one bad file does not end a whole evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.errors import EXIT_ITEMS_FAILED, AudioError
from liteasr_export.frontend import AudioWarning, check_samples, load_audio


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
    from engines.runtime.ort_transcriber import OnnxTranscriber

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
    code = "import sys; from liteasr_export.cli import transcribe_main as m; sys.exit(m(sys.argv[1:]))"
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
    code = "import sys; from liteasr_export.cli import eval_main as m; sys.exit(m(sys.argv[1:]))"
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
