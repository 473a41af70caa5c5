"""The PyTorch reference transcriber on real tiny.en weights."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.datasets import resolve_set
from liteasr_export.core.evaluation import score
from liteasr_export.core.frontend import N_SAMPLES, load_audio

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transcriber():
    from liteasr_export.model.sources import load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    return TorchTranscriber(load_model("tiny.en"))


def test_clear_speech_is_transcribed(transcriber):
    utts = resolve_set("builtin", purpose="eval")[:6]
    result = score([u.audio for u in utts], [u.text for u in utts],
                   [transcriber.transcribe(load_audio(u.audio)) for u in utts])
    assert result.wer < 25.0, [(i.reference, i.hypothesis) for i in result.items]


def test_two_minute_file_comes_back_complete(transcriber):
    utts = resolve_set("builtin", purpose="eval")
    pieces, texts, total = [], [], 0
    for utt in utts:
        audio = load_audio(utt.audio)
        pieces += [audio, np.zeros(8000, dtype=np.float32)]
        texts.append(utt.text)
        total += audio.size + 8000
        if total >= 4 * N_SAMPLES:
            break
    long_audio = np.concatenate(pieces)
    assert long_audio.size >= 120 * 16000
    result = score(["long"], [" ".join(texts)], [transcriber.transcribe(long_audio)])
    # every clip, including the last ones, must be there: a dropped window would cost > 20 %
    assert result.wer < 20.0, result.items[0].hypothesis
    last_words = texts[-1].split()[-4:]
    assert any(w.strip(".,").lower() in result.items[0].hypothesis.lower() for w in last_words)


def test_transcribe_each_isolates_the_recording_the_decoder_refuses():
    """A batch with one refused recording: the others get their transcripts,
    the culprit its error (what the service and the Ray job rely on)."""
    import numpy as np

    from liteasr_export.core.errors import AudioError
    from liteasr_export.core.windowed import WindowedTranscriber

    class Stub:
        calls = []

        def transcribe_detailed(self, audios, sample_rate=16000):
            self.calls.append(len(audios))
            if any(a.size == 0 for a in audios):
                raise AudioError("audio has no samples", "pass a non-empty recording")
            return [f"text of {a.size}" for a in audios]

    stub = Stub()
    out = WindowedTranscriber.transcribe_each(stub, [np.ones(3), np.ones(0), np.ones(5)])
    assert out[0] == "text of 3" and out[2] == "text of 5"
    assert isinstance(out[1], AudioError)
    assert stub.calls == [3, 1, 1, 1]  # the batch, then one by one
    assert WindowedTranscriber.transcribe_each(stub, [np.ones(2)]) == ["text of 2"]
