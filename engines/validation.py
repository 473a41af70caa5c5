"""Validation of exported artifacts against the PyTorch model: encoder and
decoder parity (through :mod:`engines.compare`) and WER per backend."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .compare import ParityReport, compare

#: decoder steps compared (the issue's bar: logits over a 20-step greedy decode)
PARITY_STEPS = 20


def torch_encoder_outputs(transcriber, features: np.ndarray) -> dict[str, np.ndarray]:
    """What encoder.onnx returns, computed by the PyTorch model."""
    import torch

    model = transcriber.model
    config = model.config
    heads = config.decoder_attention_heads
    with torch.inference_mode():
        hidden = transcriber.encode(features)
        out = {"last_hidden_state": hidden.cpu().numpy()}
        batch, frames, _ = hidden.shape
        for i, layer in enumerate(model.model.decoder.layers):
            for kind, proj in (("key", layer.encoder_attn.k_proj), ("value", layer.encoder_attn.v_proj)):
                kv = proj(hidden).view(batch, frames, heads, -1).transpose(1, 2)
                out[f"cross_{kind}.{i}"] = kv.cpu().numpy()
    return out


def encoder_parity(torch_transcriber, onnx_transcriber, features: np.ndarray, precision: str) -> ParityReport:
    reference = torch_encoder_outputs(torch_transcriber, features)
    session = onnx_transcriber.encoder
    names = [o.name for o in session.get_outputs()]
    dtype = np.float16 if "float16" in session.get_inputs()[0].type else np.float32
    actual = dict(zip(names, session.run(names, {"input_features": features.astype(dtype)})))
    return compare("encoder.onnx", precision, reference, actual)


def _step_logits(step: Callable[[np.ndarray], np.ndarray], prompt: list[int], tokens: np.ndarray) -> np.ndarray:
    """Logits after the prompt and after each forced token: (steps, batch, vocab)."""
    batch = tokens.shape[0]
    logits = [step(np.tile(np.asarray(prompt, dtype=np.int64), (batch, 1)))]
    for t in range(tokens.shape[1] - 1):
        logits.append(step(tokens[:, t : t + 1]))
    return np.stack([np.asarray(x, dtype=np.float32) for x in logits])


def decoder_parity(torch_transcriber, onnx_transcriber, features: np.ndarray, precision: str,
                   steps: int = PARITY_STEPS) -> ParityReport:
    """Logits of both decoders over the same forced tokens (PyTorch's greedy
    choices), each fed by its own encoder: the whole path end to end."""
    options = torch_transcriber.loaded.decoding
    ids = torch_transcriber.transcribe_features(features)
    tokens = np.full((len(ids), steps), options.eot, dtype=np.int64)
    for b, row in enumerate(ids):
        tokens[b, : min(len(row), steps)] = row[:steps]
    ref = _step_logits(torch_transcriber.decoder_step(torch_transcriber.encode(features)), options.prompt, tokens)
    act = _step_logits(onnx_transcriber.decoder_step(onnx_transcriber.encode(features)), options.prompt, tokens)
    return compare("decoder.onnx", precision, {"logits": ref}, {"logits": act})


def wer_by_backend(backends: dict[str, Callable[[np.ndarray], str]], utterances: Sequence,
                   progress: bool = True) -> dict[str, dict]:
    """WER (percent), counts and seconds of each backend on the same utterances."""
    from liteasr_export.evaluation import evaluate

    table = {}
    for name, transcribe in backends.items():
        result = evaluate(transcribe, utterances, progress=progress)
        table[name] = {"wer": round(result.wer, 3), "n": result.n, "errors": result.errors,
                       "words": result.words, "seconds": round(result.seconds, 2)}
    return table
