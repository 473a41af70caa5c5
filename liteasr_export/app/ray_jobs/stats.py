"""Calibration statistics across a Ray cluster (``liteasr-export --ray``).

The windows of the calibration mix are cut into shards, each row of a Ray
Data dataset one shard; an actor pool, each actor holding the dense model,
maps a shard to its float64 moments (the local pass's own
:func:`~calibration.statistics.collect_window_statistics`), and the driver
sums them. A shard holds a multiple of the local pass's batch size, in the
same order, so every encoder batch is the one the local pass runs and the
result differs from it only by the order of the float64 sums.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from calibration.statistics import ActivationStats, Moments, collect_window_statistics, model_info

from liteasr_export.model.lowrank import SITES
from liteasr_export.app.ray_jobs.cluster import cluster_cpus, quiet_data, ray_session

#: windows per shard: a multiple of the encoder batch (8) of the local pass
SHARD_BATCHES = 4


class _ShardMoments:
    """Ray Data actor: the dense model, and one shard of windows -> its moments."""

    def __init__(self, model: Any, batch_size: int) -> None:
        import ray
        import torch

        torch.set_num_threads(1)  # one actor per CPU
        self.model = ray.get(model) if isinstance(model, ray.ObjectRef) else model
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        audio, lengths = batch["audio"][0], batch["lengths"][0]
        windows = np.split(np.asarray(audio, dtype=np.float32), np.cumsum(lengths)[:-1])
        stats = collect_window_statistics(self.model, windows, self.batch_size)
        out = {"n_windows": np.array([stats.n_windows])}
        for i, layer in enumerate(stats.layers):
            for site, m in layer.items():
                out[f"{i}.{site}.count"] = np.array([m.count])
                out[f"{i}.{site}.sum"] = m.sum.numpy()[None]
                out[f"{i}.{site}.outer"] = m.outer.numpy()[None]
        return out


def _shards(windows: list[np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    return [{"audio": np.concatenate(windows[i:i + size]),
             "lengths": np.array([w.size for w in windows[i:i + size]], dtype=np.int64)}
            for i in range(0, len(windows), size)]


def ray_window_statistics(model: Any, windows: Iterable[np.ndarray], address: str | None = None,
                          batch_size: int = 8, source: str = "", extra: dict[str, Any] | None = None,
                          progress: bool = True, shard_batches: int = SHARD_BATCHES) -> ActivationStats:
    """:func:`~calibration.statistics.collect_window_statistics` of ``windows``,
    mapped over a Ray cluster (``address``; None: a local Ray instance) and
    summed; a shard holds ``shard_batches`` encoder batches."""
    import torch

    windows = [np.ascontiguousarray(w, dtype=np.float32) for w in windows]
    if not windows:
        return collect_window_statistics(model, [], batch_size, source=source, extra=extra)
    shards = _shards(windows, shard_batches * batch_size)
    layers: list[dict[str, Moments]] | None = None
    n_layers = int(model.config.encoder_layers)
    n_windows = 0
    with ray_session(address) as ray:
        quiet_data(ray)
        actors = min(len(shards), cluster_cpus(ray))
        dataset = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
            _ShardMoments, batch_size=1, fn_constructor_kwargs={"model": ray.put(model), "batch_size": batch_size},
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1)
        with tqdm(total=len(windows), desc="calibrating (ray)", unit="window", disable=not progress) as bar:
            for row in dataset.iter_rows():
                n_windows += int(row["n_windows"])
                part = [{site: Moments(int(row[f"{i}.{site}.count"]),
                                       torch.from_numpy(np.array(row[f"{i}.{site}.sum"], dtype=np.float64)),
                                       torch.from_numpy(np.array(row[f"{i}.{site}.outer"], dtype=np.float64)))
                         for site in SITES} for i in range(n_layers)]
                if layers is None:
                    layers = part
                else:
                    for mine, theirs in zip(layers, part):
                        for site, moments in theirs.items():
                            mine[site].add(moments)
                bar.update(int(row["n_windows"]))
    return ActivationStats(layers or [], model_info(model), n_windows=n_windows, source=source,
                           extra=dict(extra or {}))

