"""The Ray Serve deployment behind ``liteasr-serve`` and the command's runner.

Each replica holds one :class:`~liteasr_export.core.runtime.ort_transcriber.OnnxTranscriber`
(the manifest's checksums are verified when it loads). Requests are parsed
and their audio decoded in the replica's event loop, so a bad request is
answered at once with a 4xx and never reaches a batch; good ones wait in a
``@serve.batch`` queue and are decoded together, up to ``max_batch_size``
recordings or ``batch_wait_timeout_s`` of waiting, in a worker thread (the
event loop keeps accepting requests meanwhile). Requests with different
decoding settings (language, temperature) in one batch are decoded as one
group per setting.
"""

# no ``from __future__ import annotations``: FastAPI reads the routes'
# parameter types (``Request``) at run time, in the replica

import asyncio
import errno
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve
from ray.serve.exceptions import RayServeException
from starlette.exceptions import HTTPException


from liteasr_export.core.errors import LiteASRError, debug_enabled
from liteasr_export.core.manifest import load_manifest
from liteasr_export.app.ray_jobs.cluster import LOCAL, ray_session
from liteasr_export.app.runners import open_runner
from liteasr_export.core.windowed import Transcript, TranscribeOptions
from liteasr_export.app.serve.openai_api import (BATCH_HEADER, DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_AUDIO_SECONDS, DEFAULT_MAX_BATCH,
                         DEFAULT_MAX_UPLOAD_MB, FORM_OVERHEAD_BYTES, IGNORED_HEADER, ApiError, bounded_receive,
                         check_upload_size, decode_upload, error_body, language_error, parse_fields, render)

APP_NAME = "liteasr"


@dataclass(frozen=True)
class ServiceConfig:
    """What a replica needs: the artifacts, the decoding defaults (those of
    ``liteasr-transcribe``) and the batching and upload limits
    (``max_audio_seconds``: the longest recording, read from its header
    before decoding; None: no limit)."""

    artifacts: str
    settings: TranscribeOptions = field(default_factory=lambda: TranscribeOptions(timestamps=True, language="auto"))
    max_batch_size: int = DEFAULT_MAX_BATCH
    batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_S
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_audio_seconds: float | None = DEFAULT_MAX_AUDIO_SECONDS
    threads: int | None = None  # ONNX Runtime threads per replica
    window_batch_size: int = 8  # 30 s windows decoded together (at least max_batch_size)
    provider: str | None = None
    ort_cache: str | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


def check_port(host: str, port: int) -> None:
    """Fail before starting Ray when this machine cannot listen on
    ``host:port``: the port is in use, the host is not one of its addresses,
    or the port is privileged. Binds the way the HTTP server does (with
    SO_REUSEADDR: a port whose old connections linger is free)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as exc:
        raise LiteASRError(f"cannot listen on host {host!r} ({exc.strerror})",
                           "pass --host 127.0.0.1, 0.0.0.0 or an address of this machine") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LiteASRError(f"port {port} on {host} is in use (another program listens there)",
                                   f"pass --port with a free port, e.g. --port {_free_port(family, address)}, "
                                   f"or stop the program on port {port}") from None
            raise LiteASRError(f"cannot listen on {host}:{port} ({exc.strerror})",
                               "pass --host 127.0.0.1 or an address of this machine, and a --port above 1023 "
                               "(lower ones need root)") from None


def _free_port(family: int, address: tuple) -> int:
    """A port the system has free now on ``address``'s host (a suggestion only)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address[0], 0, *address[2:]))
        return sock.getsockname()[1]


def model_id(artifacts: str | Path) -> str:
    """The name clients pass as ``model``: the exported model's name."""
    return str(load_manifest(artifacts).data.get("name") or Path(artifacts).name)


def check_artifacts(artifacts: str | Path) -> None:
    """Fail before starting Ray when the folder is missing or corrupt (every
    replica verifies again when it loads)."""
    load_manifest(artifacts).verify_all()


app = FastAPI(title="liteasr-export transcription service", docs_url=None, redoc_url=None)


@app.exception_handler(ApiError)
async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


@app.exception_handler(HTTPException)
async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
    return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code)


@app.exception_handler(RequestValidationError)
async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(error_body(400, f"invalid request: {exc.errors()}"), status_code=400)


@app.exception_handler(Exception)
async def _server_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body(500, f"internal error: {type(exc).__name__}: {exc}"), status_code=500)


@dataclass
class _Job:
    audio: np.ndarray
    settings: TranscribeOptions


@serve.deployment(name="TranscriptionService")
@serve.ingress(app)
class TranscriptionService:
    """One replica: an ONNX Runtime transcriber behind OpenAI's API."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.transcriber = open_runner("onnx", artifacts=config.artifacts, threads=config.threads,
                                       providers=config.provider, ort_cache=config.ort_cache, verify=True,
                                       settings=config.settings,
                                       batch_size=max(config.window_batch_size, config.max_batch_size))
        self.model_id = model_id(config.artifacts)
        self.created = int(os.stat(Path(config.artifacts) / "manifest.json").st_mtime)
        self._batch.set_max_batch_size(config.max_batch_size)
        self._batch.set_batch_wait_timeout_s(config.batch_wait_timeout_s)

    @app.get("/health")
    async def health(self) -> dict[str, Any]:
        """Liveness of this replica (its process id tells replicas apart)."""
        return {"status": "ok", "model": self.model_id, "pid": os.getpid(), "host": socket.gethostname(),
                "max_batch_size": self.config.max_batch_size}

    @app.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.model_id, "object": "model", "created": self.created,
                                            "owned_by": "liteasr-export"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(self, request: Request) -> Response:
        limit = self.config.max_upload_bytes
        length = request.headers.get("content-length")
        check_upload_size(int(length) if length and length.isdigit() else None, limit + FORM_OVERHEAD_BYTES)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise ApiError(400, "send the audio as multipart/form-data with a 'file' field", "file", "missing_file")
        # a chunked body (no Content-Length) is refused once it passes the limit, not read to its end first
        request = Request(request.scope, bounded_receive(request.receive, limit + FORM_OVERHEAD_BYTES))
        form = await request.form(max_files=1, max_fields=32)
        try:
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ApiError(400, "the request has no audio: add a 'file' field with a wav, flac, ogg or mp3 "
                                    "file", "file", "missing_file")
            fields = parse_fields(form, self.config.settings, self.model_id)
            data = await upload.read()
            check_upload_size(len(data), limit)
            audio = await asyncio.to_thread(decode_upload, upload.filename or "", data, self.config.max_audio_seconds)
        finally:
            await form.close()
        try:
            self.transcriber.decoding_options(fields.settings)
        except LiteASRError:  # the one request field it checks
            tokenizer = self.transcriber.tokenizer
            raise language_error(str(fields.settings.language),
                                 tokenizer.language_ids if tokenizer.is_multilingual else ()) from None
        result = await self._batch(_Job(audio, fields.settings))
        if isinstance(result, ApiError):
            raise result
        transcript, batch_size = result
        body, media_type = render(transcript, fields.response_format, fields.settings.task)
        headers = {BATCH_HEADER: str(batch_size)}
        if fields.ignored:
            headers[IGNORED_HEADER] = ",".join(fields.ignored)
        if isinstance(body, dict):
            return JSONResponse(body, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    @serve.batch(max_batch_size=DEFAULT_MAX_BATCH, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_S)
    async def _batch(self, jobs: list[_Job]) -> list[tuple[Transcript, int] | ApiError]:
        return await asyncio.to_thread(self._decode, jobs)

    def _decode(self, jobs: list[_Job]) -> list[tuple[Transcript, int] | ApiError]:
        """Decode a batch, one group per decoding setting; a recording the
        decoder refuses gets its own error, the others their transcripts
        (with the batch's size, which the response reports)."""
        results: list[tuple[Transcript, int] | ApiError | None] = [None] * len(jobs)
        groups: dict[TranscribeOptions, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(job.settings, []).append(i)
        for settings, rows in groups.items():
            self.transcriber.configure(settings)
            for i, t in zip(rows, self.transcriber.transcribe_each([jobs[i].audio for i in rows])):
                results[i] = ApiError(400, f"{t.problem}; send another recording", "file", "invalid_audio") \
                    if isinstance(t, LiteASRError) else (t, len(jobs))
        return results


def deploy(config: ServiceConfig, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
           replica_cpus: float = 1.0) -> str:
    """Start Serve's HTTP proxy on ``host:port`` and deploy the service on the
    connected Ray; returns the base URL. Ray must be initialized."""
    serve.start(http_options={"host": host, "port": port})
    deployment = TranscriptionService.options(
        num_replicas=replicas, ray_actor_options={"num_cpus": replica_cpus},
        # a replica takes a full batch while it decodes the previous one
        max_ongoing_requests=max(4, 2 * config.max_batch_size))
    serve.run(deployment.bind(config), name=APP_NAME, route_prefix="/")
    return f"http://{host}:{port}"


def run_service(config: ServiceConfig, address: str | None = None, host: str = "127.0.0.1", port: int = 8000,
                replicas: int = 1, replica_cpus: float = 1.0, num_cpus: int | None = None) -> None:
    """``liteasr-serve``: deploy, serve until interrupted (Ctrl-C, SIGTERM),
    then remove the application; a local Ray instance (no ``address``) is
    stopped as well, a joined cluster keeps running."""
    check_artifacts(config.artifacts)
    if address in (None, LOCAL):  # a joined cluster listens on its own nodes
        check_port(host, port)
    # Serve's driver-side lines ("Started Serve in namespace...", "Controller failed to shut down" when the
    # signal reached Ray's processes too) only with --debug
    logging.getLogger("ray.serve").setLevel(logging.INFO if debug_enabled() else logging.ERROR)
    with ray_session(address, num_cpus=num_cpus):
        try:
            try:
                url = deploy(config, host, port, replicas, replica_cpus)
            except RuntimeError as exc:
                raise LiteASRError(f"the service did not start: {' '.join(str(exc).split())[:400]}",
                                   "run with --debug, and check the replicas' logs under "
                                   "/tmp/ray/session_latest/logs") from None
            print(f"liteasr-serve: serving {model_id(config.artifacts)} at {url}/v1 ({replicas} replica(s), "
                  f"max batch {config.max_batch_size}, wait {config.batch_wait_timeout_s * 1000:g} ms); Ctrl-C stops",
                  file=sys.stderr, flush=True)
            while True:  # until Ctrl-C or SIGTERM raises here
                time.sleep(3600)
        finally:  # also when interrupted while the replicas start
            if address not in (None, LOCAL):
                _remove_application()
            # a local Ray is shut down whole when the block ends (replicas, proxy and controller with it), without
            # a call to Serve: a SIGTERM sent to the whole process group has stopped Ray's GCS with this command,
            # and such a call would wait a minute for it


def _remove_application() -> None:
    """Delete the application from a joined cluster, its replicas finishing
    the requests they hold; Serve and the cluster keep running."""
    try:
        serve.delete(APP_NAME)
    except RayServeException:  # Serve never started
        pass
