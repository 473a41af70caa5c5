"""Shared fixtures: tiny random Whisper models and their on-disk layouts."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from liteasr_export.sources import BUNDLED


def tiny_config(**overrides):
    from transformers import WhisperConfig

    values = dict(
        vocab_size=51864, num_mel_bins=80, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_source_positions=1500, max_target_positions=448,
        pad_token_id=50256, bos_token_id=50256, eos_token_id=50256, decoder_start_token_id=50257,
    )
    values.update(overrides)
    return WhisperConfig(**values)


def random_whisper(seed: int = 0, **overrides):
    import torch
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(tiny_config(**overrides)).eval()


@pytest.fixture(scope="session")
def tiny_en_tokenizer_json() -> Path:
    folder, _ = BUNDLED["tiny.en"].files()
    return folder / "tokenizer.json"


@pytest.fixture(scope="session")
def random_hf_dir(tmp_path_factory, tiny_en_tokenizer_json) -> Path:
    """A Hugging Face Whisper folder with random tiny weights and tiny.en's tokenizer."""
    path = tmp_path_factory.mktemp("hf-whisper")
    random_whisper().save_pretrained(str(path))
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
    from liteasr_export.frontend import load_audio

    return load_audio(resolve_set("builtin", purpose="eval")[0].audio)


@pytest.fixture(scope="session")
def speech_clip_path() -> str:
    from calibration.datasets import resolve_set

    return resolve_set("builtin", purpose="eval")[0].audio
