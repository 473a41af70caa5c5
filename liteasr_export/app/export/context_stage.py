"""The context-tuning stage of an export (``--context-tune``): calibration
clips, the dense model's transcripts and decoder states on them (cached by
content), then :func:`~liteasr_export.model.distillation.context_tune.context_tune`
of the model being exported, resumable from a checkpoint in the cache.

No reference text is read: the teacher's transcripts are its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from calibration.mix import resolve_mix
from calibration.statistics import parameter_fingerprint
from calibration.windows import packed_windows

from liteasr_export.app.export.options import ExportOptions
from liteasr_export.app.runners import open_runner
from liteasr_export.core.cache import cache_root
from liteasr_export.core.decoding import SearchOptions
from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import HOP_LENGTH, load_audio, log_mel, split_windows
from liteasr_export.core.integrity import sha256_file
from liteasr_export.core.windowed import AUTO_BUCKETS, AUTO_TAIL_FRAMES, TranscribeOptions
from liteasr_export.model.distillation.context_tune import TeacherTargets, context_tune, mark_tuned, teacher_targets

Note = Callable[[str], None]

#: the teacher's transcripts: greedy, with the temperature fallback (a loop
#: of the dense model would otherwise become a target)
TEACHER_DECODING = TranscribeOptions(search=SearchOptions(beam_size=1))
#: every tenth single clip is held back: only scored, before and after (and
#: left out of the packed windows, so that its speech is not trained on)
HELDOUT_EVERY = 10


@dataclass
class ContextClips:
    """Calibration clips for tuning: each one's first window as 30 s log-mel,
    the mel frames holding its audio, and its id."""

    features: np.ndarray
    speech_frames: np.ndarray
    ids: list[str]
    digest: str
    packed: int = 0  # of them, full windows of clips packed back to back
    heldout: list[int] = field(default_factory=list)  # indices of the clips only scored


def context_clips(opts: ExportOptions, n_mels: int, note: Note = print) -> ContextClips:
    """``opts.context_clips`` clips of every calibration source (balanced per
    speaker), each alone in its window (a clip over 30 s: its first window),
    then the same clips (less the held-back ones) packed into full 30 s
    windows."""
    mix = resolve_mix(opts.calib, "calib", opts.context_clips)
    for name, why in mix.missing.items():
        note(f"  note: context-tuning source {name} skipped: {why}")
    features, frames, ids = [], [], []
    digest = hashlib.sha256(b"context-clips|v2")

    def add(window: np.ndarray, name: str) -> None:
        features.append(log_mel(window, n_mels))
        frames.append(-(-window.size // HOP_LENGTH))
        ids.append(name)

    loaded: dict[str, np.ndarray] = {}
    for utterance in tqdm(mix.utterances, desc="context clips", unit="clip", disable=not opts.progress):
        try:
            loaded[utterance.id] = split_windows(load_audio(utterance.audio))[0]
        except Exception as exc:  # an unreadable clip is skipped, as calibration does
            note(f"  note: {utterance.id} skipped: {exc}")
            continue
        add(loaded[utterance.id], utterance.id)
        digest.update(f"|{utterance.id}|{sha256_file(utterance.audio)}".encode())
    # full 30 s windows of speech (each source's clips packed back to back, as
    # calibration packs them): what long audio's windows look like under
    # ``auto``, which keeps them at 30 s
    heldout = list(range(0, len(ids), HELDOUT_EVERY))  # single clips only: the packed windows come after
    held = {ids[i] for i in heldout}
    packed = [w for source in mix.sources
              for w in packed_windows([loaded[u.id] for u in source.utterances
                                       if u.id in loaded and u.id not in held])]
    for k, window in enumerate(packed):
        add(window, f"packed-{k}")
        digest.update(f"|packed-{k}|".encode() + window.tobytes())
    if len(ids) < 2:
        raise DatasetError(f"the calibration set {opts.calib!r} has {len(ids)} readable clips; context tuning "
                           "needs at least 2", "pass a larger set of readable audio (`calib`)", field="calib")
    return ContextClips(np.stack(features), np.asarray(frames), ids, digest.hexdigest(), len(packed),
                        heldout)


def teacher(dense, clips: ContextClips, opts: ExportOptions) -> TeacherTargets:
    """The dense model's transcripts of ``clips`` at 30 s and its decoder
    states on them, from the cache or computed (then cached)."""
    key = hashlib.sha256(f"{parameter_fingerprint(dense.model)}|{dense.decoding.to_json()}|"
                         f"{TEACHER_DECODING!r}|{clips.digest}|v1".encode()).hexdigest()[:24]
    path = (opts.cache_dir or cache_root()) / "context_teacher" / f"{key}.safetensors"
    if path.is_file():
        return TeacherTargets.from_tensors(load_file(str(path)))
    runner = open_runner("torch", loaded=dense, settings=TEACHER_DECODING)
    prompt = runner.decoding_options().prompt
    eot = dense.tokenizer.eot
    tokens = []
    for start in tqdm(range(0, len(clips.ids), 8), desc="teacher transcripts", unit="batch",
                      disable=not opts.progress):
        tokens += [list(prompt) + list(t) + [eot] for t in runner.transcribe_features(clips.features[start: start + 8])]
    targets = teacher_targets(dense.model, clips.features, tokens, progress=opts.progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(targets.to_tensors(), str(tmp))
    tmp.replace(path)
    return targets


def tune_context(model, dense, opts: ExportOptions, note: Note = print,
                 refine_features: np.ndarray | None = None) -> dict:
    """``--context-tune``: tune ``model`` (in place) against ``dense`` on the
    calibration clips; with ``refine_features``, ``--refine``'s loss joins
    the same steps; ``model``'s config then says it decodes with
    ``audio_context="auto"``. Returns the report's entry."""
    clips = context_clips(opts, model.config.num_mel_bins, note)
    targets = teacher(dense, clips, opts)
    refine_digest = "" if refine_features is None else hashlib.sha256(refine_features.tobytes()).hexdigest()
    key = hashlib.sha256(f"{parameter_fingerprint(model)}|{clips.digest}|{opts.context_tune}|{refine_digest}|"
                         f"{AUTO_TAIL_FRAMES}|{AUTO_BUCKETS}|v1".encode()).hexdigest()[:24]
    checkpoint: Path = (opts.cache_dir or cache_root()) / "context_tune" / f"{key}.pt"
    result = context_tune(model, targets, clips.features, clips.speech_frames, opts.context_tune,
                          AUTO_TAIL_FRAMES, AUTO_BUCKETS, heldout=clips.heldout, teacher=dense.model,
                          refine_features=refine_features, checkpoint=checkpoint, progress=opts.progress)
    mark_tuned(model)
    done = {**result.to_dict(), "packed_windows": clips.packed}
    note(f"  context-tuned {result.steps} steps on {result.clips} clips"
         f" ({clips.packed} full 30 s windows of packed clips among the clips)"
         + (f" (resumed at step {result.resumed_from})" if result.resumed_from else "")
         + (f": held-back clips' loss at auto's lengths {result.heldout_auto_before:.4f} -> "
            f"{result.heldout_auto_after:.4f}, at 30 s {result.heldout_full_before:.4f} -> "
            f"{result.heldout_full_after:.4f}" if result.heldout_auto_before is not None else ""))
    return done
