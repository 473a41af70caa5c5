"""Shared fixtures: tiny random Whisper models and their on-disk layouts, and
helpers for copying and breaking artifacts folders and for child processes.

Builders that take arguments are fixture factories: the fixture returns the
builder (``random_whisper(seed=1)``, ``copy_artifacts(src, dst)``). They are
session-scoped so fixtures of any scope can use them. The fixtures only one
folder uses are in that folder's conftest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engines.runtime.trt_transcriber import TrtDecoderStep
from liteasr_export.core.runtime.ort_transcriber import OnnxTranscriber as _OnnxTranscriber
from liteasr_export.model.sources import BUNDLED


def _tiny_config(**overrides):
    from transformers import WhisperConfig

    values = dict(
        vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=50256, bos_token_id=50256, eos_token_id=50256, decoder_start_token_id=50257,
    )
    values.update(overrides)
    return WhisperConfig(**values)


def _random_whisper(seed: int = 0, **overrides):
    """A random tiny Whisper (d_model 64, 2 + 2 layers, 4 heads, ffn 128) with
    tiny.en's vocabulary and special tokens; ``overrides``: other config values."""
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(_tiny_config(**overrides)).eval()


@pytest.fixture(scope="session")
def random_whisper():
    """Factory: ``random_whisper(seed=0, **config_overrides)``, a random tiny
    Whisper with tiny.en's vocabulary (the tokenizer's model for tests that
    decode or export)."""
    return _random_whisper


def _tiny_whisper(seed: int = 0, layers: int = 2):
    """A random float32 Whisper: d_model 64, ffn 256, 4 heads, 80 mels, vocab 128."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(
        d_model=64, encoder_layers=layers, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=256, decoder_ffn_dim=256, num_mel_bins=80, vocab_size=128, max_source_positions=1500,
        max_target_positions=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=3,
    )
    return WhisperForConditionalGeneration(config).eval()


@pytest.fixture(scope="session")
def tiny_whisper():
    """Factory: ``tiny_whisper(seed=0, layers=2)``, a random tiny Whisper with a
    128-token vocabulary (for the encoder: compression and statistics)."""
    return _tiny_whisper


def _random_features(batch: int = 1, seed: int = 0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 80, 3000, generator=generator)


@pytest.fixture(scope="session")
def random_features():
    """Factory: ``random_features(batch=1, seed=0)``, a (batch, 80, 3000)
    tensor of random log-mel features."""
    return _random_features


@pytest.fixture(scope="session")
def tiny_en_tokenizer_json() -> Path:
    folder, _ = BUNDLED["tiny.en"].files()
    return folder / "tokenizer.json"


@pytest.fixture(scope="session")
def random_hf_dir(tmp_path_factory, tiny_en_tokenizer_json) -> Path:
    """A Hugging Face Whisper folder with random tiny weights and tiny.en's tokenizer."""
    path = tmp_path_factory.mktemp("hf-whisper")
    _random_whisper().save_pretrained(str(path))
    shutil.copy(tiny_en_tokenizer_json, path / "tokenizer.json")
    return path


@pytest.fixture(scope="session")
def random_ct2_dir(tmp_path_factory, random_hf_dir) -> Path:
    """The same model converted by CTranslate2's own converter."""
    converters = pytest.importorskip("ctranslate2.converters")
    path = tmp_path_factory.mktemp("ct2") / "model"
    converters.TransformersConverter(str(random_hf_dir)).convert(str(path), quantization="float32")
    shutil.copy(random_hf_dir / "tokenizer.json", path / "tokenizer.json")
    return path


@pytest.fixture(scope="session")
def speech_clip() -> np.ndarray:
    """A short built-in evaluation clip (16 kHz)."""
    from calibration.datasets import resolve_set
    from liteasr_export.core.frontend import load_audio

    return load_audio(resolve_set("builtin", purpose="eval")[0].audio)


@pytest.fixture(scope="session")
def speech_clip_path() -> str:
    from calibration.datasets import resolve_set

    return resolve_set("builtin", purpose="eval")[0].audio


#: random weights never say <|endoftext|>: keep their decodes short
RANDOM_MAX_NEW_TOKENS = 8
#: ranks of a low-rank random variant: layer 0 runs attention in the reduced dimension
RANDOM_LOW_RANK = [{"q_proj": 8, "k_proj": 8, "v_proj": 16, "out_proj": 16, "fc1": 24}, {"fc2": 16, "v_proj": 8}]


def _random_loaded(tokenizer_json: Path, low_rank: bool = False, seed: int = 0, **overrides):
    """A LoadedModel of a random tiny Whisper (optionally with random low-rank
    factors; ``overrides``: config values other than :func:`_tiny_config`'s)
    and tiny.en's tokenizer, decoding at most 8 tokens."""
    import torch

    from liteasr_export.core.decoding import build_options
    from liteasr_export.model.lowrank import LowRankLinear, install_low_rank_modules
    from liteasr_export.model.sources import LoadedModel
    from liteasr_export.core.tokenizer import WhisperTokenizer

    model = _random_whisper(seed=seed, **overrides)
    if low_rank:
        install_low_rank_modules(model, RANDOM_LOW_RANK)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, LowRankLinear):
                    for p in (module.weight1, module.weight2, module.bias):
                        p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    tokenizer = WhisperTokenizer(tokenizer_json)
    options = build_options(tokenizer, model.config.vocab_size, [], [], max_new_tokens=RANDOM_MAX_NEW_TOKENS)
    return LoadedModel("random", model, tokenizer, tokenizer_json, options, "test")


@pytest.fixture(scope="session")
def random_loaded():
    """Factory: ``random_loaded(tokenizer_json, low_rank=False, seed=0,
    **config_overrides)``, a LoadedModel of a random tiny Whisper (layer 0 in
    the reduced dimension when ``low_rank``) decoding at most
    ``random_max_new_tokens`` tokens."""
    return _random_loaded


@pytest.fixture(scope="session")
def random_max_new_tokens() -> int:
    """How many tokens a ``random_loaded`` model decodes at most."""
    return RANDOM_MAX_NEW_TOKENS


@pytest.fixture(scope="session")
def random_artifacts(tmp_path_factory, tiny_en_tokenizer_json) -> Path:
    """An artifacts folder (export_artifacts) of a random tiny dense model.
    Tests that change files copy it first (the ``copy_artifacts`` fixture)."""
    from exporters.artifacts import export_artifacts

    out = tmp_path_factory.mktemp("random-artifacts") / "out"
    export_artifacts(_random_loaded(tiny_en_tokenizer_json, seed=7), out)
    return out


@pytest.fixture(scope="session")
def foreign_artifacts(tmp_path_factory, tiny_en_tokenizer_json) -> Path:
    """The artifacts of another random tiny model, with 2 decoder heads
    instead of 4: the same tensor names, other shapes."""
    from exporters.artifacts import export_artifacts

    out = tmp_path_factory.mktemp("foreign-artifacts") / "out"
    export_artifacts(_random_loaded(tiny_en_tokenizer_json, seed=3, decoder_attention_heads=2), out)
    return out


def _copy_artifacts(src: Path, dst: Path, age_s: float = 0.0) -> Path:
    """A copy of an artifacts folder; ``age_s`` > 0 sets every file's mtime
    that far in the past (the ctime stays now: the integrity check's racy
    window also looks at it)."""
    import os
    import time

    shutil.copytree(src, dst)
    if age_s:
        stamp = time.time() - age_s
        for path in dst.rglob("*"):
            os.utime(path, (stamp, stamp))
    return dst


@pytest.fixture(scope="session")
def copy_artifacts():
    """Factory: ``copy_artifacts(src, dst, age_s=0.0)`` copies an artifacts
    folder (``age_s`` > 0: every file's mtime that far in the past)."""
    return _copy_artifacts


def _corrupt_weights(graph: Path, size: int = 1 << 20) -> None:
    """Overwrite up to ``size`` bytes inside the largest initializer of an ONNX
    file: the graph still parses and runs, its outputs are garbage."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    raw = max((t.raw_data for t in model.graph.initializer), key=len)
    data = graph.read_bytes()
    start = data.find(raw)
    assert start >= 0 and len(raw) >= 64
    size = min(size, len(raw) // 2)
    with open(graph, "r+b") as f:
        f.seek(start + (len(raw) - size) // 2)
        f.write(np.full(size // 4, 1e4, np.float32).tobytes())


@pytest.fixture(scope="session")
def corrupt_weights():
    """Factory: ``corrupt_weights(graph, size=1 << 20)`` overwrites weights
    inside an ONNX file (it still parses and runs; its outputs are garbage)."""
    return _corrupt_weights


def _default_sigint() -> None:
    """``preexec_fn`` of a child that a test interrupts with SIGINT (Ctrl-C):
    a job a shell starts in the background has SIGINT ignored, which the
    child would inherit, and then it never sees the interrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def default_sigint():
    """The ``preexec_fn`` for a child process a test interrupts with SIGINT
    (restores SIGINT's default handler)."""
    return _default_sigint


# ---------------------------------------------------------------- TensorRT without TensorRT
# The TensorRT decoder step on a machine without TensorRT: its code
# (engines.runtime.trt_transcriber.TrtDecoderStep: torch tensors in and out, the KV
# cache kept as tensors, reordered with index_select) driven by a stand-in engine
# that runs decoder.onnx in ONNX Runtime. What it cannot check is TensorRT itself;
# what it checks is everything this project wrote around it.

class OrtAsTrtEngine:
    """The slice of :class:`engines.runtime.trt_runner.TrtEngine` a decoder step uses
    (``run`` on named torch tensors, ``dtypes``, ``device``), over an ONNX
    Runtime session."""

    def __init__(self, session) -> None:
        import torch

        self.session = session
        self.device = torch.device("cpu")
        self.dtypes = {i.name: torch.float32 for i in session.get_inputs()}
        self.outputs = [o.name for o in session.get_outputs()]

    def run(self, feeds):
        import torch

        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in feeds.items()}
        return {name: torch.from_numpy(np.ascontiguousarray(value))
                for name, value in zip(self.outputs, self.session.run(self.outputs, arrays))}


class OrtAsTrtTranscriber(_OnnxTranscriber):
    """An ONNX Runtime transcriber whose decoder step is TensorRT's."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.name = "tensorrt fp32"

    def encode(self, features: np.ndarray):
        import torch

        return [torch.from_numpy(np.ascontiguousarray(c)) for c in super().encode(features)]

    def encode_outputs(self, features: np.ndarray):
        import torch

        cross, outputs = super().encode_outputs(features)
        return [torch.from_numpy(np.ascontiguousarray(c)) for c in cross], outputs

    def artifact(self, graph: str) -> str:
        return f"trt/{graph}.plan"

    def decoder_step(self, cross):
        return TrtDecoderStep(OrtAsTrtEngine(self.decoder), self.n_layers, cross, self.manifest.decoder_shares_cross)


@pytest.fixture(scope="session")
def ort_as_trt_transcriber() -> type[OrtAsTrtTranscriber]:
    """The class of an ONNX Runtime transcriber whose decoder step is
    TensorRT's (constructed like :class:`OnnxTranscriber`)."""
    return OrtAsTrtTranscriber


