"""The compression stage of an export: calibration statistics (cached by
content), rank selection, factorization, error recovery, and the search for
the smallest encoder that keeps a WER target.

Each step is a library call of its own (``calibration``, ``compressor``,
``sensitivity``, ``compensation``, ``refine``, ``target_search``); this module
wires them to the export options.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from calibration.augment import Augmenter
from calibration.mix import DEFAULT_PER_SOURCE, resolve_mix
from calibration.statistics import ActivationStats, collect_window_statistics, encoder_fingerprint
from calibration.windows import WindowSummary, mix_windows
from engines.validation.quality_gate import TranscriptCache, compare

from liteasr_export.model.compression import sensitivity
from liteasr_export.core.cache import cache_root
from liteasr_export.model.compression.compensation import compensate
from liteasr_export.model.compression.compressor import compress, compute_spectra
from liteasr_export.core.errors import CalibrationError, DatasetError
from liteasr_export.core.frontend import load_audio, log_mel, split_windows
from liteasr_export.core.integrity import sha256_file
from liteasr_export.app.export.context_stage import tune_context
from liteasr_export.app.export.options import ExportOptions
from liteasr_export.core.output_formats import write_atomic
from liteasr_export.app.export.quality_stage import (SEARCH_SEED, gate_checks, gate_key,
                                                     gate_transcriber, is_multilingual, transcribe_check)
from liteasr_export.model.compression.rank_policies import BudgetPolicy, default_size_ladder, make_policy
from liteasr_export.model.distillation.refine import refine
from liteasr_export.model.compression.target_search import search_target_size

Note = Callable[[str], None]


def _stats_cache_key(fingerprint: str, mix, opts: ExportOptions) -> str:
    """Content key of a calibration: the encoder's weights, the settings and
    the bytes of every audio file read (so an edited file is never served
    from a stale cache)."""
    digest = hashlib.sha256(f"{fingerprint}|{opts.packing}|{opts.augment}|v2".encode())
    for source in mix.sources:
        digest.update(f"|{source.name}".encode())
        for utterance in source.utterances:
            digest.update(f"|{utterance.id}|{sha256_file(utterance.audio)}".encode())
    return digest.hexdigest()[:24]


def calibrate(loaded, opts: ExportOptions, progress_note: Note = print):
    """Statistics from ``opts.stats``, from the cache, or by calibrating on
    the mix ``opts.calib`` names (then cached). Returns the statistics and a note."""
    if opts.stats is not None:
        try:
            stats = ActivationStats.load(opts.stats)
            stats.check_matches(loaded.model)
        except CalibrationError as exc:
            raise exc.given_as("stats") from None
        return stats, "loaded from " + str(opts.stats)
    per_source = opts.calib_samples or DEFAULT_PER_SOURCE
    mix = resolve_mix(opts.calib, "calib", per_source, multilingual=is_multilingual(loaded))
    for name, why in mix.missing.items():
        progress_note(f"  note: calibration source {name} skipped: {why}")
    if mix.generated_only and mix.missing:
        progress_note("  note: no real speech is installed, so calibration and the quality gate use generated voices "
                      "only; real speakers may lose more than the gate shows (python -m calibration.fotaq fetch "
                      "adds real speech)")
    augmenter = Augmenter.parse(opts.augment)
    cache = (opts.cache_dir or cache_root()) / "stats" / (
        _stats_cache_key(encoder_fingerprint(loaded.model), mix, opts) + ".safetensors")
    if cache.is_file():
        return ActivationStats.load(cache), f"reused {cache}"
    summary = WindowSummary()
    windows = tqdm(mix_windows(mix, opts.packing, augmenter, summary), desc="calibrating", unit="window",
                   disable=not opts.progress)
    if opts.ray is not None:  # the same moments, one shard of windows per Ray Data row, summed
        from liteasr_export.app.ray_jobs.stats import ray_window_statistics  # Ray: only for --ray

        stats = ray_window_statistics(loaded.model, windows, opts.ray, source=opts.calib, progress=opts.progress)
    else:
        stats = collect_window_statistics(loaded.model, windows, device=opts.device, source=opts.calib)
    if stats.n_windows == 0:
        raise DatasetError(f"the calibration set {opts.calib!r} has no usable audio ({summary.skipped} files "
                           "could not be read)", "pass a set of readable wav/flac/ogg/mp3 files (`calib`)", field="calib")
    stats.n_utterances = sum(len(s.utterances) for s in mix.sources) - summary.skipped
    stats.extra.update(mix=mix.describe(), window_summary=summary.to_dict(), packing=opts.packing,
                       augment=list(augmenter.kinds) if augmenter else [])
    stats.save(cache)
    return stats, f"calibrated on {stats.n_utterances} utterances, {stats.n_windows} windows (cached at {cache})"


def calibration_features(loaded, opts: ExportOptions, count: int) -> np.ndarray:
    """Log-mel of ``count`` calibration windows spread evenly over the mix
    (every source, single and packed windows), for the steps after the
    statistics: probing, compensation, refinement."""
    windows = list(mix_windows(resolve_mix(opts.calib, "calib", opts.calib_samples or DEFAULT_PER_SOURCE,
                                           multilingual=is_multilingual(loaded)),
                               opts.packing))
    chosen = np.unique(np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int))
    return np.stack([log_mel(windows[i], loaded.model.config.num_mel_bins) for i in chosen])


def select_spectra(loaded, stats, policy, opts: ExportOptions):
    """The spectra the policy chooses from: with covariance shrinkage, and with
    measured sensitivities when probing (budget policies only)."""
    spectra = compute_spectra(loaded.model, stats, opts.shrinkage)
    if opts.probe_windows and isinstance(policy, BudgetPolicy):
        features = calibration_features(loaded, opts, opts.probe_windows)
        probe_ranks = sensitivity.probe_ranks_for(policy, spectra, loaded.model.config)
        cache = _sensitivity_cache(loaded, spectra, features, probe_ranks, policy.weights, opts)
        if cache.is_file():
            measured = {(layer, name): value for layer, name, value in json.loads(cache.read_text())}
            return sensitivity.with_sensitivities(spectra, measured)
        spectra = sensitivity.measure_sensitivity(loaded.model, stats, spectra, features, probe_ranks,
                                                  policy.weights, opts.shrinkage, progress=opts.progress)
        write_atomic(cache, json.dumps([[s.layer, s.name, s.sensitivity] for s in spectra if s.sensitivity != 1.0]))
    return spectra


def _sensitivity_cache(loaded, spectra, features: np.ndarray, probe_ranks: dict, weights: str,
                       opts: ExportOptions) -> Path:
    """Where measured sensitivities are kept: keyed by the weights, the probe
    windows' contents, the spectra (so the statistics and shrinkage) and the
    probe ranks. Probing is the slowest step of a default export (minutes on
    a CPU); a rerun with other sizes or gate options skips it."""
    digest = hashlib.sha256(f"{encoder_fingerprint(loaded.model)}|{weights}|{sorted(probe_ranks.items())}|v1".encode())
    digest.update(np.ascontiguousarray(features).tobytes())
    for s in spectra:
        digest.update(np.ascontiguousarray(s.eigenvalues).tobytes())
    return (opts.cache_dir or cache_root()) / "sensitivity" / f"{digest.hexdigest()[:24]}.json"


def build(loaded, stats, policy, spectra, opts: ExportOptions, note: Note = print):
    """Factorize at the policy's ranks, then compensate and refine as asked."""
    model, report = compress(loaded.model, stats, policy, name=loaded.name, spectra=spectra,
                             shrinkage=opts.shrinkage)
    report.calibration.update({k: stats.extra[k] for k in ("mix", "window_summary", "packing", "augment")
                               if k in stats.extra})
    report.recovery = recover(model, loaded.model, loaded, opts, note)
    return replace(loaded, model=model), report


def options_policy(loaded, opts: ExportOptions):
    """The rank policy the options ask for."""
    return make_policy(opts.policy, theta=opts.theta, target_size=opts.target_size, ranks=opts.ranks,
                       preset=opts.preset, config=loaded.model.config)


def compress_model(loaded, stats, opts: ExportOptions, note: Note = print, size: float | None = None,
                   spectra=None):
    """The compressed model and its report, at the ranks the options ask for,
    or with the budget policy at ``size`` (a step of :func:`size_steps`).
    ``spectra``: what :func:`select_spectra` gave for the options' own policy
    (a step reuses the sensitivities probed for the default size)."""
    policy = options_policy(loaded, opts)
    if spectra is None:
        spectra = select_spectra(loaded, stats, policy, opts)
    if size is not None:
        policy = make_policy("budget", target_size=size)
    return build(loaded, stats, policy, spectra, opts, note)


def size_steps(loaded, opts: ExportOptions) -> list[float]:
    """The larger sizes an export steps to when the quality gate does not
    pass the default size with margin: none when the options chose the
    size, the ranks or a search (a size the user chose is judged as it is)."""
    chosen = (opts.target_size is not None or opts.preset is not None or opts.policy != "budget"
              or opts.ranks is not None or opts.target_wer_increase is not None)
    return [] if chosen else default_size_ladder(loaded.model.config)[1:]


def search_compression(loaded, stats, opts: ExportOptions, note: Note = print):
    """``--target-wer-increase``: bisection over the budget size (see
    :mod:`liteasr_export.model.compression.target_search`), judged with PyTorch on check sets
    drawn apart from the quality gate's. Returns the chosen model and report
    (the dense model and None when no size passes) and the search result."""
    spectra = select_spectra(loaded, stats, make_policy("budget", target_size=0.9), opts)
    multilingual = is_multilingual(loaded)  # then every installed language is searched on, as the gate checks
    checks = gate_checks(opts, note, seed=SEARCH_SEED, multilingual=multilingual)
    cache, key = TranscriptCache((opts.cache_dir or cache_root()) / "transcripts"), gate_key(loaded)
    dense_runner, dense_texts = gate_transcriber(loaded), []
    for check in checks:
        texts = cache.get(key, check)
        if texts is None:
            texts = transcribe_check(dense_runner, check, multilingual)
            cache.put(key, check, texts)
        dense_texts.append(texts)
    built: dict[float, tuple] = {}

    def evaluate(size: float):
        candidate = build(loaded, stats, make_policy("budget", target_size=size), spectra, opts, lambda _: None)
        built[size] = candidate
        transcriber = gate_transcriber(candidate[0])
        results = [compare(c, d, {"torch": transcribe_check(transcriber, c, multilingual)}, {})
                   for c, d in zip(checks, dense_texts)]
        return (candidate[1].size_ratio, {r.name: r.increase["torch"] for r in results if r.labeled},
                {r.name: r.agreement["torch"] for r in results if not r.labeled})

    result = search_target_size(evaluate, opts.target_wer_increase, opts.max_disagreement, note=note)
    if result.chosen is None:
        note("  no compressed size met the target: exporting the dense encoder")
        return loaded, None, result
    model, report = built[result.chosen]
    return model, report, result


def recover(model, dense, loaded, opts: ExportOptions, note: Note = print) -> dict:
    """Compensation, then refinement of ``model``'s factors and context
    tuning of its encoder (in place)."""
    done: dict = {"shrinkage": opts.shrinkage, "probe_windows": opts.probe_windows}
    if opts.compensate:
        done["compensation"] = compensate(model, dense, calibration_features(loaded, opts, opts.compensate),
                                          progress=opts.progress)
    if opts.context_tune:  # one distillation: --refine's loss joins the context tuning's steps
        refine_features = calibration_features(loaded, opts, opts.refine_windows) if opts.refine else None
        done["context_tune"] = tune_context(model, loaded, opts, note, refine_features=refine_features)
    elif opts.refine:
        features = calibration_features(loaded, opts, opts.refine_windows)
        held = features[::10]  # every tenth window only scores the fit
        train = np.delete(features, np.arange(0, len(features), 10), axis=0)
        done["refine"] = refine(model, dense, train, opts.refine, heldout=held, progress=opts.progress).to_dict()
        note(f"  refined {opts.refine} steps: loss {done['refine']['train_loss_before']:.4f} -> "
             f"{done['refine']['train_loss_after']:.4f} (held-back windows "
             f"{done['refine']['heldout_loss_before']:.4f} -> {done['refine']['heldout_loss_after']:.4f})")
    return done


def _first_window_features(utterances, n_mels: int) -> np.ndarray:
    """Log-mel of each utterance's first window, stacked: (N, n_mels, 3000)."""
    return np.stack([log_mel(split_windows(load_audio(u.audio))[0], n_mels) for u in utterances])


def overflow_check_features(loaded, opts: ExportOptions, clips: int = 8) -> list:
    """One-window batches of the first calibration clips, a few of every
    source (the fp16 overflow check)."""
    utterances = resolve_mix(opts.calib, "calib", per_source=clips,
                             multilingual=is_multilingual(loaded)).utterances[:clips]
    return [f[None] for f in _first_window_features(utterances, loaded.model.config.num_mel_bins)]
