"""The Ray Data jobs on a local Ray (2 CPUs): ``liteasr-transcribe --ray``
(records, failed files, resuming) and ``liteasr-export --ray`` (calibration
moments equal to the local pass's)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from calibration.datasets import resolve_set
from calibration.statistics import collect_window_statistics
from liteasr_export.app.cli import _settings, transcribe_main, transcribe_parser
from liteasr_export.core.errors import EXIT_ITEMS_FAILED
from liteasr_export.core.frontend import load_audio
from liteasr_export.model.lowrank import SITES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Five clips in a folder, a manifest of two more (with references) and
    a file that is not audio."""
    root = tmp_path_factory.mktemp("ray-inputs")
    clips = resolve_set("builtin", purpose="eval")[:7]
    folder = root / "folder"
    folder.mkdir()
    for u in clips[:5]:
        shutil.copy(u.audio, folder)
    (folder / "broken.wav").write_bytes(b"RIFF, but not audio")
    manifest = root / "set.jsonl"
    manifest.write_text("".join(json.dumps({"audio": u.audio, "text": u.text}) + "\n" for u in clips[5:]))
    return [str(folder), str(manifest)]


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _run(inputs, output, artifacts, *extra) -> int:
    return transcribe_main(["--ray", *inputs, "--output", str(output), "--artifacts", str(artifacts),
                            "--threads", "1", "--batch-size", "2", *extra])


def test_ray_value_is_an_address_or_the_first_input():
    parse = transcribe_parser().parse_args
    args = parse(["--ray", "clips/", "b.wav", "--output", "r.jsonl"])
    assert (args.ray, args.audio) == ("local", ["clips/", "b.wav"])
    args = parse(["--ray", "ray://head:10001", "clips/"])
    assert (args.ray, args.audio) == ("ray://head:10001", ["clips/"])
    assert parse(["a.wav"]).ray is None


def test_job_records_every_file_and_the_failed_one(local_ray, random_artifacts, inputs, tmp_path):
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber

    output = tmp_path / "results.jsonl"
    assert _run(inputs, output, random_artifacts) == EXIT_ITEMS_FAILED
    records = {r["audio"].rsplit("/", 1)[-1]: r for r in _lines(output)}
    assert len(records) == 8 and len(_lines(output)) == 8
    broken = records.pop("broken.wav")
    assert "cannot decode audio file" in broken["error"] and "text" not in broken
    assert all(r["error"] is None for r in records.values())
    assert sum("reference" in r for r in records.values()) == 2  # the manifest's
    direct = transcribe_parser().parse_args(["x.wav"])  # liteasr-transcribe's decoding defaults
    transcriber = OnnxTranscriber(random_artifacts, threads=1, settings=_settings(direct))
    paths = sorted(r["audio"] for r in records.values())
    texts = [t.text for t in transcriber.transcribe_detailed([load_audio(p) for p in paths])]
    assert [records[p.rsplit("/", 1)[-1]]["text"] for p in paths] == texts


def test_a_rerun_keeps_every_record_and_moves_a_cut_off_line_aside(local_ray, random_artifacts, inputs,
                                                                     tmp_path, capsys):
    output = tmp_path / "results.jsonl"
    done = [str(p) for p in sorted(Path(inputs[0]).glob("*.ogg"))[:3]]
    records = [json.dumps({"audio": p, "id": "x", "text": "ALREADY DONE", "error": None}) for p in done]
    prefix = "\n".join(records)  # the last record whole, but without its newline (written by another tool)
    output.write_text(prefix)
    assert _run(inputs, output, random_artifacts) == EXIT_ITEMS_FAILED
    assert "3 already done, 4 transcribed now, 1 failed now" in capsys.readouterr().out
    text = output.read_text()
    assert text.startswith(prefix + "\n") and text.endswith("\n")
    lines = _lines(output)  # every line is whole JSON
    assert len(lines) == 8 and len({r["audio"] for r in lines}) == 8  # nothing was done twice
    assert [r["text"] for r in lines[:3]] == ["ALREADY DONE"] * 3
    cut = '{"audio": "' + done[0][:20]
    output.write_text(text + cut)  # a job killed in the middle of a line
    assert _run(inputs, output, random_artifacts, "--retry-failed") == EXIT_ITEMS_FAILED
    assert f"moved to {output}.partial" in capsys.readouterr().err
    assert (tmp_path / "results.jsonl.partial").read_text() == cut + "\n"  # kept, not deleted
    assert output.read_text().startswith(text) and len(_lines(output)) == 9
    assert _lines(output)[-1]["audio"].endswith("broken.wav")
    assert _run(inputs, output, random_artifacts) == EXIT_ITEMS_FAILED  # all recorded: nothing to do
    assert len(_lines(output)) == 9


def test_sigterm_stops_the_job_and_every_process_it_started(random_artifacts, inputs, tmp_path, default_sigint):
    """``kill PID`` once the job's Ray runs (paused after its first batch):
    exit 143, whole lines in the output, and no process of its Ray left."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from liteasr_export.core.interrupts import PAUSE_ENV

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, PAUSE_ENV: "ray-batch", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": f"{root}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    code = "import sys; from liteasr_export.app.cli import transcribe_main as m; sys.exit(m(sys.argv[1:]))"
    output = tmp_path / "results.jsonl"
    log = open(tmp_path / "job.log", "w")
    proc = subprocess.Popen([sys.executable, "-c", code, "--ray", *inputs, "--output", str(output), "--artifacts",
                             str(random_artifacts), "--threads", "1", "--batch-size", "2"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=default_sigint)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and "paused at ray-batch" not in _text(tmp_path):
            time.sleep(1)
        assert proc.poll() is None, _text(tmp_path)[-2000:]
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, _text(tmp_path)[-2000:]
        time.sleep(2)
        left = subprocess.run(["ps", "-o", "pid=,args=", "--sid", str(proc.pid)], capture_output=True, text=True)
        assert left.stdout.strip() == "", left.stdout
        assert 1 <= len(_lines(output)) < 8 and output.read_text().endswith("\n")
        assert _text(tmp_path).strip().splitlines()[-1] == "liteasr-transcribe: terminated (SIGTERM)"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _text(tmp_path) -> str:
    return (tmp_path / "job.log").read_text()


def _windows(n: int) -> list[np.ndarray]:
    return [load_audio(u.audio)[: 16000 * (2 + i % 5)] for i, u in enumerate(resolve_set("builtin-calib", "calib")[:n])]


def test_ray_moments_equal_the_local_pass(local_ray, random_whisper):
    from liteasr_export.app.ray_jobs.stats import ray_window_statistics

    model = random_whisper(seed=3)
    windows = _windows(21)  # three shards of 8 windows, the last one partial
    local = collect_window_statistics(model, windows, batch_size=8)
    ray_stats = ray_window_statistics(model, windows, batch_size=8, shard_batches=1, progress=False)
    assert ray_stats.n_windows == local.n_windows == 21
    for mine, theirs in zip(ray_stats.layers, local.layers):
        for site in SITES:
            assert mine[site].count == theirs[site].count
            np.testing.assert_allclose(mine[site].sum.numpy(), theirs[site].sum.numpy(), rtol=1e-10, atol=1e-9)
            np.testing.assert_allclose(mine[site].outer.numpy(), theirs[site].outer.numpy(), rtol=1e-10, atol=1e-9)


def test_export_calibration_with_ray_equals_the_local_one(local_ray, tiny_en_tokenizer_json, tmp_path, random_loaded):
    from liteasr_export.app.export.compression_stage import calibrate
    from liteasr_export.app.export.options import ExportOptions

    loaded = random_loaded(tiny_en_tokenizer_json, seed=5)
    common = dict(output=tmp_path / "out", calib="builtin", calib_samples=6, packing="both", progress=False)
    local, _ = calibrate(loaded, ExportOptions(cache_dir=tmp_path / "a", **common))
    on_ray, note = calibrate(loaded, ExportOptions(cache_dir=tmp_path / "b", ray="local", **common))
    assert note.startswith("calibrated on") and on_ray.n_windows == local.n_windows > 6
    for mine, theirs in zip(on_ray.layers, local.layers):
        for site in SITES:
            np.testing.assert_allclose(mine[site].covariance.numpy(), theirs[site].covariance.numpy(),
                                       rtol=1e-9, atol=1e-12)


def test_a_manifest_line_s_language_is_decoded_in_unless_one_is_given(random_artifacts):
    """The actor (called directly, without Ray) decodes each file in its
    stated language where ``--language`` is ``auto`` (the default), in
    ``--language`` where one is given; a language the model does not speak
    fails that file's record, not the batch."""
    from liteasr_export.app.ray_jobs.transcribe import _TranscribeActor, decoding_language

    parse = transcribe_parser().parse_args
    clips = resolve_set("builtin", purpose="eval")[:2]
    batch = {"audio": np.array([u.audio for u in clips], dtype=object), "id": np.array(["a", "b"], dtype=object),
             "reference": np.array(["", ""], dtype=object), "language": np.array(["", "es"], dtype=object)}

    def records(*flags) -> list[dict]:
        actor = _TranscribeActor(str(random_artifacts), _settings(parse(["x.wav", *flags])), threads=1,
                                 batch_size=2, provider=None, ort_cache=None, verify=False)
        return [json.loads(line) for line in actor(batch)["record"]]

    unstated, spanish = records()  # --language auto: the line's language; this model is English-only
    assert unstated["error"] is None and unstated["language"] == "en"
    assert "text" not in spanish and "language=es" in spanish["error"]
    assert all(r["error"] is None and r["language"] == "en" for r in records("--language", "en"))
    settings = _settings(parse(["x.wav"]))
    assert decoding_language(settings, "es") == "es" and decoding_language(settings, None) == "auto"
