"""liteasr-serve on a local Ray (2 CPUs, 127.0.0.1): OpenAI's own client
gets liteasr-transcribe's text, concurrent requests share batches, and bad
requests get OpenAI-style 4xx errors while the service goes on serving."""

from __future__ import annotations

import concurrent.futures

import pytest
from conftest import default_sigint
from ray_local import free_port, start_local_ray

from liteasr_export.cli import serve_main, transcribe_main
from liteasr_export.frontend import SAMPLE_RATE

pytestmark = pytest.mark.slow
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

TIMEOUT = 180  # seconds a request may take (first requests load ONNX Runtime's sessions)


@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory):
    from exporters.artifacts import export_artifacts
    from liteasr_export.sources import load_model

    out = tmp_path_factory.mktemp("tiny-en-serve")
    export_artifacts(load_model("tiny.en"), out)
    return out


@pytest.fixture(scope="module")
def service(request, tiny_en):
    """One replica, batches of up to 4 that wait up to 1 s to fill (so that
    concurrent requests surely share one), uploads up to 1 MB."""
    start_local_ray(request)
    from liteasr_export.serve.service import ServiceConfig, deploy

    config = ServiceConfig(str(tiny_en), max_batch_size=4, batch_wait_timeout_s=1.0, max_upload_mb=1.0, threads=2)
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
    cases = {
        "missing file": (_post(client, None), 400, "file"),
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
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    assert client.get("/health").json()["status"] == "ok"
    good = _post(client, speech_clip_path, response_format="text")
    assert good.status_code == 200 and good.text.strip()


def test_liteasr_serve_refuses_corrupt_artifacts_before_starting(tiny_en, tmp_path, capsys):
    from conftest import copy_artifacts, corrupt_weights

    broken = copy_artifacts(tiny_en, tmp_path / "broken")
    corrupt_weights(broken / "encoder.onnx")
    assert serve_main(["--artifacts", str(broken), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert "encoder.onnx is corrupt or was modified" in err and "re-export" in err


def test_liteasr_serve_starts_its_own_ray_and_stops_it_on_ctrl_c(tiny_en, tmp_path):
    """The command as users run it: a local Ray of its own (next to the
    module's), serving until SIGINT, then exit 130 with every process it
    started gone."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "RAY_USAGE_STATS_ENABLED": "0"}
    code = "import sys; from liteasr_export.cli import serve_main; sys.exit(serve_main(sys.argv[1:]))"
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, "--artifacts", str(tiny_en), "--port", str(port),
                             "--num-cpus", "1"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=default_sigint)
    try:
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=10).json()["data"][0]["id"] == "tiny.en"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        time.sleep(2)
        left = subprocess.run(["ps", "-o", "pid=,args=", "--sid", str(proc.pid)], capture_output=True, text=True).stdout
        assert left.strip() == "", left
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
