"""Every backend's decoder step under the shared decoding: beam search
reorders each KV cache correctly (checked against recomputing every step
from scratch), PyTorch, ONNX Runtime and the TensorRT step agree token for
token, and transcripts do not depend on how windows are batched."""

from __future__ import annotations

import numpy as np
import pytest

from exporters.artifacts import export_artifacts
from liteasr_export.core.decoding import SearchOptions, search
from liteasr_export.core.frontend import SAMPLE_RATE, log_mel
from liteasr_export.core.windowed import TranscribeOptions

BACKENDS = ("torch", "onnx", "trt-step")


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_en_tokenizer_json, random_loaded):
    loaded = random_loaded(tiny_en_tokenizer_json, low_rank=True, seed=11)
    out = tmp_path_factory.mktemp("decoding-artifacts")
    export_artifacts(loaded, out)
    return loaded, out


def _clips(speech_clip: np.ndarray) -> list[np.ndarray]:
    noise = (0.05 * np.random.default_rng(3).standard_normal(3 * SAMPLE_RATE)).astype(np.float32)
    return [speech_clip, noise, speech_clip[: SAMPLE_RATE]]


class Recompute:
    """A reference decoder step without a cache to reorder: every call feeds
    each row's whole token history to a fresh step of the same backend."""

    def __init__(self, make_step, n_rows: int) -> None:
        self.make_step = make_step
        self.history: list[list[int]] = [[] for _ in range(n_rows)]
        self.owner = np.arange(n_rows)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        for row, new in zip(self.history, tokens.tolist()):
            row.extend(new)
        step = self.make_step()
        step.reorder(self.owner)
        return step(np.asarray(self.history, dtype=np.int64))

    def reorder(self, rows: np.ndarray) -> None:
        self.history = [list(self.history[r]) for r in rows]
        self.owner = self.owner[rows]


@pytest.mark.parametrize("backend", BACKENDS)
def test_beam_search_reorders_the_cache_like_recomputing(model, transcriber_on, backend, speech_clip, counted_step):
    transcriber = transcriber_on(backend, *model)
    options = transcriber.decoding_options(TranscribeOptions(timestamps=True))
    features = np.stack([transcriber.features(c) for c in _clips(speech_clip)])
    encoded = transcriber.encode(features)
    prompts = np.tile(np.asarray(options.prompt), (len(features), 1))
    step = counted_step(transcriber.decoder_step(encoded))
    cached = search(step, prompts, options, beam_size=4)
    fresh = search(Recompute(lambda: transcriber.decoder_step(encoded), len(features)), prompts, options, beam_size=4)
    assert [h.tokens for h in cached] == [h.tokens for h in fresh]
    assert [round(h.sum_logprob, 3) for h in cached] == [round(h.sum_logprob, 3) for h in fresh]
    assert any(len(set(h.tokens)) > 1 for h in cached)  # the search did choose among tokens
    assert step.rows[1] == 4 * len(features)  # (random weights never end a window early: see test_decoding_real)


@pytest.mark.parametrize("search_options", [SearchOptions.greedy(), SearchOptions(beam_size=3)], ids=["greedy", "beam"])
def test_backends_decode_token_for_token_alike(model, transcriber_on, search_options, speech_clip):
    settings = TranscribeOptions(search=search_options, timestamps=True)
    features = np.stack([log_mel(c, 80) for c in _clips(speech_clip)])
    tokens = {b: transcriber_on(b, *model, settings=settings).transcribe_features(features) for b in BACKENDS}
    assert tokens["onnx"] == tokens["torch"] and tokens["trt-step"] == tokens["torch"]


@pytest.mark.parametrize("timestamps", [True, False], ids=["timestamps", "cut"])
def test_transcripts_do_not_depend_on_the_batch_size(model, transcriber_on, speech_clip, timestamps):
    long = np.concatenate([speech_clip] * 12)[: 45 * SAMPLE_RATE]  # two windows or more
    audios = [speech_clip, long, speech_clip[: SAMPLE_RATE // 2], speech_clip]
    settings = TranscribeOptions(timestamps=timestamps)  # beam search and the fallback, as users get them
    one = transcriber_on("onnx", *model, settings=settings, batch_size=1).transcribe_detailed(audios)
    three = transcriber_on("onnx", *model, settings=settings, batch_size=3).transcribe_detailed(audios)
    assert [t.to_dict() for t in three] == [t.to_dict() for t in one]
    assert len(one[1].windows) >= 2
