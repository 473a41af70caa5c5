"""The low-rank linear module and the helpers that place it in a Whisper encoder.

A compressed model is a plain transformers ``WhisperForConditionalGeneration``
whose encoder linears may be :class:`LowRankLinear`; ``config.low_rank_config``
(one dict per encoder layer, LiteASR's format) records the ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from liteasr_export.core.errors import RankError

#: the encoder matrices LiteASR factorizes, in LiteASR's ``low_rank_config`` names
COMPRESSIBLE: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
ATTENTION: frozenset[str] = frozenset({"q_proj", "k_proj", "v_proj", "out_proj"})
#: calibration statistics are kept per activation site (q, k and v share one
#: input); site -> (matrix whose module is hooked, "input" or "output")
SITES: dict[str, tuple[str, str]] = {
    "attn_in": ("q_proj", "input"),
    "out_proj": ("out_proj", "output"),
    "fc1_in": ("fc1", "input"),
    "fc2": ("fc2", "output"),
}
#: matrix -> site its output moments come from
SITE_OF: dict[str, str] = {
    "q_proj": "attn_in",
    "k_proj": "attn_in",
    "v_proj": "attn_in",
    "out_proj": "out_proj",
    "fc1": "fc1_in",
    "fc2": "fc2",
}


class LowRankLinear(nn.Module):
    """``y = (x @ weight1) @ weight2 + bias``: two thin matmuls instead of one.

    ``weight1`` is ``(in_features, rank)`` and ``weight2`` ``(rank, out_features)``
    (row-vector convention, as lite-whisper checkpoints store them).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not 0 < rank <= min(in_features, out_features):
            raise RankError(
                f"rank {rank} is outside 1..{min(in_features, out_features)} for a "
                f"{in_features}x{out_features} matrix",
                "use a rank between 1 and min(d_in, d_out)",
            )
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        factory = {"device": device, "dtype": dtype}
        self.weight1 = nn.Parameter(torch.empty(in_features, rank, **factory))
        self.weight2 = nn.Parameter(torch.empty(rank, out_features, **factory))
        self.bias = nn.Parameter(torch.zeros(out_features, **factory)) if bias else None

    @classmethod
    def from_factors(
        cls, weight1: torch.Tensor, weight2: torch.Tensor, bias: torch.Tensor | None
    ) -> LowRankLinear:
        """Build from given factors (copied, keeping their dtype and device)."""
        in_features, rank = weight1.shape
        if weight2.shape[0] != rank:
            raise RankError(
                f"factor shapes {tuple(weight1.shape)} and {tuple(weight2.shape)} do not chain",
                "weight1 must be (in, rank) and weight2 (rank, out)",
            )
        module = cls(
            in_features, weight2.shape[1], rank, bias=bias is not None, device=weight1.device, dtype=weight1.dtype
        )
        with torch.no_grad():
            module.weight1.copy_(weight1)
            module.weight2.copy_(weight2)
            if bias is not None:
                module.bias.copy_(bias)
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(torch.matmul(x, self.weight1), self.weight2)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}, bias={self.bias is not None}"


def _parent_and_attr(layer: nn.Module, name: str) -> tuple[nn.Module, str]:
    if name in ATTENTION:
        return layer.self_attn, name
    if name in ("fc1", "fc2"):
        return layer, name
    raise RankError(f"unknown encoder matrix {name!r}", f"use one of {', '.join(COMPRESSIBLE)}")


def get_linear(layer: nn.Module, name: str) -> nn.Module:
    """The module for ``name`` (a ``COMPRESSIBLE`` name) in one encoder layer."""
    parent, attr = _parent_and_attr(layer, name)
    return getattr(parent, attr)


def set_linear(layer: nn.Module, name: str, module: nn.Module) -> None:
    parent, attr = _parent_and_attr(layer, name)
    setattr(parent, attr, module)


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The encoder layers of a ``WhisperForConditionalGeneration`` or ``WhisperModel``."""
    inner = getattr(model, "model", model)
    return inner.encoder.layers


def iter_encoder_linears(model: nn.Module) -> Iterator[tuple[int, str, nn.Module]]:
    """``(layer index, name, module)`` for every compressible encoder matrix."""
    for index, layer in enumerate(encoder_layers(model)):
        for name in COMPRESSIBLE:
            yield index, name, get_linear(layer, name)


def matrix_shape(config, name: str) -> tuple[int, int]:
    """``(d_in, d_out)`` of an encoder matrix for a ``WhisperConfig``."""
    d, ffn = config.d_model, config.encoder_ffn_dim
    return {"fc1": (d, ffn), "fc2": (ffn, d)}.get(name, (d, d))


def validate_low_rank_config(low_rank_config: Sequence[Mapping[str, int]], config) -> list[dict[str, int]]:
    """Check a LiteASR ``low_rank_config`` against a ``WhisperConfig``; return a clean copy.

    One dict per encoder layer; a missing name means dense. Raises
    :class:`RankError` for a wrong layer count, an unknown name or a rank
    outside ``1..min(d_in, d_out)``.
    """
    if isinstance(low_rank_config, Mapping) or not isinstance(low_rank_config, Sequence):
        raise RankError(
            "low_rank_config must be a list with one {matrix: rank} dict per encoder layer",
            'write it as [{"q_proj": 64, "fc1": 256}, ...]',
        )
    n_layers = config.encoder_layers
    if len(low_rank_config) != n_layers:
        raise RankError(
            f"low_rank_config has {len(low_rank_config)} layers, the model's encoder has {n_layers}",
            "give exactly one entry per encoder layer ({} for a dense layer)",
        )
    clean: list[dict[str, int]] = []
    for index, entry in enumerate(low_rank_config):
        if not isinstance(entry, Mapping):
            raise RankError(f"low_rank_config[{index}] is not a mapping", 'write {"q_proj": 64, ...}')
        ranks: dict[str, int] = {}
        for name, rank in entry.items():
            if name not in COMPRESSIBLE:
                raise RankError(
                    f"low_rank_config[{index}] names unknown matrix {name!r}",
                    f"use only {', '.join(COMPRESSIBLE)}",
                )
            d_in, d_out = matrix_shape(config, name)
            if isinstance(rank, bool) or not isinstance(rank, int) or not 0 < rank <= min(d_in, d_out):
                raise RankError(
                    f"layer {index} {name}: rank {rank!r} is outside 1..{min(d_in, d_out)} "
                    f"(the matrix is {d_in}x{d_out})",
                    "use an integer rank no larger than min(d_in, d_out), or drop the entry to keep it dense",
                )
            ranks[name] = rank
        clean.append({name: ranks[name] for name in COMPRESSIBLE if name in ranks})
    return clean


def install_low_rank_modules(model: nn.Module, low_rank_config: Sequence[Mapping[str, int]]) -> nn.Module:
    """Replace encoder linears by empty :class:`LowRankLinear` of the given ranks
    (in place, to be filled by a state dict) and record ``config.low_rank_config``."""
    config = model.config
    ranks = validate_low_rank_config(low_rank_config, config)
    for index, layer in enumerate(encoder_layers(model)):
        for name, rank in ranks[index].items():
            old = get_linear(layer, name)
            ref = next(old.parameters())
            d_in, d_out = matrix_shape(config, name)
            set_linear(layer, name, LowRankLinear(d_in, d_out, rank, bias=True, device=ref.device, dtype=ref.dtype))
    config.low_rank_config = ranks
    return model


def low_rank_config_of(model: nn.Module) -> list[dict[str, int]]:
    """The ranks actually installed in a model's encoder (dense matrices absent)."""
    layers = encoder_layers(model)
    config: list[dict[str, int]] = [{} for _ in layers]
    for index, name, module in iter_encoder_linears(model):
        if isinstance(module, LowRankLinear):
            config[index][name] = module.rank
    return config


def is_compressed(model: nn.Module) -> bool:
    return any(isinstance(m, LowRankLinear) for _, _, m in iter_encoder_linears(model))
