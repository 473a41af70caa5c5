"""liteasr-serve on a local Ray (2 CPUs, 127.0.0.1): OpenAI's own client
gets liteasr-transcribe's text, concurrent requests share batches, and bad
requests get OpenAI-style 4xx errors while the service goes on serving."""

from __future__ import annotations

import concurrent.futures
import os
import signal
from pathlib import Path

import pytest

from liteasr_export.app.cli import serve_main, transcribe_main
from liteasr_export.core.frontend import SAMPLE_RATE

pytestmark = pytest.mark.slow
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

TIMEOUT = 180  # seconds a request may take (first requests load ONNX Runtime's sessions)
SERVE = "import sys; from liteasr_export.app.cli import serve_main; sys.exit(serve_main(sys.argv[1:]))"
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    """The environment of a liteasr-serve started as a command: this checkout first."""
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    from exporters.artifacts import export_artifacts
    from liteasr_export.model.sources import load_model

    out = tmp_path_factory.mktemp("tiny-en-serve")
    export_artifacts(load_model("tiny.en"), out)
    return out


@pytest.fixture(scope="module")
def service(tiny_en, local_ray, free_port):
    """One replica, batches of up to 4 that wait up to 1 s to fill (so that
    concurrent requests surely share one), uploads up to 1 MB and 20 s."""
    from liteasr_export.app.serve.service import ServiceConfig, deploy

    config = ServiceConfig(str(tiny_en), max_batch_size=4, batch_wait_timeout_s=1.0, max_upload_mb=1.0,
                           max_audio_seconds=20, threads=2)
    return deploy(config, host="127.0.0.1", port=free_port(), replicas=1, replica_cpus=1)


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service, timeout=TIMEOUT) as c:
        yield c


def _post(client, path: str | None, name: str | None = None, data: bytes | None = None, **fields):
    files = None
    if path is not None or data is not None:
        content = data if data is not None else open(path, "rb").read()
        files = {"file": (name or path.rsplit("/", 1)[-1], content)}
    return client.post("/v1/audio/transcriptions", files=files, data={"model": "tiny.en", **fields})


def test_openai_client_gets_the_text_of_liteasr_transcribe(service, tiny_en, speech_clip_path, capsys):
    assert transcribe_main([speech_clip_path, "--engine", "onnx", "--artifacts", str(tiny_en), "--threads", "2"]) == 0
    expected = capsys.readouterr().out.strip()
    assert expected
    api = openai.OpenAI(base_url=f"{service}/v1", api_key="not-needed", timeout=TIMEOUT, max_retries=0)
    with open(speech_clip_path, "rb") as f:
        result = api.audio.transcriptions.create(model="tiny.en", file=f)
    assert result.text == expected
    with open(speech_clip_path, "rb") as f:
        verbose = api.audio.transcriptions.create(model="tiny.en", file=f, response_format="verbose_json")
    assert verbose.text == expected and verbose.segments and verbose.duration > 1
    assert " ".join(s.text for s in verbose.segments).split() == expected.split()
    with open(speech_clip_path, "rb") as f:
        subtitles = api.audio.transcriptions.create(model="tiny.en", file=f, response_format="srt")
    assert subtitles.startswith("1\n00:00:00,000 --> ")
    assert [m.id for m in api.models.list().data] == ["tiny.en"]


def test_concurrent_requests_share_a_batch_and_get_their_own_text(client, speech_clip_path):
    from calibration.datasets import resolve_set

    clips = [u.audio for u in resolve_set("builtin", purpose="eval")[:4]]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda p: _post(client, p), clips))
    assert [r.status_code for r in responses] == [200] * 4
    assert max(int(r.headers["x-liteasr-batch-size"]) for r in responses) > 1
    alone = [_post(client, p).json()["text"] for p in clips[:2]]
    assert [r.json()["text"] for r in responses[:2]] == alone  # a batch changes nothing in a text
    assert len({r.json()["text"] for r in responses}) == 4


def test_bad_requests_get_openai_errors_and_the_service_goes_on(client, speech_clip_path, tmp_path):
    import numpy as np
    import soundfile as sf

    big = tmp_path / "long.wav"  # 40 s of 16-bit PCM: 1.3 MB, over the 1 MB limit
    sf.write(big, np.zeros(40 * SAMPLE_RATE, np.int16), SAMPLE_RATE, subtype="PCM_16")
    long = tmp_path / "long.flac"  # 25 s of silence in a few KB: over the 20 s limit
    sf.write(long, np.zeros(25 * SAMPLE_RATE, np.int16), SAMPLE_RATE)
    forged = tmp_path / "forged.wav"  # 3 KB whose header says 1 Hz: 25 minutes of audio
    sf.write(forged, np.zeros(1500, np.int16), 1, subtype="PCM_16")
    cases = {
        "missing file": (_post(client, None), 400, "file"),
        "absurd sample rate": (_post(client, str(forged)), 400, "file"),
        "too long": (_post(client, str(long)), 400, "file"),
        "undecodable audio": (_post(client, None, "clip.wav", b"RIFF\x00\x00 not audio"), 400, "file"),
        "unsupported format": (_post(client, None, "clip.docx", b"PK\x03\x04"), 400, "file"),
        "oversized upload": (_post(client, str(big)), 413, "file"),
        "unknown response_format": (_post(client, speech_clip_path, response_format="xml"), 400, "response_format"),
        "unsupported language": (_post(client, speech_clip_path, language="fr"), 400, "language"),
        "unknown model": (_post(client, speech_clip_path, model="nope"), 404, "model"),
    }
    for what, (response, status, param) in cases.items():
        assert response.status_code == status, (what, response.text)
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["param"] == param, what
        assert error["message"], what
        if status == 400:  # a client's fix names the request's fields, never the service's command-line flags
            assert "--" not in error["message"], (what, error["message"])
    assert "sample rate of 1 Hz" in cases["absurd sample rate"][0].json()["error"]["message"]
    assert cases["too long"][0].json()["error"]["code"] == "audio_too_long"
    assert cases["unsupported language"][0].json()["error"]["message"].endswith("send language=en, or leave "
                                                                                 "language out")
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    assert client.get("/health").json()["status"] == "ok"
    good = _post(client, speech_clip_path, response_format="text")
    assert good.status_code == 200 and good.text.strip()


def test_a_chunked_upload_is_refused_at_the_limit_while_it_streams(service):
    """A body without Content-Length: the 413 comes once the bytes pass the
    limit, while the client has not finished (it never sends the rest)."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(service)
    boundary = "b0undary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\ntiny.en\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n').encode()
    with socket.create_connection((url.hostname, url.port), timeout=60) as sock:
        sock.sendall(f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: {url.netloc}\r\nTransfer-Encoding: chunked\r\n"
                     f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        for data in [head] + [b"\0" * 65536] * 20:  # 1.25 MB of a 40 MB upload, over the 1 MB limit
            sock.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        reply = sock.recv(65536)  # before any end of the body
        head_end = reply.find(b"\r\n\r\n")
        length = int(reply.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if head_end > 0 else 0
        while head_end > 0 and len(reply) < head_end + 4 + length:  # the body may come in its own segment
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    assert reply.startswith(b"HTTP/1.1 413"), reply[:300]
    assert b"file_too_large" in reply


def test_a_port_in_use_is_one_line_before_ray_starts(random_artifacts):
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([sys.executable, "-c", SERVE, "--artifacts", str(random_artifacts), "--port",
                                 str(port)], env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"liteasr-serve: error: port {port} on 127.0.0.1 is in use")
    assert "pass --port with a free port, e.g. --port " in lines[0]


def test_liteasr_serve_refuses_corrupt_artifacts_before_starting(tiny_en, tmp_path, capsys, free_port, copy_artifacts,
                                                                 corrupt_weights):
    broken = copy_artifacts(tiny_en, tmp_path / "broken")
    corrupt_weights(broken / "encoder.onnx")
    assert serve_main(["--artifacts", str(broken), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "encoder.onnx is corrupt or was modified" in err and "re-export" in err


@pytest.mark.parametrize("signum, group, code", [
    (signal.SIGINT, True, 130),  # Ctrl-C: the terminal signals the whole process group
    (signal.SIGTERM, False, 143),  # kill PID, a service manager: the command alone
])
def test_liteasr_serve_starts_its_own_ray_and_stops_it_on_a_signal(tiny_en, tmp_path, signum, group, code, free_port,
                                                                   default_sigint):
    """The command as users run it: a local Ray of its own (next to the
    module's), serving until Ctrl-C or SIGTERM, then exit 130 / 143 with
    every process it started gone; Ray's and Serve's own logs stay off the
    terminal (``--debug`` shows them)."""
    import os
    import subprocess
    import sys
    import time

    port = free_port()
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "--artifacts", str(tiny_en), "--port", str(port),
                             "--num-cpus", "1"], env=_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and proc.poll() is None and "serving" not in (tmp_path / "serve.log").read_text():
            time.sleep(1)
        output = (tmp_path / "serve.log").read_text()
        assert proc.poll() is None and "serving" in output, output[-2000:]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"] == "tiny.en"
        (os.killpg if group else os.kill)(proc.pid, signum)
        assert proc.wait(timeout=120) == code, (tmp_path / "serve.log").read_text()[-2000:]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        time.sleep(2)
        left = subprocess.run(["ps", "-o", "pid=,args=", "--sid", str(proc.pid)], capture_output=True, text=True).stdout
        assert left.strip() == "", left
        lines = (tmp_path / "serve.log").read_text().strip().splitlines()
        assert all(line.startswith("liteasr-serve: ") for line in lines), lines
        assert lines[-1] == f"liteasr-serve: {'interrupted' if code == 130 else 'terminated (SIGTERM)'}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
