"""Encoder size and FLOPs accounting, and the compression report (JSON + Markdown).

FLOPs are per 30 s window (1500 encoder frames) and count 2 per multiply-add
of the convolutions, the linears and the attention core (scores and
probabilities x values, at full head width: reduced-dimension attention is an
export-time choice). Bias additions, layer norms, GELU and softmax are
ignored. Parameters are counted exactly (the tests compare them with the
model's own count).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from liteasr_export.model.distillation.context_tune import describe
from liteasr_export.model.lowrank import COMPRESSIBLE, matrix_shape


def has_dense_bias(name: str) -> bool:
    """Whisper's k_proj has no bias; a factorized k_proj gains one (``b'``)."""
    return name != "k_proj"


def matrix_params(d_in: int, d_out: int, rank: int | None, dense_bias: bool = True) -> int:
    """Parameters of one matrix: dense (``rank`` None) or ``LowRankLinear`` (always biased)."""
    if rank is None:
        return d_in * d_out + (d_out if dense_bias else 0)
    return rank * (d_in + d_out) + d_out


def matrix_macs_per_frame(d_in: int, d_out: int, rank: int | None) -> int:
    return d_in * d_out if rank is None else rank * (d_in + d_out)


def pays_off(d_in: int, d_out: int, rank: int) -> bool:
    """True when two factors are strictly cheaper than the dense matrix."""
    return rank * (d_in + d_out) < d_in * d_out


def _frames(config) -> int:
    return int(config.max_source_positions)


def fixed_params(config) -> int:
    """Encoder parameters that compression leaves alone (convs, positions, norms)."""
    d, mels, layers = config.d_model, config.num_mel_bins, config.encoder_layers
    conv = mels * d * 3 + d + d * d * 3 + d
    return conv + _frames(config) * d + layers * 4 * d + 2 * d


def fixed_flops(config) -> int:
    """Encoder FLOPs per window outside the compressible matrices."""
    d, mels, n = config.d_model, config.num_mel_bins, _frames(config)
    conv = 2 * (2 * n) * mels * 3 * d + 2 * n * d * 3 * d
    attention = config.encoder_layers * 2 * (2 * n * n * d)
    return conv + attention


def matrix_cost(config, name: str, rank: int | None, metric: str = "params") -> int:
    d_in, d_out = matrix_shape(config, name)
    if metric == "params":
        return matrix_params(d_in, d_out, rank, has_dense_bias(name))
    if metric == "flops":
        return 2 * _frames(config) * matrix_macs_per_frame(d_in, d_out, rank)
    raise ValueError(f"unknown cost metric {metric!r}")


def encoder_cost(config, low_rank_config: Sequence[Mapping[str, int]] | None, metric: str = "params") -> int:
    """Total encoder parameters or FLOPs per window for given ranks (None: dense)."""
    total = fixed_params(config) if metric == "params" else fixed_flops(config)
    for index in range(config.encoder_layers):
        ranks = low_rank_config[index] if low_rank_config else {}
        total += sum(matrix_cost(config, name, ranks.get(name), metric) for name in COMPRESSIBLE)
    return total


@dataclass
class MatrixEntry:
    layer: int
    name: str
    d_in: int
    d_out: int
    rank: int | None  # None: dense
    variance_kept: float  # share of the output variance the kept subspace explains
    params_before: int
    params_after: int


@dataclass
class CompressionReport:
    """What the compressor did, per matrix and for the whole encoder."""

    model: str
    policy: dict[str, Any]
    matrices: list[MatrixEntry]
    encoder_params_before: int
    encoder_params_after: int
    encoder_flops_before: int
    encoder_flops_after: int
    calibration: dict[str, Any] = field(default_factory=dict)
    #: what was done after the factorization (compensation, refinement) and how
    recovery: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config,
        ranks: Sequence[Mapping[str, int]],
        variance_kept: Mapping[tuple[int, str], float],
        policy: dict[str, Any],
        calibration: dict[str, Any] | None = None,
        model: str = "",
    ) -> CompressionReport:
        entries = []
        for index in range(config.encoder_layers):
            for name in COMPRESSIBLE:
                d_in, d_out = matrix_shape(config, name)
                rank = ranks[index].get(name)
                entries.append(MatrixEntry(
                    index, name, d_in, d_out, rank,
                    float(variance_kept.get((index, name), 1.0)) if rank is not None else 1.0,
                    matrix_cost(config, name, None), matrix_cost(config, name, rank),
                ))
        return cls(
            model=model,
            policy=policy,
            matrices=entries,
            encoder_params_before=encoder_cost(config, None, "params"),
            encoder_params_after=encoder_cost(config, ranks, "params"),
            encoder_flops_before=encoder_cost(config, None, "flops"),
            encoder_flops_after=encoder_cost(config, ranks, "flops"),
            calibration=dict(calibration or {}),
        )

    @property
    def size_ratio(self) -> float:
        return self.encoder_params_after / self.encoder_params_before

    @property
    def flops_ratio(self) -> float:
        return self.encoder_flops_after / self.encoder_flops_before

    @property
    def low_rank_config(self) -> list[dict[str, int]]:
        layers: dict[int, dict[str, int]] = {}
        for entry in self.matrices:
            layer = layers.setdefault(entry.layer, {})
            if entry.rank is not None:
                layer[entry.name] = entry.rank
        return [layers[i] for i in sorted(layers)]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["size_ratio"] = round(self.size_ratio, 6)
        data["flops_ratio"] = round(self.flops_ratio, 6)
        data["low_rank_config"] = self.low_rank_config
        return data

    def to_markdown(self, level: int = 1) -> str:
        """The report as Markdown; ``level`` is its heading level (2 when it is
        a section of the export's report.md)."""
        names = list(COMPRESSIBLE)
        lines = [
            f"{'#' * level} Compression report{': ' + self.model if self.model else ''}",
            "",
            f"Policy: `{json.dumps(self.policy, sort_keys=True)}`",
            "",
            "| | before | after | ratio |",
            "|---|---:|---:|---:|",
            f"| encoder parameters | {self.encoder_params_before:,} | {self.encoder_params_after:,} | {self.size_ratio:.3f} |",
            f"| encoder GFLOPs / 30 s window | {self.encoder_flops_before / 1e9:.2f} | "
            f"{self.encoder_flops_after / 1e9:.2f} | {self.flops_ratio:.3f} |",
            "",
            "Rank (or dense) and share of output variance kept, per layer and matrix:",
            "",
            "| layer | " + " | ".join(names) + " |",
            "|---:|" + "---|" * len(names),
        ]
        by_layer: dict[int, dict[str, MatrixEntry]] = {}
        for entry in self.matrices:
            by_layer.setdefault(entry.layer, {})[entry.name] = entry
        for layer in sorted(by_layer):
            cells = []
            for name in names:
                entry = by_layer[layer][name]
                cells.append("dense" if entry.rank is None else f"{entry.rank} ({100 * entry.variance_kept:.2f}%)")
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines += _calibration_markdown(self.calibration) + _recovery_markdown(self.recovery)
        return "\n".join(lines) + "\n"

    def write(self, directory: str | Path, stem: str = "compression_report") -> tuple[Path, Path]:
        """Write ``<stem>.json`` and ``<stem>.md`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        json_path, md_path = directory / f"{stem}.json", directory / f"{stem}.md"
        json_path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        md_path.write_text(self.to_markdown())
        return json_path, md_path


def _calibration_markdown(calibration: Mapping[str, Any]) -> list[str]:
    """What the calibration contained: sources, speakers, minutes, windows, augmentations."""
    if not calibration:
        return []
    lines = ["", f"Calibration: {calibration.get('utterances', '?')} utterances, {calibration.get('windows', '?')} "
             f"windows of 30 s (source `{calibration.get('source', '')}`)."]
    mix, windows = calibration.get("mix"), calibration.get("window_summary")
    if mix:
        minutes = (windows or {}).get("minutes", {})
        lines += ["", "| source | utterances | minutes | speakers |", "|---|---:|---:|---|"]
        for name, source in mix["sources"].items():
            speakers = source["speakers"]
            who = f"{len(speakers)}: {', '.join(speakers[:12])}{' ...' if len(speakers) > 12 else ''}" if speakers else "unknown"
            lines.append(f"| {name} | {source['utterances']} | {minutes.get(name, 0):.1f} | {who} |")
        lines += [f"- not available, skipped: {name} ({why})" for name, why in mix.get("missing", {}).items()]
    if windows:
        augmented = windows.get("augmented_windows") or {}
        lines += ["", f"Windows: {windows['single_windows']} with one clip each, {windows['packed_windows']} packed "
                      f"full of speech (packing `{calibration.get('packing', '')}`); augmented copies: "
                  + (", ".join(f"{k} {v}" for k, v in augmented.items()) or "none") + "."]
    return lines


def _recovery_markdown(recovery: Mapping[str, Any]) -> list[str]:
    if not recovery:
        return []
    lines = ["", f"After factorization: covariance shrinkage {recovery.get('shrinkage', 0):g}, sensitivity probes on "
                 f"{recovery.get('probe_windows', 0)} windows."]
    if "compensation" in recovery:
        c = recovery["compensation"]
        lines.append(f"Error compensation: {c['matrices']} matrices refitted layer by layer on {c['windows']} windows "
                     f"({c['seconds']:.1f} s).")
    if "refine" in recovery:
        r = recovery["refine"]
        lines.append(f"Refinement: {r['steps']} distillation steps ({r['seconds']:.1f} s), loss "
                     f"{r['train_loss_before']:.4f} -> {r['train_loss_after']:.4f}; on held-back windows "
                     f"{r['heldout_loss_before']:.4f} -> {r['heldout_loss_after']:.4f}.")
    if "context_tune" in recovery:
        lines.append(describe(recovery["context_tune"]))
    return lines
