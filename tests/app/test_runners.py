"""One Runner protocol for every backend: opened by engine name in one place
(:mod:`liteasr_export.app.runners`), compared by one comparator
(:mod:`engines.validation.parity`) whatever the backend."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from engines.validation.parity import parity
from exporters.artifacts import export_artifacts
from liteasr_export.app.runners import ENGINES, open_runner
from liteasr_export.core.errors import LiteASRError
from liteasr_export.core.runner import Runner


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_en_tokenizer_json, random_loaded):
    loaded = random_loaded(tiny_en_tokenizer_json, low_rank=True, seed=5)
    out = tmp_path_factory.mktemp("runners") / "out"
    export_artifacts(loaded, out, frontend=False)
    return loaded, out


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).standard_normal((2, 80, 3000)).astype(np.float32)


def test_every_backend_is_a_runner_with_named_outputs(exported, features, ort_as_trt_transcriber):
    loaded, out = exported
    runners = [open_runner("torch", loaded=loaded), open_runner("onnx", artifacts=out, threads=1),
               ort_as_trt_transcriber(out, threads=1)]
    assert [r.name for r in runners] == ["torch fp32", "onnxruntime fp32", "tensorrt fp32"]
    assert [r.artifact("encoder") for r in runners] == ["torch fp32 encoder", "encoder.onnx", "trt/encoder.plan"]
    names = None
    for runner in runners:
        assert isinstance(runner, Runner)
        _, outputs = runner.encode_outputs(features)
        assert all(isinstance(v, np.ndarray) for v in outputs.values())
        names = names or sorted(outputs)
        assert sorted(outputs) == names  # every backend names its encoder outputs alike
    assert "last_hidden_state" in names and "cross_key.0" in names


def test_the_comparator_judges_any_backend_alike(exported, features, ort_as_trt_transcriber):
    """ONNX Runtime and the TensorRT decoder step (over ONNX Runtime sessions:
    no TensorRT here) pass the same parity; the reports name their artifacts."""
    loaded, out = exported
    reference = open_runner("torch", loaded=loaded)
    onnx = parity(reference, open_runner("onnx", artifacts=out, threads=1), features, "fp32")
    trt = parity(reference, ort_as_trt_transcriber(out, threads=1), features, "fp32")
    assert [r.artifact for r in onnx] == ["encoder.onnx", "decoder.onnx"]
    assert [r.artifact for r in trt] == ["trt/encoder.plan", "trt/decoder.plan"]
    assert all(r.passed for r in onnx + trt)
    for a, b in zip(onnx, trt):  # the same graphs behind both: the same errors
        assert [o.error for o in a.outputs] == pytest.approx([o.error for o in b.outputs], rel=1e-6)


def test_the_comparator_catches_a_defect_in_a_tensorrt_runner(exported, features, ort_as_trt_transcriber):
    loaded, out = exported

    class ScaledLogits(ort_as_trt_transcriber):  # a decoder engine whose logits are 2 % off
        def decoder_step(self, cross):
            step = super().decoder_step(cross)

            class Scaled:
                def __call__(self, tokens):
                    return step(tokens) * 1.02

                def reorder(self, rows):
                    step.reorder(rows)
            return Scaled()

    encoder, decoder = parity(open_runner("torch", loaded=loaded), ScaledLogits(out, threads=1), features, "fp32")
    assert encoder.passed and not decoder.passed


@pytest.mark.parametrize("engine, kwargs, message", [
    ("tflite", {}, "unknown engine 'tflite'"),
    ("torch", {}, "the torch engine needs a model"),
    ("onnx", {}, "the onnx engine needs an artifacts folder"),
    ("trt", {}, "the trt engine needs an artifacts folder"),
])
def test_what_an_engine_needs_is_named(engine, kwargs, message):
    with pytest.raises(LiteASRError, match=message):
        open_runner(engine, **kwargs)
    assert set(ENGINES) == {"torch", "onnx", "trt"}


def test_opening_an_onnx_runner_imports_no_torch(random_artifacts):
    code = ("import sys; from liteasr_export.app.runners import open_runner; "
            f"r = open_runner('onnx', artifacts={str(random_artifacts)!r}, threads=1); "
            "bad = [m for m in ('torch', 'transformers', 'tensorrt') if m in sys.modules]; "
            "print(r.name); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("onnxruntime ")
