"""The PyTorch reference transcriber: greedy decoding with a KV cache.

Every later parity and WER figure is measured against this.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .decoding import greedy_decode
from .frontend import log_mel, split_windows
from .sources import LoadedModel


class TorchTranscriber:
    """Transcribe audio of any length with a (dense or low-rank) PyTorch model."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", batch_size: int = 8) -> None:
        import torch

        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.batch_size = batch_size
        self.n_mels = self.model.config.num_mel_bins

    def encode(self, features: np.ndarray):
        """Encoder hidden states for log-mel ``features`` (B, n_mels, 3000)."""
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
            return self.model.model.encoder(x).last_hidden_state

    def decoder_step(self, encoder_states) -> Callable[[np.ndarray], np.ndarray]:
        """A :class:`~liteasr_export.decoding.DecoderStep` over this batch's encoder states."""
        import torch
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        decoder, proj = self.model.model.decoder, self.model.proj_out

        def step(tokens: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                ids = torch.from_numpy(tokens).to(self.device)
                out = decoder(input_ids=ids, encoder_hidden_states=encoder_states,
                              cache=cache, use_cache=True)
                return proj(out.last_hidden_state[:, -1]).float().cpu().numpy()

        return step

    def transcribe_features(self, features: np.ndarray) -> list[list[int]]:
        """Greedy token ids (without prompt and <|endoftext|>) per window."""
        states = self.encode(features)
        return greedy_decode(self.decoder_step(states), features.shape[0], self.loaded.decoding)

    def transcribe(self, audio: np.ndarray) -> str:
        """Text of 16 kHz mono audio of any length, window by window."""
        windows = [log_mel(w, self.n_mels) for w in split_windows(audio)]
        tokens: list[int] = []
        for start in range(0, len(windows), self.batch_size):
            for ids in self.transcribe_features(np.stack(windows[start : start + self.batch_size])):
                tokens.extend(ids)
        return self.loaded.tokenizer.decode(tokens)
