"""Compressed models on disk in LiteASR's lite-whisper layout.

A folder holds ``config.json`` (the Whisper config plus ``low_rank_config``,
``model_type: lite-whisper``), ``model.safetensors`` (Hugging Face names; a
factorized matrix stores ``*.weight1`` (in x r), ``*.weight2`` (r x out) and
``*.bias``), and optionally ``tokenizer.json`` and ``generation_config.json``.
Published lite-whisper checkpoints (sharded or not, fp16 or fp32) load too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration

from liteasr_export.core.errors import ModelSourceError
from liteasr_export.model.lowrank import install_low_rank_modules, low_rank_config_of, validate_low_rank_config

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
TOKENIZER = "tokenizer.json"
GENERATION_CONFIG = "generation_config.json"
MODEL_TYPE = "lite-whisper"
ARCHITECTURE = "LiteWhisperForConditionalGeneration"
#: config keys that belong to the file, not to ``WhisperConfig``
_FILE_KEYS = ("model_type", "architectures", "auto_map", "low_rank_config", "transformers_version", "_name_or_path")


def _read_config(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / CONFIG).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def is_lite_whisper_dir(path: str | Path) -> bool:
    """True for a folder with a ``config.json`` holding a ``low_rank_config`` list
    and safetensors weights."""
    directory = Path(path)
    if not directory.is_dir():
        return False
    config = _read_config(directory)
    if config is None or not isinstance(config.get("low_rank_config"), list):
        return False
    return (directory / WEIGHTS).is_file() or (directory / WEIGHTS_INDEX).is_file()


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.chmod(tmp, 0o644)  # safetensors writes 0600; the folder is meant to be shared like its other files
    os.replace(tmp, path)


def save_lite_whisper(
    model: nn.Module,
    directory: str | Path,
    tokenizer_path: str | Path | None = None,
) -> Path:
    """Save a (compressed or dense) ``WhisperForConditionalGeneration`` in the
    lite-whisper layout; returns the folder. Weights are written as float32,
    in a fixed order: the same model gives the same bytes."""
    directory = Path(directory)
    ranks = validate_low_rank_config(low_rank_config_of(model), model.config)
    if tokenizer_path is not None and not Path(tokenizer_path).is_file():
        raise ModelSourceError(f"tokenizer.json not found: {tokenizer_path}", "pass the source model's tokenizer.json")

    state = model.state_dict()
    proj, embed = "proj_out.weight", "model.decoder.embed_tokens.weight"
    if proj in state and embed in state and state[proj].data_ptr() == state[embed].data_ptr():
        del state[proj]  # tied to the embeddings, as Hugging Face stores it
    tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in state.items()}

    config = model.config.to_dict()
    for key in _FILE_KEYS:
        config.pop(key, None)
    config = {"architectures": [ARCHITECTURE], "model_type": MODEL_TYPE, **config, "low_rank_config": ranks}
    config["torch_dtype"] = "float32"

    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    _atomic_write(directory / CONFIG, lambda p: p.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n"))
    generation = getattr(model, "generation_config", None)
    if generation is not None:
        _atomic_write(directory / GENERATION_CONFIG, lambda p: p.write_text(generation.to_json_string()))
    if tokenizer_path is not None and Path(tokenizer_path).resolve() != (directory / TOKENIZER).resolve():
        _atomic_write(directory / TOKENIZER, lambda p: shutil.copyfile(tokenizer_path, p))
    return directory


def _load_state(directory: Path) -> dict[str, torch.Tensor]:
    if (directory / WEIGHTS).is_file():
        files = [directory / WEIGHTS]
    else:
        index = json.loads((directory / WEIGHTS_INDEX).read_text())
        files = [directory / name for name in sorted(set(index["weight_map"].values()))]
    state: dict[str, torch.Tensor] = {}
    for file in files:
        try:
            state.update(load_file(str(file)))
        except Exception as exc:
            raise ModelSourceError(f"cannot read weights {file} ({exc})", "re-save or re-download the model") from None
    return state


def load_lite_whisper(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Load a lite-whisper folder as a float32 ``WhisperForConditionalGeneration``
    (eval mode) whose factorized encoder matrices are ``LowRankLinear``."""
    directory = Path(path)
    if not is_lite_whisper_dir(directory):
        raise ModelSourceError(
            f"{directory} is not a lite-whisper folder",
            "it needs config.json with low_rank_config and model.safetensors",
        )
    data = _read_config(directory)
    ranks = data["low_rank_config"]
    config = WhisperConfig(**{k: v for k, v in data.items() if k not in _FILE_KEYS})
    model = WhisperForConditionalGeneration(config)
    install_low_rank_modules(model, ranks)  # validates ranks against the config
    state = _load_state(directory)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise ModelSourceError(
            f"weights in {directory} do not match its config.json ({str(exc).splitlines()[-1].strip()})",
            "re-save the model with save_lite_whisper",
        ) from None
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise ModelSourceError(
            f"weights in {directory} do not match its low_rank_config "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
            "re-save the model with save_lite_whisper",
        )
    model.tie_weights()
    if (directory / GENERATION_CONFIG).is_file():
        model.generation_config = GenerationConfig.from_pretrained(str(directory))
    return model.float().to(device).eval()
