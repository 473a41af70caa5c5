"""Streaming activation statistics of the Whisper encoder's compressible linears.

Full 30 s windows (padding frames included: the decoder attends to them, and
calibrating on speech frames only measured far worse) run through
the dense encoder while forward hooks accumulate, in float64, the frame
count, the sum and the sum of outer products of the activations. Memory is
``4 d^2`` doubles per layer whatever the number of samples.

Where the statistics are taken (one site per row; all are ``d``-wide):

===========  ==============================  ===========================
site         tensor                          gives the output moments of
===========  ==============================  ===========================
``attn_in``  input of ``self_attn.q_proj``   q_proj, k_proj, v_proj
``out_proj`` output of ``self_attn.out_proj``  out_proj
``fc1_in``   input of ``fc1``                fc1
``fc2``      output of ``fc2``               fc2
===========  ==============================  ===========================

For ``y = x W + b`` the output moments follow exactly from the input ones,
``mean(y) = mean(x) W + b`` and ``cov(y) = W^T cov(x) W``, so one ``d x d``
accumulator serves q, k and v, and fc1 needs ``d^2`` instead of ``(4d)^2``:
four times less memory and about five times less calibration arithmetic than
output accumulators.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from torch import nn
from tqdm.auto import tqdm

from liteasr_export.core.errors import CalibrationError, DatasetError
from liteasr_export.core.frontend import log_mel
from liteasr_export.model.lowrank import SITE_OF, SITES, encoder_layers, get_linear, is_compressed

from .windows import utterance_windows


FORMAT_VERSION = 1


@dataclass
class Moments:
    """Running count, sum and sum of outer products of row vectors (float64)."""

    count: int
    sum: torch.Tensor
    outer: torch.Tensor

    @classmethod
    def zeros(cls, dim: int, device: torch.device | str = "cpu") -> Moments:
        return cls(0, torch.zeros(dim, dtype=torch.float64, device=device),
                   torch.zeros(dim, dim, dtype=torch.float64, device=device))

    def update(self, x: torch.Tensor) -> None:
        rows = x.detach().reshape(-1, x.shape[-1]).to(torch.float64)
        self.count += rows.shape[0]
        self.sum += rows.sum(dim=0)
        self.outer.addmm_(rows.T, rows)

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.count

    @property
    def covariance(self) -> torch.Tensor:
        """Population covariance ``E[x x^T] - mean mean^T``, symmetrised."""
        mean = self.mean
        cov = self.outer / self.count - torch.outer(mean, mean)
        return (cov + cov.T) / 2

    def to(self, device: torch.device | str) -> Moments:
        return Moments(self.count, self.sum.to(device), self.outer.to(device))

    def add(self, other: Moments) -> None:
        """Add the moments of other rows (another shard of the same pass)."""
        self.count += other.count
        self.sum += other.sum.to(self.sum.device)
        self.outer += other.outer.to(self.outer.device)


def model_info(model: nn.Module) -> dict[str, Any]:
    """The shapes statistics depend on, plus a fingerprint of the encoder weights."""
    config = model.config
    return {
        "d_model": int(config.d_model),
        "encoder_ffn_dim": int(config.encoder_ffn_dim),
        "encoder_layers": int(config.encoder_layers),
        "num_mel_bins": int(config.num_mel_bins),
        "encoder_sha256": encoder_fingerprint(model),
    }


def parameter_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's float32 parameters, in name order."""
    digest = hashlib.sha256()
    for name, param in sorted(module.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def encoder_fingerprint(model: nn.Module) -> str:
    """The encoder's :func:`parameter_fingerprint`: tells apart two models of
    equal shapes (tiny and tiny.en), whose statistics must not be mixed."""
    return parameter_fingerprint(getattr(model, "model", model).encoder)


@dataclass
class ActivationStats:
    """Per encoder layer, the :class:`Moments` of each site in :data:`SITES`."""

    layers: list[dict[str, Moments]]
    info: dict[str, Any]
    n_windows: int = 0
    n_utterances: int = 0
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    # -- the output moments the compressor needs ---------------------------------
    def output_moments(
        self, layer: int, name: str, linear: nn.Linear
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, covariance)`` of the OUTPUT of encoder matrix ``name`` (float64, CPU).

        For input sites they are mapped through the dense ``linear``:
        ``mean(x) W + b`` and ``W^T cov(x) W``.
        """
        moments = self.layers[layer][SITE_OF[name]]
        mean, cov = moments.mean.cpu(), moments.covariance.cpu()
        if SITES[SITE_OF[name]][1] == "output":
            return mean, cov
        weight = linear.weight.detach().to("cpu", torch.float64).T  # (d_in, d_out)
        bias = linear.bias.detach().to("cpu", torch.float64) if linear.bias is not None else 0.0
        return mean @ weight + bias, weight.T @ cov @ weight

    def input_site(self, name: str) -> bool:
        return SITES[SITE_OF[name]][1] == "input"

    # -- checks -------------------------------------------------------------------
    def check_matches(self, model: nn.Module) -> None:
        """Raise :class:`CalibrationError` unless these statistics were taken on ``model``."""
        if self.n_windows <= 0 or not self.layers:
            raise CalibrationError("the calibration statistics are empty", "calibrate on at least one utterance")
        mine = model_info(model) if not is_compressed(model) else None
        if mine is None:
            raise CalibrationError(
                "the model's encoder is already low-rank",
                "compress the dense model the statistics were taken on",
            )
        for key in ("d_model", "encoder_ffn_dim", "encoder_layers", "num_mel_bins"):
            if self.info.get(key) != mine[key]:
                raise CalibrationError(
                    f"the statistics are from another model: {key} is {self.info.get(key)} there "
                    f"and {mine[key]} in this model",
                    "recalibrate this model (statistics taken on it)",
                )
        if len(self.layers) != mine["encoder_layers"] or any(
            m.sum.shape[0] != mine["d_model"] for layer in self.layers for m in layer.values()
        ):
            raise CalibrationError(
                "the statistics' tensor shapes do not match the model's encoder",
                "recalibrate this model (statistics taken on it)",
            )
        if self.info.get("encoder_sha256") != mine["encoder_sha256"]:
            raise CalibrationError(
                "the statistics are from another model of the same shape (encoder weights differ)",
                "recalibrate this model (statistics taken on it)",
            )

    # -- persistence --------------------------------------------------------------
    def _tensors(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for index, layer in enumerate(self.layers):
            for site, moments in layer.items():
                out[f"layers.{index}.{site}.count"] = np.array([moments.count], dtype=np.int64)
                out[f"layers.{index}.{site}.sum"] = moments.sum.cpu().numpy()
                out[f"layers.{index}.{site}.outer"] = moments.outer.cpu().numpy()
        return out

    def _meta(self) -> str:
        return json.dumps(
            {
                "format": "liteasr-export activation statistics",
                "version": FORMAT_VERSION,
                "sites": {site: list(where) for site, where in SITES.items()},
                "info": self.info,
                "n_windows": self.n_windows,
                "n_utterances": self.n_utterances,
                "source": self.source,
                "extra": self.extra,
            },
            sort_keys=True,
        )

    def save(self, path: str | Path) -> Path:
        """Write ``.safetensors`` or ``.npz`` (chosen by suffix); returns the path."""
        path = Path(path)
        if path.suffix not in (".safetensors", ".npz"):
            raise CalibrationError(
                f"unsupported statistics file type {path.suffix!r}", "name the file *.safetensors or *.npz"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = self._tensors()
        tmp = path.with_name(path.name + ".tmp")
        if path.suffix == ".safetensors":
            save_file(tensors, str(tmp), metadata={"liteasr_stats": self._meta()})
        else:
            with open(tmp, "wb") as handle:
                np.savez(handle, __meta__=np.array(self._meta()), **tensors)
        tmp.replace(path)  # never leave a half-written file under the real name
        return path

    @classmethod
    def load(cls, path: str | Path) -> ActivationStats:
        path = Path(path)
        if not path.is_file():
            raise CalibrationError(f"statistics file not found: {path}", "check the path, or recalibrate")
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="np") as handle:
                    meta_text = (handle.metadata() or {}).get("liteasr_stats")
                    tensors = {key: handle.get_tensor(key) for key in handle.keys()}
            elif path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as data:
                    tensors = {key: data[key] for key in data.files}
                meta_text = str(tensors.pop("__meta__")) if "__meta__" in tensors else None
            else:
                raise CalibrationError(
                    f"unsupported statistics file type {path.suffix!r}", "pass a *.safetensors or *.npz file"
                )
        except CalibrationError:
            raise
        except Exception as exc:
            raise CalibrationError(f"cannot read statistics file {path} ({exc})", "recalibrate to rewrite it") from None
        if meta_text is None:
            raise CalibrationError(f"{path} holds no liteasr-export statistics", "pass a file written by ActivationStats.save")
        meta = json.loads(meta_text)
        if meta.get("version") != FORMAT_VERSION:
            raise CalibrationError(
                f"statistics format version {meta.get('version')} is not {FORMAT_VERSION}", "recalibrate"
            )
        layers: list[dict[str, Moments]] = []
        try:
            for index in range(int(meta["info"]["encoder_layers"])):
                layers.append({
                    site: Moments(
                        int(tensors[f"layers.{index}.{site}.count"][0]),
                        torch.from_numpy(np.array(tensors[f"layers.{index}.{site}.sum"], dtype=np.float64)),
                        torch.from_numpy(np.array(tensors[f"layers.{index}.{site}.outer"], dtype=np.float64)),
                    )
                    for site in SITES
                })
        except KeyError as exc:
            raise CalibrationError(f"statistics file {path} lacks tensor {exc}", "recalibrate to rewrite it") from None
        return cls(layers, meta["info"], meta["n_windows"], meta["n_utterances"], meta["source"], meta.get("extra", {}))


# -- collection -------------------------------------------------------------------
class StatisticsCollector:
    """Context manager: forward hooks on every encoder layer's sites.

    >>> with StatisticsCollector(model) as collector:
    ...     model.model.encoder(features)
    >>> collector.layers
    """

    def __init__(self, model: nn.Module, device: torch.device | str | None = None) -> None:
        if is_compressed(model):
            raise CalibrationError(
                "calibration needs the dense encoder, this one is already low-rank",
                "load the original (uncompressed) model",
            )
        device = device or next(model.parameters()).device
        self.model = model
        self.layers = [
            {site: Moments.zeros(model.config.d_model, device) for site in SITES} for _ in encoder_layers(model)
        ]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> StatisticsCollector:
        for layer, moments in zip(encoder_layers(self.model), self.layers):
            for site, (name, side) in SITES.items():
                self._handles.append(get_linear(layer, name).register_forward_hook(self._hook(moments[site], side)))
        return self

    @staticmethod
    def _hook(moments: Moments, side: str) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            moments.update(inputs[0] if side == "input" else output)

        return hook

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def feature_batches(windows: Iterable[np.ndarray], n_mels: int, batch_size: int = 8) -> Iterator[np.ndarray]:
    """Log-mel batches ``(B, n_mels, 3000)`` float32 of audio windows (<= 30 s each)."""
    batch: list[np.ndarray] = []
    for window in windows:
        batch.append(log_mel(window, n_mels))
        if len(batch) == batch_size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


@torch.inference_mode()
def accumulate(
    model: nn.Module, batches: Iterable[np.ndarray], device: torch.device | str | None = None
) -> tuple[list[dict[str, Moments]], int]:
    """Run feature batches through the encoder under a :class:`StatisticsCollector`.

    Returns the per-layer moments (on CPU) and the number of windows seen.
    """
    encoder = getattr(model, "model", model).encoder
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    windows = 0
    with StatisticsCollector(model, device) as collector:
        for batch in batches:
            encoder(torch.from_numpy(batch).to(device=device, dtype=dtype))
            windows += batch.shape[0]
    return [{site: m.to("cpu") for site, m in layer.items()} for layer in collector.layers], windows


def collect_statistics(
    model: nn.Module,
    utterances: Iterable[Any],
    batch_size: int = 8,
    device: str | torch.device | None = None,
    max_samples: int | None = None,
    progress: bool = True,
    all_windows: bool = False,
    source: str = "",
) -> ActivationStats:
    """Calibrate on utterances (``Utterance`` objects or audio paths): the first
    window of each (``all_windows``: every window), unreadable files skipped.

    Raises :class:`DatasetError` when no utterance holds usable audio.
    """
    if max_samples is not None and max_samples < 1:
        raise DatasetError(f"`max_samples` must be at least 1, got {max_samples}", "pass a positive number",
                           field="max_samples")
    utterances = list(utterances)
    total = len(utterances) if max_samples is None else min(len(utterances), max_samples)
    if total == 0:
        raise DatasetError("the calibration set is empty", "pass utterances with audio files",
                           field="utterances")
    counts: dict[str, int] = {}
    with tqdm(total=total, desc="calibrating", unit="utt", disable=not progress) as bar:
        windows = utterance_windows(utterances, max_samples, all_windows, counts, lambda: bar.update(1))
        stats = collect_window_statistics(model, windows, batch_size, device, source=source)
    if stats.n_windows == 0:
        raise DatasetError(
            f"the calibration set has no usable audio ({counts.get('skipped', 0)} files could not be read)",
            "pass a set of readable wav/flac/ogg/mp3 files", field="utterances",
        )
    stats.n_utterances = counts["used"]
    stats.extra.update(skipped=counts["skipped"], all_windows=all_windows)
    return stats


def collect_window_statistics(
    model: nn.Module,
    windows: Iterable[np.ndarray],
    batch_size: int = 8,
    device: str | torch.device | None = None,
    source: str = "",
    extra: dict[str, Any] | None = None,
) -> ActivationStats:
    """Stream audio windows (16 kHz, <= 30 s each) through the dense encoder
    and return its :class:`ActivationStats` (``n_windows`` may be 0: the caller
    decides whether that is an error).

    ``device`` (default: where the model is) may be ``"cuda"``; the model is
    moved there for the run and back afterwards.
    """
    if batch_size < 1:
        raise CalibrationError(f"batch size must be positive, got {batch_size}", "pass a batch size of 1 or more")
    home = next(model.parameters()).device
    target = torch.device(device) if device is not None else home
    was_training = model.training
    model.eval().to(target)
    try:
        layers, n_windows = accumulate(model, feature_batches(windows, model.config.num_mel_bins, batch_size), target)
    finally:
        model.to(home).train(was_training)
    return ActivationStats(layers, model_info(model), n_windows=n_windows, source=source, extra=dict(extra or {}))
