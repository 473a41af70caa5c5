"""Stand-in models for scale and speed work: random weights with real Whisper
shapes, and low-rank versions of them with a given or a published-like rank
profile.

Larger Whisper weights are not available offline (no model hub is reachable), so
large-v3 speed figures use random weights with large-v3 shapes and a rank
profile matched to LiteASR's published encoder size: the layers recovered
from the published config are kept as published, the rest are scaled
(:func:`standin_rank_profile`). Figures from it must be labelled stand-in.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from liteasr_export.model.compression.report import encoder_cost, pays_off
from liteasr_export.core.errors import RankError
from liteasr_export.model.lowrank import (
    ATTENTION,
    COMPRESSIBLE,
    LowRankLinear,
    encoder_layers,
    get_linear,
    matrix_shape,
    set_linear,
    validate_low_rank_config,
)

#: published rank profiles (``low_rank_config_prefix`` of LiteASR checkpoints)
#: (copied from the project's shared data: partial, see profiles/README.md)
RANKS_DIR = Path(os.environ.get("LITEASR_RANKS_DIR", Path(__file__).resolve().parent / "profiles"))
#: LiteASR's published encoder size of lite-whisper-large-v3 (its README)
LITE_WHISPER_LARGE_V3_ENCODER_PARAMS = 377_000_000
RANK_STEP = 16


def large_v3_config(**overrides):
    """``WhisperConfig`` with whisper large-v3 shapes."""
    from transformers import WhisperConfig

    dims = dict(
        d_model=1280, encoder_layers=32, decoder_layers=32, encoder_attention_heads=20, decoder_attention_heads=20,
        encoder_ffn_dim=5120, decoder_ffn_dim=5120, num_mel_bins=128, vocab_size=51866, max_source_positions=1500,
        max_target_positions=448, pad_token_id=50256, bos_token_id=50257, eos_token_id=50257,
        decoder_start_token_id=50258,
    )
    dims.update(overrides)
    return WhisperConfig(**dims)


def random_whisper(config, seed: int = 0):
    """A float32, eval-mode ``WhisperForConditionalGeneration`` with random weights."""
    from transformers import WhisperForConditionalGeneration

    torch.manual_seed(seed)
    return WhisperForConditionalGeneration(config).eval()


def encoder_parameters(config, low_rank_config: Sequence[Mapping[str, int]] | None = None) -> int:
    """Encoder parameter count for a dense model or a ``low_rank_config``,
    without building the model (the compression report's own count)."""
    return encoder_cost(config, low_rank_config, "params")


def saves_parameters(config, name: str, rank: int) -> bool:
    """A factorization is kept only when it saves parameters: ``k (d_in + d_out) < d_in d_out``."""
    return pays_off(*matrix_shape(config, name), rank)


def load_published_profile(name: str = "lite-whisper-large-v3") -> dict:
    path = RANKS_DIR / f"{name}.json"
    if not path.is_file():
        raise RankError(f"published rank profile {path} not found", "set LITEASR_RANKS_DIR to the liteasr-ranks folder")
    return json.loads(path.read_text())


def standin_rank_profile(
    config, published: dict, target_params: int, keep_published: bool = True
) -> tuple[list[dict[str, int]], dict]:
    """A full ``low_rank_config`` for ``config``: the published layers (and the
    published keys of a partially recovered layer) as published; every other
    matrix gets the mean published rank of its kind times one common factor,
    rounded to a multiple of 16 (dense where that would not save parameters),
    the factor chosen so the encoder size comes closest to ``target_params``.
    A kind never published borrows its sibling's mean (fc2 from fc1, ...).
    ``keep_published=False`` (a profile of another model size): only the
    published mean ranks are used, every layer is scaled.

    Returns the profile and a description (factor, sizes, which layers are published)."""
    known: list[dict[str, int]] = [dict(e) for e in published["low_rank_config_prefix"]]
    partial = published.get("truncated_next_layer_partial") or {}
    if partial:
        known.append(dict(partial["keys_seen_before_cut"]))
    prefix = [dict(e) for e in published["low_rank_config_prefix"]] if keep_published else []
    partial = partial if keep_published else {}
    if len(prefix) + bool(partial) > config.encoder_layers:
        raise RankError("the published profile has more layers than the model", "use a matching config")
    means = {}
    for name in COMPRESSIBLE:
        seen = [entry[name] for entry in known if name in entry]
        if seen:
            means[name] = sum(seen) / len(seen)
    siblings = {"fc1": ("fc2",), "fc2": ("fc1",), **{n: tuple(sorted(ATTENTION - {n})) for n in ATTENTION}}
    base = {}
    for name in COMPRESSIBLE:
        borrowed = [means[s] for s in siblings[name] if s in means]
        if name not in means and not borrowed:
            raise RankError(f"no published rank for {name} or its siblings", "use a fuller rank profile")
        base[name] = means.get(name, sum(borrowed) / max(len(borrowed), 1))

    def profile(factor: float) -> list[dict[str, int]]:
        layers = []
        for index in range(config.encoder_layers):
            entry = dict(prefix[index]) if index < len(prefix) else {}
            if index == len(prefix) and partial:
                entry = dict(partial["keys_seen_before_cut"])
            if index >= len(prefix):
                for name in COMPRESSIBLE:
                    if name in entry:
                        continue
                    rank = max(RANK_STEP, RANK_STEP * round(base[name] * factor / RANK_STEP))
                    if saves_parameters(config, name, rank):
                        entry[name] = rank
            layers.append({n: entry[n] for n in COMPRESSIBLE if n in entry})
        return layers

    low, high = 0.0, 64.0
    for _ in range(60):  # parameter count is non-decreasing in the factor: bisect
        mid = (low + high) / 2
        if encoder_parameters(config, profile(mid)) < target_params:
            low = mid
        else:
            high = mid
    candidates = [profile(low), profile(high)]
    best = min(candidates, key=lambda p: abs(encoder_parameters(config, p) - target_params))
    factor = low if best is candidates[0] else high
    info = {
        "label": "stand-in rank profile (published layers kept, the rest scaled to the target encoder size)"
        if keep_published
        else "stand-in rank profile (published mean ranks scaled to the target encoder size)",
        "source": published.get("source"),
        "published_layers": list(range(len(prefix))),
        "partially_published_layer": partial.get("layer") if partial else None,
        "scale_factor": round(factor, 4),
        "base_ranks": {k: round(v, 1) for k, v in base.items()},
        "target_encoder_params": target_params,
        "encoder_params": encoder_parameters(config, best),
        "dense_encoder_params": encoder_parameters(config),
    }
    return best, info


def large_v3_standin_profile(config=None) -> tuple[list[dict[str, int]], dict]:
    """The stand-in for lite-whisper-large-v3 (377M-parameter encoder)."""
    return standin_rank_profile(config or large_v3_config(), load_published_profile("lite-whisper-large-v3"),
                                LITE_WHISPER_LARGE_V3_ENCODER_PARAMS)


@torch.no_grad()
def apply_low_rank(model, low_rank_config: Sequence[Mapping[str, int]], method: str = "svd", seed: int = 0):
    """Replace encoder linears by :class:`LowRankLinear` of the given ranks, in place.

    ``method="svd"``: the truncated SVD of each dense weight (keeps a trained
    model usable; cheap for small models). ``method="random"``: random factors
    with the dense output scale (fast at any size; for speed work only)."""
    config = model.config
    ranks = validate_low_rank_config(low_rank_config, config)
    generator = torch.Generator().manual_seed(seed)
    for index, layer in enumerate(encoder_layers(model)):
        for name, rank in ranks[index].items():
            dense = get_linear(layer, name)
            weight = dense.weight.detach().T.double()  # (in, out), row-vector convention
            if method == "svd":
                u, s, vh = torch.linalg.svd(weight, full_matrices=False)
                w1, w2 = u[:, :rank] * s[:rank], vh[:rank]
            elif method == "random":
                d_in, d_out = weight.shape
                w1 = torch.randn(d_in, rank, generator=generator, dtype=torch.float64) / math.sqrt(d_in)
                w2 = torch.randn(rank, d_out, generator=generator, dtype=torch.float64) * (
                    float(weight.std()) * math.sqrt(d_in / rank)
                )
            else:
                raise ValueError(f"unknown method {method!r}: use svd or random")
            bias = dense.bias.detach() if dense.bias is not None else torch.zeros(weight.shape[1])
            set_linear(layer, name, LowRankLinear.from_factors(w1.float(), w2.float(), bias.float()))
    config.low_rank_config = ranks
    return model
