"""``build_engines.sh``: its trtexec commands carry the builder's profiles,
precision settings and timing cache, it is valid bash, and it runs, against
a stand-in trtexec, in both TensorRT 10 (weakly typed) and 11 (strongly
typed) modes."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import onnx
import pytest

from engines.build.trt_builder import TrtBuildOptions, plan_precision
from engines.build.trt_export import export_tensorrt
from engines.build.trt_profiles import ProfileOptions, manifest_profiles
from engines.build.trtexec_script import SCRIPT_NAME, render_script, write_build_script
from liteasr_export.core.manifest import load_manifest
from liteasr_export.core.errors import ExportError

#: records each call's arguments (one per line) and writes the --saveEngine file
FAKE_TRTEXEC = """#!/usr/bin/env bash
if [ "$1" = "--help" ]; then
  if [ "$FAKE_WEAK" = 1 ]; then echo "  --precisionConstraints=spec  Control precision constraint setting"; fi
  exit 0
fi
for a in "$@"; do case "$a" in --saveEngine=*) plan="${a#--saveEngine=}";; esac; done
printf '%s\\n' "$@" > "$FAKE_LOG/$(basename "$plan").args"
echo plan > "$plan"
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, exported_folder) -> Path:
    return Path(shutil.copytree(exported_folder("unfused"), tmp_path_factory.mktemp("trt") / "artifacts"))


def _fake_trtexec(tmp_path: Path) -> Path:
    path = tmp_path / "trtexec"
    path.write_text(FAKE_TRTEXEC)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def _run(script: Path, trtexec: Path, log: Path, weak: bool) -> subprocess.CompletedProcess:
    log.mkdir()
    env = {**os.environ, "TRTEXEC": str(trtexec), "FAKE_LOG": str(log), "FAKE_WEAK": "1" if weak else "0"}
    return subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60, cwd="/")


def _args(log: Path, graph: str) -> list[str]:
    return (log / f"{graph}.plan.args").read_text().splitlines()


def test_fp16_script_matches_profiles_and_precision_plan(folder):
    options = TrtBuildOptions(precision="fp16", profile=ProfileOptions(max_batch=4), workspace_mb=2048)
    text = render_script(folder, options)
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid bash
    profiles = manifest_profiles(load_manifest(folder), options.profile)
    for graph, profile in profiles.items():
        for arg in profile.trtexec_args():
            assert arg in text, (graph, arg)
    decoder = plan_precision(onnx.load(str(folder / "decoder.onnx")), "fp16", "decoder")
    pinned = {n.name for n in onnx.load(str(folder / "decoder.onnx")).graph.node
              if n.op_type in ("LayerNormalization", "Softmax")}
    assert pinned and pinned <= set(decoder.fp32_nodes)
    assert "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in decoder.fp32_nodes) in text
    assert text.count("--fp16") == 2  # encoder and decoder; the frontend stays fp32
    assert text.count("--precisionConstraints=obey") == 2
    assert text.count("--timingCacheFile=trt/timing.cache") == 6  # 3 graphs x 2 typing modes
    assert "--memPoolSize=workspace:2048M" in text
    assert "engines only run on the GPU model and TensorRT version that" in text  # the README note


def test_fp32_script_has_no_precision_flags(folder):
    text = render_script(folder, TrtBuildOptions(precision="fp32"))
    assert "--fp16" not in text and "--bf16" not in text and "--layerPrecisions" not in text
    assert text.count("--stronglyTyped") == 3


@pytest.mark.parametrize("weak", [True, False], ids=["tensorrt10-weak", "tensorrt11-strong"])
def test_script_runs_every_build_with_a_stand_in_trtexec(folder, tmp_path, weak):
    script = write_build_script(folder, TrtBuildOptions(precision="bf16"))
    assert script == folder / SCRIPT_NAME and os.access(script, os.X_OK)
    for plan in (folder / "trt").glob("*.plan"):
        plan.unlink()
    result = _run(script, _fake_trtexec(tmp_path), tmp_path / "log", weak)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (folder / "trt").glob("*.plan")) == ["decoder.plan", "encoder.plan", "frontend.plan"]
    encoder, frontend = _args(tmp_path / "log", "encoder"), _args(tmp_path / "log", "frontend")
    assert encoder[:3] == ["--onnx=encoder.onnx", "--saveEngine=trt/encoder.plan",
                           "--minShapes=input_features:1x80x200"]  # the shortest audio context: 2 s
    if weak:
        assert "--bf16" in encoder and "--precisionConstraints=obey" in encoder and "--stronglyTyped" not in encoder
        assert "--bf16" not in frontend
    else:
        assert "--stronglyTyped" in encoder and not any(a.startswith("--layerPrecisions") for a in encoder)
        assert "builds encoder.onnx (float32) in float32" in result.stderr


def test_missing_trtexec_is_named(folder, tmp_path):
    script = write_build_script(folder, TrtBuildOptions())
    env = {**os.environ, "TRTEXEC": str(tmp_path / "no-such-trtexec")}
    result = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "trtexec not found" in result.stderr


def test_export_step_checks_readiness_before_writing_the_script(tmp_path, exported_folder):
    ready = Path(shutil.copytree(exported_folder("unfused"), tmp_path / "ready"))
    assert export_tensorrt(ready, TrtBuildOptions(precision="fp16"), build_script=True) == ready / SCRIPT_NAME
    fused = Path(shutil.copytree(exported_folder("auto"), tmp_path / "fused"))
    if "MultiHeadAttention" not in {n.op_type for n in onnx.load(str(fused / "encoder.onnx")).graph.node}:
        pytest.skip("this onnxruntime exported no contrib attention")
    with pytest.raises(ExportError, match="not ready for TensorRT"):
        export_tensorrt(fused, TrtBuildOptions(), build_script=True)
    assert not (fused / SCRIPT_NAME).exists()
