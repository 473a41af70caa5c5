"""The PyTorch reference transcriber: the shared decoding over transformers'
decoder with a KV cache.

Every later parity and WER figure is measured against this.
"""

from __future__ import annotations

import numpy as np

from liteasr_export.core.decoding import RowOwners
from liteasr_export.model.sources import LoadedModel
from liteasr_export.core.windowed import TranscribeOptions, WindowedTranscriber


class TorchTranscriber(WindowedTranscriber):
    """Transcribe audio of any length with a (dense or low-rank) PyTorch model."""

    def __init__(self, loaded: LoadedModel, device: str = "cpu", batch_size: int = 8,
                 settings: TranscribeOptions | None = None) -> None:
        import torch  # the PyTorch backend only: importing this module stays torch-free

        self.loaded = loaded
        self.device = torch.device(device)
        self.model = loaded.model.to(self.device).eval()
        self.batch_size = batch_size
        self.n_mels = self.model.config.num_mel_bins
        self.tokenizer = loaded.tokenizer
        self.options = loaded.decoding
        self.vocab_size = self.model.config.vocab_size
        # a checkpoint tuned for trimmed contexts (--context-tune) says so in its config
        self.default_audio_context = getattr(self.model.config, "liteasr_audio_context", None) or "full"
        if settings is not None:
            self.configure(settings)

    def encode(self, features: np.ndarray):
        """Encoder hidden states for log-mel ``features`` (B, n_mels, 3000 or
        fewer mel frames: see :func:`encoder_hidden`)."""
        import torch  # the PyTorch backend only: importing this module stays torch-free

        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(self.device)
            return encoder_hidden(self.model.model.encoder, x)

    def _check_audio_context(self, frames: int) -> None:
        """Any audio context: :func:`encoder_hidden` takes any length up to 30 s."""

    @property
    def name(self) -> str:
        """``torch fp32`` (``torch fp64`` while the model runs in float64, as the parity reference)."""
        import torch  # the PyTorch backend only: importing this module stays torch-free

        dtype = next(self.model.parameters()).dtype
        return f"torch {dict([(torch.float64, 'fp64'), (torch.float16, 'fp16'), (torch.bfloat16, 'bf16')]).get(dtype, 'fp32')}"

    def encode_outputs(self, features: np.ndarray):
        """The hidden states (what :meth:`encode` returns) and encoder.onnx's
        outputs by name, as numpy (see :func:`encoder_outputs`)."""
        return encoder_outputs(self.model, features)

    def decoder_step(self, encoder_states) -> "TorchDecoderStep":
        """A :class:`~liteasr_export.core.decoding.DecoderStep` over this batch's encoder states."""
        return TorchDecoderStep(self.model, encoder_states, self.device)


class TorchDecoderStep:
    """The PyTorch decoder with transformers' KV cache: self-attention K/V
    grow per step, cross-attention K/V are computed at the first call."""

    def __init__(self, model, encoder_states, device) -> None:
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache  # transformers: PyTorch backend only

        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        self.decoder, self.proj = model.model.decoder, model.proj_out
        self.states = encoder_states
        self.device = device
        self.rows = RowOwners(encoder_states.shape[0])

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        import torch  # the PyTorch backend only: importing this module stays torch-free

        with torch.inference_mode():
            ids = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64)).to(self.device)
            out = self.decoder(input_ids=ids, encoder_hidden_states=self.states, cache=self.cache, use_cache=True)
            logits = self.proj(out.last_hidden_state[:, -1])
            # float32 for decoding; a float64 model (the parity reference) keeps its precision
            return (logits if logits.dtype == torch.float64 else logits.float()).cpu().numpy()

    def reorder(self, rows: np.ndarray) -> None:
        import torch  # the PyTorch backend only: importing this module stays torch-free

        index = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.device)
        self.cache.self_attention_cache.reorder_cache(index)
        gather = self.rows.reorder(rows)  # transformers' cache holds one copy per row
        if gather is not None:
            gather = torch.as_tensor(gather, device=self.device)
            self.cache.cross_attention_cache.reorder_cache(gather)
            self.states = self.states.index_select(0, gather)


def encoder_outputs(model, features: np.ndarray):
    """The hidden states (a tensor, for the decoder) of a transformers Whisper
    ``model`` for ``features``, and what encoder.onnx returns for them as
    numpy: the hidden states and every decoder layer's cross-attention K/V,
    computed in the model's own dtype (float64 for the parity reference).
    ``features`` may be shorter than 3000 frames (:func:`encoder_hidden`)."""
    import torch  # the PyTorch backend only: importing this module stays torch-free

    dtype = next(model.parameters()).dtype
    heads = model.config.decoder_attention_heads
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(features)).to(device=model.device, dtype=dtype)
        hidden = encoder_hidden(model.model.encoder, x)
        out = {"last_hidden_state": hidden.cpu().numpy()}
        batch, frames, _ = hidden.shape
        for i, layer in enumerate(model.model.decoder.layers):
            for kind, proj in (("key", layer.encoder_attn.k_proj), ("value", layer.encoder_attn.v_proj)):
                kv = proj(hidden).view(batch, frames, heads, -1).transpose(1, 2)
                out[f"cross_{kind}.{i}"] = kv.cpu().numpy()
    return hidden, out


def encoder_hidden(encoder, features: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
    """The last hidden state of a transformers ``WhisperEncoder`` for log-mel
    ``features`` (B, n_mels, T), T of 3000 mel frames (30 s) or fewer.

    transformers refuses any length but 3000, so a shorter (trimmed audio
    context) input runs the same steps here: the conv stem, the first
    ``T / 2`` rows of the positional table (what ``encoder.onnx`` slices),
    the layers and the final norm. A 30 s input goes through transformers'
    own forward, as it always did."""
    from torch.nn.functional import gelu

    full = encoder.config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
    if features.shape[-1] == full:
        return encoder(features).last_hidden_state
    if features.shape[-1] > full:
        raise ValueError(f"the encoder takes at most {full} mel frames, got {features.shape[-1]}")
    x = gelu(encoder.conv2(gelu(encoder.conv1(features)))).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[: x.shape[1]]
    for layer in encoder.layers:
        x = layer(x, None)
    return encoder.layer_norm(x)
