"""Greedy decoding shared by every backend (numpy only).

A backend supplies a :class:`DecoderStep`: it holds its own KV cache and maps
the newest tokens to next-token logits. The loop, the suppression rules and
the stopping rule live here once, so PyTorch, ONNX Runtime and TensorRT
decode identically.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np

#: openai-whisper's sample_len: at most this many new tokens per 30 s window
DEFAULT_MAX_NEW_TOKENS = 224


@dataclass(frozen=True)
class DecodingOptions:
    """Everything the loop needs, as plain data (also written to manifest.json)."""

    prompt: list[int]
    eot: int
    suppress: list[int] = field(default_factory=list)
    suppress_begin: list[int] = field(default_factory=list)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "DecodingOptions":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def build_options(
    tokenizer: "WhisperTokenizer",  # noqa: F821  (only the attributes are used)
    vocab_size: int,
    suppress_ids: list[int],
    suppress_begin_ids: list[int],
    language: str | None = "en",
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> DecodingOptions:
    """Options for transcription without timestamps: every special token after
    <|endoftext|> (task, language, timestamp tokens) is suppressed, plus the
    model's own non-speech suppress list."""
    specials = range(tokenizer.eot + 1, vocab_size)
    suppress = sorted(set(int(i) for i in suppress_ids if 0 <= i < vocab_size) | set(specials))
    return DecodingOptions(
        prompt=tokenizer.prompt(language),
        eot=tokenizer.eot,
        suppress=suppress,
        suppress_begin=sorted(set(int(i) for i in suppress_begin_ids if 0 <= i < vocab_size)),
        max_new_tokens=max_new_tokens,
    )


class DecoderStep(Protocol):
    """One backend's decoder for one batch of encoded windows."""

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        """Feed ``tokens`` (B, T) int64 after everything fed before; return the
        logits of the last position, (B, vocab) float."""
        ...


def greedy_decode(step: DecoderStep, batch_size: int, options: DecodingOptions) -> list[list[int]]:
    """Greedy decoding of a batch; returns the new tokens of each sequence
    without the prompt and without <|endoftext|>."""
    tokens = np.tile(np.asarray(options.prompt, dtype=np.int64), (batch_size, 1))
    suppress = np.asarray(options.suppress, dtype=np.int64)
    begin = np.asarray(options.suppress_begin, dtype=np.int64)
    finished = np.zeros(batch_size, dtype=bool)
    outputs: list[list[int]] = [[] for _ in range(batch_size)]
    for index in range(options.max_new_tokens):
        logits = np.array(step(tokens), dtype=np.float32, copy=True)
        if suppress.size:
            logits[:, suppress] = -np.inf
        if index == 0 and begin.size:
            logits[:, begin] = -np.inf
        next_ids = logits.argmax(axis=-1)
        next_ids[finished] = options.eot
        for b in np.flatnonzero(~finished):
            if next_ids[b] == options.eot:
                finished[b] = True
            else:
                outputs[b].append(int(next_ids[b]))
        if finished.all():
            break
        tokens = next_ids[:, None].astype(np.int64)
    return outputs
