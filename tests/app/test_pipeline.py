"""The one-command pipeline on a tiny random model: output folder, manifest,
checksums, refusals, parity failure and interrupted runs."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from liteasr_export.app.cli import export_main
from liteasr_export.core.integrity import sha256_file
from liteasr_export.core.manifest import update_manifest


def _args(model_dir: Path, out: Path, *extra: str) -> list[str]:
    # random weights transcribe nothing meaningful: the quality gate is exercised in
    # test_quality_gate.py on real weights; here it runs on the eval clips with no limit
    return ["--model", str(model_dir), "--output", str(out), "--calib-samples", "4", "--eval-limit", "2",
            "--parity-clips", "1", "--quiet", "--cache-dir", str(out.parent / "cache"),
            "--gate-sets", "none", "--max-wer-increase", "100000", *extra]


@pytest.fixture(scope="module")
def exported(random_hf_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pipeline") / "out"
    assert export_main(_args(random_hf_dir, out)) == 0
    return out


def test_manifest_describes_every_graph_and_checksums_match(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    for key in ("model", "graphs", "decoding", "frontend", "compression", "validation", "versions", "sha256"):
        assert key in manifest, key
    assert set(manifest["graphs"]) == {"frontend", "encoder", "decoder"}
    decoder = manifest["graphs"]["decoder"]
    assert [i["name"] for i in decoder["inputs"]][0] == "input_ids"
    assert manifest["decoding"]["eot"] == 50256 and manifest["versions"]["onnxruntime"]
    assert manifest["compression"]["low_rank_config"] is not None
    for name, digest in manifest["sha256"].items():
        assert hashlib.sha256((exported / name).read_bytes()).hexdigest() == digest, name
    assert "encoder.onnx" in manifest["sha256"] and "checkpoint/model.safetensors" in manifest["sha256"]
    parity = manifest["validation"]["parity"]
    assert all(p["passed"] for p in parity) and {p["artifact"] for p in parity} == {"encoder.onnx", "decoder.onnx"}
    assert (exported / "report.md").read_text().count("| pass |") >= 2


def test_every_output_file_is_readable_by_all(exported):
    modes = {str(p.relative_to(exported)): oct(p.stat().st_mode & 0o777) for p in exported.rglob("*") if p.is_file()}
    assert set(modes.values()) == {oct(0o644)}, modes  # checkpoint/model.safetensors was written 0600


def test_compressed_checkpoint_loads_back_as_a_model_source(exported):
    from liteasr_export.model.sources import load_model

    loaded = load_model(exported / "checkpoint")
    assert loaded.source_kind == "lite-whisper" and loaded.is_low_rank


def test_existing_output_is_refused_without_force(exported, random_hf_dir, capsys):
    before = (exported / "manifest.json").read_bytes()
    assert export_main(_args(random_hf_dir, exported)) != 0
    assert "exists" in capsys.readouterr().err and (exported / "manifest.json").read_bytes() == before


def test_perturbed_weights_fail_parity_and_leave_no_output(random_hf_dir, tmp_path, monkeypatch, capsys):
    import exporters.artifacts as artifacts

    original = artifacts.export_artifacts

    def export_then_perturb(loaded, out_dir, **kwargs):
        manifest = original(loaded, out_dir, **kwargs)
        path = Path(out_dir) / "encoder.onnx"
        graph = onnx.load(str(path))
        init = next(t for t in graph.graph.initializer if "fc1" in t.name)
        weights = onnx.numpy_helper.to_array(init)
        values = weights + np.random.default_rng(0).normal(0.0, 0.05, weights.shape)
        init.CopyFrom(onnx.numpy_helper.from_array(values.astype(np.float32), init.name))
        onnx.save(graph, str(path))
        # a defective exporter, not a corrupt copy: the manifest records the bad graph's checksum
        update_manifest(out_dir, sha256={**manifest.data["sha256"], "encoder.onnx": sha256_file(path)})
        return manifest

    monkeypatch.setattr(artifacts, "export_artifacts", export_then_perturb)
    out = tmp_path / "out"
    assert export_main(_args(random_hf_dir, out)) == 3
    err = capsys.readouterr().err
    assert "fails parity" in err and "encoder.onnx" in err and "max abs" in err
    assert not out.exists() and not list(tmp_path.glob(".out.tmp-*"))


def test_killed_export_leaves_no_output(random_hf_dir, tmp_path):
    out = tmp_path / "out"
    code = "import sys; from liteasr_export.app.cli import export_main; sys.exit(export_main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, *[a for a in _args(random_hf_dir, out) if a != "--quiet"]],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    for line in proc.stdout:  # wait until the export stage has started writing
        if line.startswith("[export]") or time.time() > deadline:
            break
    time.sleep(1.0)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    assert list(tmp_path.glob(".out.tmp-*"))  # the half-written folder stayed aside ...
    assert export_main(_args(random_hf_dir, out, "--no-validate")) == 0  # ... and the next run clears it
    assert not list(tmp_path.glob(".out.tmp-*"))
    assert json.loads((out / "manifest.json").read_text())["validation"].startswith("skipped")


def test_trt_without_tensorrt_says_what_is_missing(random_hf_dir, tmp_path, capsys):
    pytest.importorskip("onnx")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    assert export_main(_args(random_hf_dir, tmp_path / "trt", "--engine", "trt")) != 0
    assert "tensorrt" in capsys.readouterr().err.lower()
    assert not (tmp_path / "trt").exists()


def test_trt_build_script_is_written(random_hf_dir, tmp_path):
    out = tmp_path / "trt"
    assert export_main(_args(random_hf_dir, out, "--engine", "trt", "--build-script", "--no-validate")) == 0
    script = (out / "build_engines.sh").read_text()
    assert "trtexec" in script and "--minShapes" in script and "decoder.onnx" in script
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tensorrt"]["built"] is False
    encoder = onnx.load(str(out / "encoder.onnx"), load_external_data=False)
    assert not any(n.domain == "com.microsoft" for n in encoder.graph.node)  # unfused for TensorRT


def test_the_tensorrt_builders_record_stays_in_the_manifest(random_hf_dir, tmp_path, monkeypatch):
    """The builder records TensorRT's version, the device and each engine's
    precision and profile; the export adds where the engines are and must not
    replace that record (TensorRT itself is faked: it cannot run here)."""
    from liteasr_export.app.export import pipeline

    def fake_build(folder, options, build_script=False):
        (folder / "trt").mkdir()
        update_manifest(folder, tensorrt={"tensorrt_version": "10.99", "device": "a GPU",
                                          "engines": {"encoder": {"precision": options.precision}}})
        return folder / "trt"

    monkeypatch.setattr(pipeline, "require_tensorrt", lambda: None)
    monkeypatch.setattr(pipeline, "export_tensorrt", fake_build)
    out = tmp_path / "trt"
    assert export_main(_args(random_hf_dir, out, "--engine", "trt", "--no-validate")) == 0
    recorded = json.loads((out / "manifest.json").read_text())["tensorrt"]
    assert recorded["built"] is True and recorded["path"] == "trt"
    assert recorded["tensorrt_version"] == "10.99" and recorded["engines"]["encoder"]["precision"] == "fp32"


def _gate_short_of_margin_at_first(monkeypatch) -> list[float]:
    """Make the first candidate's gate pass without margin (a huge standard
    error on its first labeled set), as a default on the edge of the limit
    does; returns the budget sizes validated, in order."""
    import liteasr_export.app.export.pipeline as pipeline

    real, sizes = pipeline.validate, []

    def validate(dense, compressed, out_dir, opts, **kwargs):
        result = real(dense, compressed, out_dir, opts, **kwargs)
        policy = json.loads((Path(out_dir) / "compression_report.json").read_text())["policy"]
        sizes.append(policy["target_size"])
        if len(sizes) == 1:
            first = next(s for s in result["quality"].sets if s.labeled)
            first.increase_se = {name: 1e6 for name in first.increase}
        return result

    monkeypatch.setattr(pipeline, "validate", validate)
    return sizes


def test_default_size_steps_up_when_the_gate_passes_within_its_noise(random_hf_dir, tmp_path, monkeypatch, capsys):
    sizes = _gate_short_of_margin_at_first(monkeypatch)
    out = tmp_path / "out"
    assert export_main([a for a in _args(random_hf_dir, out) if a != "--quiet"]) == 0
    assert sizes == [0.975, 0.9875]  # d_model 64: the narrow encoders' default, then halfway to dense
    printed = capsys.readouterr().out
    assert "did not pass with margin" in printed and "trying budget size 0.9875" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    steps = manifest["validation"]["default_size_steps"]
    assert [s["passed_with_margin"] for s in steps] == [False, True]
    assert [s["policy"]["target_size"] for s in steps] == sizes
    assert manifest["compression"]["policy"]["target_size"] == 0.9875
    assert manifest["validation"]["quality"]["passed_with_margin"] is True
    report = (out / "report.md").read_text()
    assert "## Default size" in report and "± 1000000.00" in report
    assert {"probe", "compress", "export", "validate", "parity", "gate"} <= set(manifest["timings_s"])


def test_a_chosen_size_is_judged_as_it_is(random_hf_dir, tmp_path, monkeypatch):
    sizes = _gate_short_of_margin_at_first(monkeypatch)
    out = tmp_path / "out"
    assert export_main(_args(random_hf_dir, out, "--target-size", "0.9")) == 0
    assert sizes == [0.9]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "default_size_steps" not in manifest["validation"]
    assert manifest["validation"]["quality"]["passed"] and not manifest["validation"]["quality"]["passed_with_margin"]


def test_stage_times_count_no_second_twice():
    from liteasr_export.app.export.pipeline import describe_timings

    timings = {"load": 0.5, "export": 19.3, "validate": 72.2, "parity": 11.7, "gate": 60.4}
    assert describe_timings(timings) == ["load 0.5s", "export 19.3s", "validate 72.2s (parity 11.7s, gate 60.4s)"]


@pytest.mark.parametrize("compress", [True, False])
def test_a_context_tuned_export_defaults_to_auto_and_is_gated_in_it(random_hf_dir, tmp_path, compress):
    """``--context-tune``: the encoder is tuned (compressed or not), the
    manifest and the checkpoint say ``auto`` is the default, the gate ran the
    artifacts in it (trimmed windows counted: random weights never end their
    text, so every trimmed window goes back to 30 s and the gate calls it a
    fallback storm), and the report says what was tuned."""
    from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber
    from liteasr_export.model.sources import load_model
    from liteasr_export.model.torch_transcriber import TorchTranscriber

    out = tmp_path / "out"
    extra = ("--context-tune", "3", "--context-clips", "4", "--calib", "builtin", "--allow-degradation",
             *(() if compress else ("--no-compress",)))
    assert export_main(_args(random_hf_dir, out, *extra)) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audio_context"] == {"default": "auto", "tuned": True}
    # 4 clips alone, the first held back (scored only), and 1 window of the other three packed (about 20 s)
    assert manifest["context_tune"]["steps"] == 3 and manifest["context_tune"]["clips"] == 4
    assert manifest["context_tune"]["heldout_clips"] == 1
    assert manifest["context_tune"]["packed_windows"] == 1
    assert (manifest["compression"] is not None) == compress
    windows = manifest["validation"]["quality"]["sets"][0]["windows"]
    assert windows and all(c["trimmed"] == c["retried"] == c["windows"] > 0 for c in windows.values())
    assert manifest["degraded"] and "decoded again on 30 s" in manifest["validation"]["quality"]["failures"][0]
    assert "Audio-context tuning: 3 steps" in (out / "report.md").read_text()
    assert OnnxTranscriber(out, threads=1).audio_context == "auto"
    tuned = load_model(str(out / "checkpoint"))
    assert TorchTranscriber(tuned).audio_context == "auto"
    dense = load_model(str(random_hf_dir))
    assert TorchTranscriber(dense).audio_context == "full"
    changed = [n for n, p in tuned.model.named_parameters() if n.startswith("model.encoder.layers.0.fc2")]
    assert changed  # a tuned dense export still writes its checkpoint (the tuned weights)
