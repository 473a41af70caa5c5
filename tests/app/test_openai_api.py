"""The HTTP contract of liteasr-serve without Ray: form fields, errors and
response formats (the service itself: test_serve.py)."""

from __future__ import annotations

import json

import pytest

from liteasr_export.core.decoding import DEFAULT_TEMPERATURES
from liteasr_export.core.windowed import Segment, Transcript, TranscribeOptions, WindowReport

openai_api = pytest.importorskip("liteasr_export.app.serve.openai_api")
srt = pytest.importorskip("srt")
webvtt = pytest.importorskip("webvtt")

BASE = TranscribeOptions(timestamps=True, language="auto")


def _transcript() -> Transcript:
    windows = [WindowReport(0.0, 30.0, 0.0, False, "ok", -0.2, 1.3, 0.01, [0.0]),
               WindowReport(30.0, 41.0, 0.4, True, "ok", -0.6, 1.9, 0.02, [0.0, 0.2, 0.4])]
    segments = [Segment(0.0, 2.5, "Hello there.", [1, 2]), Segment(2.5, 29.0, "General Kenobi.", [3]),
                Segment(30.2, 40.0, "You are a bold one.", [4, 5])]
    return Transcript("Hello there. General Kenobi. You are a bold one.", 41.0, "en", None, segments, windows)


def test_fields_default_to_the_services_settings():
    fields = openai_api.parse_fields({"model": "tiny.en"}, BASE, "tiny.en")
    assert fields.response_format == "json" and fields.settings == BASE and fields.ignored == ()
    assert openai_api.parse_fields({"model": "whisper-1"}, BASE, "tiny.en").settings == BASE


def test_temperature_starts_the_fallback_there_and_language_overrides():
    fields = openai_api.parse_fields({"model": "tiny.en", "temperature": "0.4", "language": "en",
                                      "prompt": "Kenobi"}, BASE, "tiny.en")
    assert fields.settings.search.temperatures == (0.4, 0.6, 0.8, 1.0)
    assert fields.settings.language == "en" and fields.ignored == ("prompt",)
    zero = openai_api.parse_fields({"model": "tiny.en", "temperature": "0"}, BASE, "tiny.en")
    assert zero.settings.search.temperatures == DEFAULT_TEMPERATURES


@pytest.mark.parametrize("value, expected", [("auto", "auto"), ("full", "full"), ("10", 1000), ("500f", 500)])
def test_a_request_chooses_its_audio_context(value, expected):
    fields = openai_api.parse_fields({"model": "tiny.en", "audio_context": value}, BASE, "tiny.en")
    assert fields.settings.audio_context == expected
    assert fields.settings.search == BASE.search  # nothing else changes


@pytest.mark.parametrize("form, status, param, code", [
    ({"model": "tiny.en", "response_format": "docx"}, 400, "response_format", "invalid_value"),
    ({}, 400, "model", "missing_model"),
    ({"model": "gpt-4o-transcribe"}, 404, "model", "model_not_found"),
    ({"model": "tiny.en", "temperature": "hot"}, 400, "temperature", "invalid_value"),
    ({"model": "tiny.en", "temperature": "1.5"}, 400, "temperature", "invalid_value"),
    ({"model": "tiny.en", "audio_context": "half"}, 400, "audio_context", "invalid_value"),
])
def test_bad_fields_are_openai_errors(form, status, param, code):
    with pytest.raises(openai_api.ApiError) as caught:
        openai_api.parse_fields(form, BASE, "tiny.en")
    error = caught.value
    assert (error.status, error.param, error.code) == (status, param, code)
    body = error.body()["error"]
    assert set(body) == {"message", "type", "param", "code"} and body["type"] == "invalid_request_error"
    assert "tiny.en" in body["message"] or param in body["message"]


def test_uploads_are_checked_for_size_format_and_content(speech_clip_path):
    with pytest.raises(openai_api.ApiError) as too_big:
        openai_api.check_upload_size(3 * 2**20, 2**20)
    assert too_big.value.status == 413 and "--max-upload-mb" in too_big.value.message
    for name, data, code in (("notes.txt", b"hello", "unsupported_format"), ("clip.m4a", b"\0" * 64, "unsupported_format"),
                             ("clip.wav", b"RIFF garbage", "invalid_audio"), ("clip.wav", b"", "invalid_audio")):
        with pytest.raises(openai_api.ApiError) as caught:
            openai_api.decode_upload(name, data)
        assert (caught.value.status, caught.value.code) == (400, code), name
        assert name in caught.value.message and "/tmp" not in caught.value.message
    with open(speech_clip_path, "rb") as f:
        audio = openai_api.decode_upload("clip" + speech_clip_path[speech_clip_path.rfind("."):], f.read())
    assert audio.ndim == 1 and audio.size > 16000


def test_response_formats():
    t = _transcript()
    assert openai_api.render(t, "json") == ({"text": t.text}, "application/json")
    text, media = openai_api.render(t, "text")
    assert text.strip() == t.text and media.startswith("text/plain")
    cues = list(srt.parse(openai_api.render(t, "srt")[0]))
    assert [c.content for c in cues] == [s.text for s in t.segments]
    assert cues[2].start.total_seconds() == pytest.approx(30.2)
    vtt = webvtt.from_string(openai_api.render(t, "vtt")[0])
    assert [c.text for c in vtt] == [s.text for s in t.segments]
    verbose, _ = openai_api.render(t, "verbose_json")
    json.dumps(verbose)  # serializable
    assert verbose["text"] == t.text and verbose["duration"] == 41.0 and verbose["language"] == "en"
    last = verbose["segments"][2]
    assert (last["id"], last["temperature"], last["seek"], last["tokens"]) == (2, 0.4, 3000, [4, 5])
    assert verbose["segments"][1]["avg_logprob"] == -0.2


def test_a_streamed_upload_is_refused_at_the_limit_not_read_to_its_end():
    """A 40 MB chunked body (no Content-Length) through Starlette's form
    parser, as the service reads it: refused (413) once the bytes received
    pass the limit."""
    import asyncio

    from starlette.requests import Request

    limit, chunk, total = 2**20, 64 * 1024, 40 * 2**20
    pulled = 0
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'

    async def receive():
        nonlocal pulled
        body = head if pulled == 0 else b"\0" * chunk
        pulled += len(body)
        return {"type": "http.request", "body": body, "more_body": pulled < total}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"",
             "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}
    request = Request(scope, openai_api.bounded_receive(receive, limit))
    async def parse():
        return await request.form(max_files=1)

    with pytest.raises(openai_api.ApiError) as caught:
        asyncio.run(parse())
    assert (caught.value.status, caught.value.code, caught.value.param) == (413, "file_too_large", "file")
    assert limit < pulled <= limit + chunk


def test_an_absurd_header_is_refused_before_decoding(tmp_path, speech_clip_path):
    import io

    import numpy as np
    import soundfile as sf

    forged = io.BytesIO()
    sf.write(forged, np.zeros(1500, np.int16), 1, format="WAV", subtype="PCM_16")  # 3 KB that say 25 minutes
    with pytest.raises(openai_api.ApiError) as caught:
        openai_api.decode_upload("clip.wav", forged.getvalue(), max_seconds=3600)
    assert (caught.value.status, caught.value.code) == (400, "invalid_audio")
    assert "'clip.wav' states a sample rate of 1 Hz" in caught.value.message
    data = open(speech_clip_path, "rb").read()
    suffix = speech_clip_path[speech_clip_path.rfind("."):]
    with pytest.raises(openai_api.ApiError) as caught:
        openai_api.decode_upload("clip" + suffix, data, max_seconds=1)
    assert (caught.value.status, caught.value.code, caught.value.param) == (400, "audio_too_long", "file")
    assert "more than the 1 s this service accepts; send a shorter recording" in caught.value.message
    assert openai_api.decode_upload("clip" + suffix, data, max_seconds=3600).size > 16000


@pytest.mark.parametrize("languages", [(), ("de", "en", "fr")])
def test_a_language_error_names_the_request_field_not_a_flag(languages):
    error = openai_api.language_error("xx", languages)
    assert (error.status, error.param, error.code) == (400, "language", "unsupported_language")
    assert "language" in error.message and "'xx'" in error.message and "--" not in error.message
