"""The HTTP contract of OpenAI's ``POST /v1/audio/transcriptions``: which
form fields are read and how, the error body every client library
understands, and the five response formats. No Ray here: the deployment in
:mod:`.service` calls these functions.

``prompt`` is accepted and not applied (decoding does not condition on
earlier text); the response then says so in an ``X-LiteASR-Ignored`` header.
``timestamp_granularities[]`` is accepted; segments are always timed.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Sequence

import numpy as np

from calibration.datasets import AUDIO_SUFFIXES

from liteasr_export.core.errors import AudioError, AudioTooLongError, LiteASRError
from liteasr_export.core.frontend import HOP_LENGTH, SAMPLE_RATE, load_audio
from liteasr_export.core.output_formats import WRITERS
from liteasr_export.core.windowed import Transcript, TranscribeOptions, parse_audio_context

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
#: recordings decoded together by default, and how long a batch waits to fill
#: (here, without Ray, so that liteasr-serve's flags can name them)
DEFAULT_MAX_BATCH = 8
DEFAULT_BATCH_WAIT_S = 0.05
DEFAULT_MAX_UPLOAD_MB = 25.0  # OpenAI's own limit
#: longest recording accepted by default, read from its header before decoding:
#: an hour, longer than any 25 MB upload at a speech bitrate (16 kHz 16-bit wav:
#: 13 minutes; 64 kbit/s mp3: 55 minutes), and 230 MB of decoded 16 kHz samples
DEFAULT_MAX_AUDIO_SECONDS = 3600.0
#: what a multipart body may hold besides the file: boundaries, headers, fields
FORM_OVERHEAD_BYTES = 64 * 1024
#: accepted as ``model`` besides the served model's own id (the name OpenAI's examples use)
MODEL_ALIASES = ("whisper-1",)
#: OpenAI's temperature step when a window fails its thresholds (openai-whisper's CLI)
TEMPERATURE_INCREMENT = 0.2
IGNORED_HEADER = "X-LiteASR-Ignored"
#: how many requests the replica decoded together with this one
BATCH_HEADER = "X-LiteASR-Batch-Size"


class ApiError(Exception):
    """A request the service refuses: HTTP ``status`` and OpenAI's error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error body for an HTTP error raised outside the API's checks
    (unknown route, wrong method, a server fault)."""
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return ApiError(status, message, kind=kind).body()


@dataclass(frozen=True)
class Fields:
    """The form fields of one request, checked."""

    response_format: str
    settings: TranscribeOptions
    ignored: tuple[str, ...] = ()


def _temperatures(value: str) -> tuple[float, ...] | None:
    """OpenAI's ``temperature`` (0..1): 0 keeps the default fallback; t > 0
    starts sampling at t and falls back in steps of 0.2 up to 1.0."""
    try:
        t = float(value)
    except ValueError:
        t = float("nan")
    if not 0.0 <= t <= 1.0:
        raise ApiError(400, f"temperature must be a number between 0 and 1, got {value!r}", "temperature",
                       "invalid_value")
    if t == 0.0:
        return None
    steps = int(round((1.0 - t) / TEMPERATURE_INCREMENT + 1e-9))
    return tuple(round(t + i * TEMPERATURE_INCREMENT, 6) for i in range(steps + 1))


def parse_fields(form: Mapping[str, Any], base: TranscribeOptions, model_id: str) -> Fields:
    """``model``, ``language``, ``temperature``, ``response_format``,
    ``audio_context`` (this service's addition: full, auto, seconds or mel
    frames; see ``--audio-context``) and the ignored ``prompt`` of a
    transcription request, on top of the service's
    decoding settings ``base``."""
    response_format = str(form.get("response_format") or "json")
    if response_format not in RESPONSE_FORMATS:
        raise ApiError(400, f"response_format {response_format!r} is not supported; use one of "
                            f"{', '.join(RESPONSE_FORMATS)}", "response_format", "invalid_value")
    model = form.get("model")
    if not model:
        raise ApiError(400, f"the request has no 'model' field; pass model={model_id!r}", "model", "missing_model")
    if model not in (model_id, *MODEL_ALIASES):
        raise ApiError(404, f"the model {model!r} does not exist here; this service serves {model_id!r} "
                            f"(GET /v1/models)", "model", "model_not_found")
    settings = base
    language = str(form.get("language") or "").strip()
    if language:
        settings = replace(settings, language=language)
    temperature = form.get("temperature")
    if temperature not in (None, ""):
        temperatures = _temperatures(str(temperature))
        if temperatures is not None:
            settings = replace(settings, search=replace(settings.search, temperatures=temperatures))
    audio_context = form.get("audio_context")
    if audio_context not in (None, ""):
        try:
            settings = replace(settings, audio_context=parse_audio_context(str(audio_context)))
        except LiteASRError as exc:
            raise ApiError(400, exc.render(), "audio_context", "invalid_value") from None
    ignored = ("prompt",) if form.get("prompt") else ()
    return Fields(response_format, settings, ignored)


def upload_too_large(limit_bytes: int, size: int | None = None) -> ApiError:
    """413 for an upload over the service's ``--max-upload-mb`` (``size``:
    its size when known; a streamed body is refused before its end)."""
    what = f"the upload is {size / 2**20:.1f} MB" if size is not None else "the upload is larger"
    return ApiError(413, f"{what}, more than this service accepts ({limit_bytes / 2**20:g} MB); send a shorter or "
                         "compressed file (the service's operator sets the limit: --max-upload-mb)",
                    "file", "file_too_large")


def check_upload_size(size: int | None, limit_bytes: int) -> None:
    """Refuse a body or file larger than ``limit_bytes`` (None: size unknown)."""
    if size is not None and size > limit_bytes:
        raise upload_too_large(limit_bytes, size)


def bounded_receive(receive: Callable[[], Awaitable[dict[str, Any]]],
                    limit_bytes: int) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` that counts a request body's bytes as they stream
    in and raises a 413 :class:`ApiError` once they pass ``limit_bytes``, so
    a body without ``Content-Length`` (chunked) is refused at the limit,
    not read to its end first."""
    seen = 0

    async def receive_bounded() -> dict[str, Any]:
        nonlocal seen
        message = await receive()
        if message.get("type") == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit_bytes:
                raise upload_too_large(limit_bytes)
        return message

    return receive_bounded


def decode_upload(filename: str, data: bytes, max_seconds: float | None = None) -> np.ndarray:
    """16 kHz mono samples of an uploaded file (wav, flac, ogg, mp3), read
    by the same :func:`~liteasr_export.core.frontend.load_audio` as the CLI: its
    header is checked (sample rate; ``max_seconds``: duration) before any
    sample is decoded."""
    suffix = Path(filename or "").suffix.lower()
    if suffix not in AUDIO_SUFFIXES:
        raise ApiError(400, f"the file {filename!r} is not in a supported format; send one of "
                            f"{', '.join(s.lstrip('.') for s in AUDIO_SUFFIXES)}", "file", "unsupported_format")
    if not data:
        raise ApiError(400, f"the file {filename!r} is empty", "file", "invalid_audio")
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="liteasr-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return load_audio(path, max_seconds=max_seconds)
    except AudioTooLongError as exc:
        message = exc.problem.replace(path, repr(filename)).replace(" accepted", " this service accepts")
        raise ApiError(400, f"{message}; send a shorter recording", "file", "audio_too_long") from None
    except AudioError as exc:
        message = exc.problem.replace(path, repr(filename))
        raise ApiError(400, f"{message}; send a valid wav, flac, ogg or mp3 file", "file", "invalid_audio") from None
    finally:
        os.unlink(path)


def language_error(language: str, languages: Sequence[str]) -> ApiError:
    """A ``language`` field the served model cannot transcribe; ``languages``:
    the codes it knows (none: an English-only model)."""
    if not languages:
        message = (f"the model of this service is English-only: it cannot transcribe language {language!r}; send "
                   "language=en, or leave language out")
    else:
        message = (f"unknown language code {language!r}; send one of {', '.join(sorted(languages))}, or leave "
                   "language out to detect it")
    return ApiError(400, message, "language", "unsupported_language")


def _verbose(transcript: Transcript, task: str) -> dict[str, Any]:
    """openai-whisper's result: segments with the decode of their window."""
    segments = []
    for i, s in enumerate(transcript.segments):
        window = next((w for w in transcript.windows if w.start <= s.start < w.end), None)
        window = window or (transcript.windows[-1] if transcript.windows else None)
        segments.append({
            "id": i, "seek": round(window.start * SAMPLE_RATE / HOP_LENGTH) if window else 0,
            "start": s.start, "end": s.end, "text": s.text, "tokens": list(s.tokens),
            "temperature": window.temperature if window else 0.0,
            "avg_logprob": window.avg_logprob if window else None,
            "compression_ratio": window.compression_ratio if window else None,
            "no_speech_prob": window.no_speech_prob if window else None,
        })
    return {"task": task, "language": transcript.language or "", "duration": transcript.duration,
            "text": transcript.text, "segments": segments}


def render(transcript: Transcript, response_format: str, task: str = "transcribe") -> tuple[Any, str]:
    """The response body of ``response_format`` and its media type: JSON
    (``json``, ``verbose_json``) as a dict, the others as text."""
    if response_format == "json":
        return {"text": transcript.text}, "application/json"
    if response_format == "verbose_json":
        return _verbose(transcript, task), "application/json"
    writer = WRITERS["txt" if response_format == "text" else response_format]
    return writer(transcript, ""), "text/plain; charset=utf-8"
