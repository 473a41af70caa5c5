"""Import CTranslate2 / faster-whisper Whisper models (``model.bin``).

The format is small and fixed (binary version 6: per variable a name, rank,
dims, dtype id, byte count and data; then aliases), and CTranslate2 itself
only writes it, so the reader is written here: it streams variables from one
file or from a model.bin split into byte-concatenated parts.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from liteasr_export.core.errors import ModelSourceError

SUPPORTED_BINARY_VERSIONS = (5, 6)
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BF16 = 5


class _PartsReader:
    """Sequential reads across model.bin parts, tracking the offset for errors."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.total = sum(p.stat().st_size for p in paths)
        self._files: Iterator[BinaryIO] = (open(p, "rb") for p in paths)
        self._current: BinaryIO | None = next(self._files, None)
        self.offset = 0

    def read(self, n: int, what: str) -> bytes:
        chunks = []
        remaining = n
        while remaining and self._current is not None:
            chunk = self._current.read(remaining)
            if not chunk:
                self._current.close()
                self._current = next(self._files, None)
                continue
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) != n:
            raise ModelSourceError(
                f"model.bin is truncated while reading {what}: expected {self.offset + n} bytes, "
                f"the file{'s' if len(self.paths) > 1 else ''} hold{'' if len(self.paths) > 1 else 's'} {self.total}",
                "re-download or re-convert the model (for split models, check every part is present)",
            )
        self.offset += n
        return data

    def unpack(self, fmt: str, what: str):
        return struct.unpack("<" + fmt, self.read(struct.calcsize("<" + fmt), what))[0]

    def string(self, what: str) -> str:
        length = self.unpack("H", what)
        return self.read(length, what)[:-1].decode("utf-8")

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        for f in self._files:
            f.close()


def read_model_bin(paths: list[Path]) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 model.bin (aliases resolved)."""
    reader = _PartsReader(paths)
    try:
        version = reader.unpack("I", "the header")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ModelSourceError(
                f"unsupported CTranslate2 binary version {version} in {paths[0]}",
                f"convert the model with a CTranslate2 release that writes version {SUPPORTED_BINARY_VERSIONS[-1]}",
            )
        spec = reader.string("the header")
        if spec != "WhisperSpec":
            raise ModelSourceError(f"{paths[0]} holds a {spec}, not a Whisper model", "pass a Whisper model")
        reader.unpack("I", "the header")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(reader.unpack("I", "the header")):
            name = reader.string("a variable name")
            rank = reader.unpack("B", name)
            shape = tuple(reader.unpack("I", name) for _ in range(rank))
            dtype_id = reader.unpack("B", name)
            nbytes = reader.unpack("I", name)
            raw = reader.read(nbytes, f"variable {name}")
            variables[name] = _decode(raw, dtype_id, shape, name)
        for _ in range(reader.unpack("I", "the aliases")):
            alias = reader.string("an alias")
            variables[alias] = variables[reader.string("an alias")]
    finally:
        reader.close()
    return variables


def _decode(raw: bytes, dtype_id: int, shape: tuple[int, ...], name: str) -> np.ndarray:
    if dtype_id == _BF16:
        bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32).reshape(shape)
    if dtype_id not in _DTYPES:
        raise ModelSourceError(f"variable {name} has unknown dtype id {dtype_id}", "re-convert the model")
    return np.frombuffer(raw, dtype=_DTYPES[dtype_id]).reshape(shape)


def _scalar(variables: dict[str, np.ndarray], name: str) -> int:
    return int(variables[name].reshape(-1)[0])


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    layers = {m.group(1) for name in variables if (m := re.match(rf"{stack}/layer_(\d+)/", name))}
    return len(layers)


def whisper_dims(variables: dict[str, np.ndarray]) -> dict[str, int]:
    """Model dimensions read off the variable shapes."""
    if any(name.endswith("weight_scale") for name in variables):
        raise ModelSourceError(
            "this CTranslate2 model is quantized (int8/int16 weights)",
            "convert it with ct2-transformers-converter --quantization float16 (or float32) and load that",
        )
    d_model, n_mels, _ = variables["encoder/conv1/weight"].shape
    vocab, _ = variables["decoder/embeddings/weight"].shape
    return {
        "d_model": int(d_model),
        "num_mel_bins": int(n_mels),
        "vocab_size": int(vocab),
        "encoder_layers": _count_layers(variables, "encoder"),
        "decoder_layers": _count_layers(variables, "decoder"),
        "encoder_attention_heads": _scalar(variables, "encoder/num_heads"),
        "decoder_attention_heads": _scalar(variables, "decoder/num_heads"),
        "encoder_ffn_dim": int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(variables["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(variables["decoder/position_encodings/encodings"].shape[0]),
    }


def to_hf_state_dict(variables: dict[str, np.ndarray], dims: dict[str, int]) -> dict[str, np.ndarray]:
    """Rename and split CTranslate2 variables into HF ``WhisperForConditionalGeneration`` keys (float32)."""
    d = dims["d_model"]
    out: dict[str, np.ndarray] = {}

    def put(key: str, value: np.ndarray) -> None:
        out[key] = np.array(value, dtype=np.float32, order="C")  # a writable copy

    def linear(src: str, dst: str, bias: bool = True) -> None:
        put(f"{dst}.weight", variables[f"{src}/weight"])
        if bias:
            put(f"{dst}.bias", variables[f"{src}/bias"])

    def norm(src: str, dst: str) -> None:
        put(f"{dst}.weight", variables[f"{src}/gamma"])
        put(f"{dst}.bias", variables[f"{src}/beta"])

    def split_linear(src: str, dsts: list[str | None]) -> None:
        """Fused projections: rows [i*d:(i+1)*d] go to dsts[i]; k has no bias."""
        weight, bias = variables[f"{src}/weight"], variables[f"{src}/bias"]
        for i, dst in enumerate(dsts):
            put(f"{dst}.weight", weight[i * d : (i + 1) * d])
            if not dst.endswith("k_proj"):
                put(f"{dst}.bias", bias[i * d : (i + 1) * d])

    for stack in ("encoder", "decoder"):
        hf = f"model.{stack}"
        norm(f"{stack}/layer_norm", f"{hf}.layer_norm")
        put(f"{hf}.embed_positions.weight", variables[f"{stack}/position_encodings/encodings"])
        for i in range(dims[f"{stack}_layers"]):
            src, dst = f"{stack}/layer_{i}", f"{hf}.layers.{i}"
            split_linear(f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}" for p in ("q_proj", "k_proj", "v_proj")])
            linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
            norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
            if stack == "decoder":
                linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
                split_linear(f"{src}/attention/linear_1", [f"{dst}.encoder_attn.k_proj", f"{dst}.encoder_attn.v_proj"])
                linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
                norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    put("model.decoder.embed_tokens.weight", variables["decoder/embeddings/weight"])
    return out


def model_bin_parts(directory: Path) -> list[Path]:
    """``model.bin``, or ``model.bin.part1, .part2, ...`` in order."""
    single = directory / "model.bin"
    if single.is_file():
        return [single]
    parts = sorted(directory.glob("model.bin.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1] or 0))
    return parts
