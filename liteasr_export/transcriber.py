"""The PyTorch reference transcriber: greedy decoding with a KV cache.

Every later parity and WER figure is measured against this.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .sources import LoadedModel
from .windowed import WindowedTranscriber


class TorchTranscriber(WindowedTranscriber):
    """Transcribe audio of any length with a (dense or low-rank) PyTorch model."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", batch_size: int = 8) -> None:
        import torch

        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.batch_size = batch_size
        self.n_mels = self.model.config.num_mel_bins
        self.tokenizer = loaded.tokenizer
        self.options = loaded.decoding

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
