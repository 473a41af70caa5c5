"""Label-free audio-context tuning: teach a model to transcribe from a
trimmed encoder input (its audio plus a margin, not 30 s of padding) as the
dense model does from the full 30 s.

Whisper is trained on 30 s windows only, so a stock model given the first
few seconds of frames misses its end-of-text token or loops
(``bench/results/audio_context.json``). The fix, after FUTO's
whisper-acft, is a short distillation, but with no labels at all:

- the teacher is the dense model on each clip padded to 30 s:
  its own greedy transcript is the teacher-forcing sequence, and its
  decoder's hidden states (every layer) and next-token distributions are
  the targets (:func:`teacher_targets`, computed once);
- the clips are each calibration clip alone (what ``auto`` trims) and the
  same clips packed back to back into full 30 s windows (what ``auto``
  keeps at 30 s in long audio: without them the tuned encoder drifted
  there, tiny.en's long recording +0.79 WER against +0.20 untuned);
- the student is the model being exported, its encoder fed the clip's
  first ``T`` mel frames for many ``T``: the bucket ``auto`` will use, a
  random margin after the speech, and now and then the full 30 s (so the
  30 s path stays what it was); the loss is the normalized squared error
  of each decoder layer's states plus the KL divergence of the
  distributions (:func:`context_tune`).

Only the encoder trains (its layers and final norm; the conv stem and the
positional table stay): the decoder and its cross-attention projections,
most of a CPU transcription's time and the part that reads the K/V, are
unchanged, so the decoder graph is the dense one and a 30 s window decodes
against the same weights it always did; and a few hundred steps on 2 CPU
cores fit the encoder alone (tiny.en: 8 M weights) without the decoder's
language model drifting on a small unlabeled set. With ``--refine``, its
encoder-output target on 30 s calibration windows is added to the same
loss (one distillation, one report).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from liteasr_export.model.distillation.refine import encoder_loss, encoder_targets
from liteasr_export.model.torch_transcriber import encoder_hidden

log = logging.getLogger(__name__)

#: mel frames of a full window (30 s)
FULL_FRAMES = 3000
#: the smallest margin of encoded frames after a clip's speech (0.2 s)
MIN_MARGIN_FRAMES = 20
#: how the length of a step's context is drawn: the ``auto`` bucket of the
#: batch, speech plus a random margin, or the full 30 s (the rest, a quarter:
#: the anchor that keeps the 30 s path close to the dense model's)
BUCKET_SHARE, MARGIN_SHARE = 0.45, 0.30
#: the largest random margin (10 s)
MAX_MARGIN_FRAMES = 1000
#: weight of the next-token KL divergence against the hidden-state error
KL_WEIGHT = 1.0
#: steps between two saved checkpoints (a killed run resumes from the last)
CHECKPOINT_EVERY = 25


@dataclass
class TeacherTargets:
    """The dense model's decoder on each clip at 30 s, teacher-forced on its
    own transcript: ``tokens[i]`` (prompt, text, end of text) and, per
    decoder layer, its output states of every clip's tokens end to end
    (``states[layer]``: (total tokens, d_model); the last entry is the final
    normed state, whose projection gives the next-token logits)."""

    tokens: list[list[int]]
    states: list[torch.Tensor]

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum([len(t) for t in self.tokens])])

    def state_scales(self) -> list[torch.Tensor]:
        """Each layer's per-channel variance (the error's normalizer)."""
        return [s.var(dim=0).clamp_min(1e-6) for s in self.states]

    def to_tensors(self) -> dict[str, torch.Tensor]:
        flat = torch.tensor([t for seq in self.tokens for t in seq], dtype=torch.int64)
        lengths = torch.tensor([len(t) for t in self.tokens], dtype=torch.int64)
        return {"tokens": flat, "lengths": lengths, **{f"states.{i}": s for i, s in enumerate(self.states)}}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor]) -> "TeacherTargets":
        flat, lengths = tensors["tokens"].tolist(), tensors["lengths"].tolist()
        ends = np.cumsum(lengths)
        tokens = [flat[e - n: e] for n, e in zip(lengths, ends)]
        states = [tensors[f"states.{i}"] for i in range(sum(k.startswith("states.") for k in tensors))]
        return cls(tokens, states)


@dataclass
class ContextTuneResult:
    """What tuning did: steps, seconds, and the distillation loss of the
    held-back clips before and after, at ``auto``'s lengths and at 30 s."""

    steps: int
    seconds: float
    clips: int
    heldout_clips: int
    trained: str
    heldout_auto_before: float | None
    heldout_auto_after: float | None
    heldout_full_before: float | None
    heldout_full_after: float | None
    train_loss_first: float | None
    train_loss_last: float | None
    refine_windows: int = 0
    resumed_from: int = 0

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def describe(result: dict) -> str:
    """One sentence on a :meth:`ContextTuneResult.to_dict` for the reports."""
    text = (f"Audio-context tuning: {result['steps']} steps on {result['clips']} calibration clips "
            f"({result['seconds']:.1f} s; trained: {result['trained']}"
            + (f"; {result['packed_windows']} of them full 30 s windows of packed clips"
               if result.get("packed_windows") else "")
            + (f"; with --refine's loss on {result['refine_windows']} windows" if result.get("refine_windows") else "")
            + ").")
    if result.get("heldout_auto_before") is not None:
        text += (f" Distillation loss on {result['heldout_clips']} held-back clips at the lengths auto picks "
                 f"{result['heldout_auto_before']:.4f} -> {result['heldout_auto_after']:.4f}, at 30 s "
                 f"{result['heldout_full_before']:.4f} -> {result['heldout_full_after']:.4f}.")
    return text


def mark_tuned(model: nn.Module) -> None:
    """Say in ``model``'s config (saved with its checkpoint) that it decodes
    with ``audio_context="auto"`` by default."""
    model.config.liteasr_audio_context = "auto"


def is_tuned(model: nn.Module) -> bool:
    """Whether ``model`` was tuned for trimmed contexts (:func:`mark_tuned`)."""
    return getattr(model.config, "liteasr_audio_context", None) == "auto"


def _decoder_states(model: nn.Module, encoded: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Every decoder layer's output states (the last one normed) for ``tokens``
    teacher-forced against ``encoded``."""
    out = model.model.decoder(input_ids=tokens, encoder_hidden_states=encoded, output_hidden_states=True)
    return list(out.hidden_states[1:])


def _padded(tokens: Sequence[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sequences padded with ``pad`` to one length, and the mask of their real tokens."""
    width = max(len(t) for t in tokens)
    ids = torch.full((len(tokens), width), pad, dtype=torch.int64)
    mask = torch.zeros((len(tokens), width), dtype=torch.bool)
    for row, seq in enumerate(tokens):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = True
    return ids, mask


def teacher_targets(teacher: nn.Module, features: np.ndarray, tokens: Sequence[list[int]],
                    batch_size: int = 8, progress: bool = True) -> TeacherTargets:
    """Run the dense ``teacher`` on each clip's 30 s ``features``
    (N, n_mels, 3000) teacher-forced on ``tokens`` (its own transcripts, with
    prompt and end of text) and keep its decoder states."""
    teacher.eval()
    layers: list[list[torch.Tensor]] = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(tokens), batch_size), desc="teacher states", unit="batch",
                          disable=not progress):
            chunk = list(tokens[start: start + batch_size])
            ids, mask = _padded(chunk, chunk[0][-1])
            x = torch.from_numpy(np.ascontiguousarray(features[start: start + batch_size], dtype=np.float32))
            states = _decoder_states(teacher, encoder_hidden(teacher.model.encoder, x), ids)
            if not layers:
                layers = [[] for _ in states]
            for kept, state in zip(layers, states):
                kept.append(state[mask].float())
    return TeacherTargets([list(t) for t in tokens], [torch.cat(k) for k in layers])


def auto_bucket(speech_frames: int, tail: int, buckets: Sequence[int]) -> int:
    """The frames ``auto`` encodes a clip of ``speech_frames`` with."""
    return next((b for b in buckets if b >= speech_frames + tail), FULL_FRAMES)


def context_lengths(speech_frames: np.ndarray, tail: int, buckets: Sequence[int], generator: np.random.Generator
                    ) -> int:
    """One step's context (mel frames, even) for a batch of clips of
    ``speech_frames``: their ``auto`` bucket, the speech plus a random margin,
    or the full 30 s."""
    longest = int(speech_frames.max())
    draw = generator.random()
    if draw < BUCKET_SHARE:
        return auto_bucket(longest, tail, buckets)
    if draw < BUCKET_SHARE + MARGIN_SHARE:
        frames = longest + int(generator.integers(MIN_MARGIN_FRAMES, MAX_MARGIN_FRAMES + 1))
        return min(FULL_FRAMES, frames + frames % 2)
    return FULL_FRAMES


class _Objective:
    """The context loss of a batch: the student's decoder states against the
    teacher's, normalized per channel, plus the next-token KL divergence."""

    def __init__(self, model: nn.Module, targets: TeacherTargets) -> None:
        self.model, self.targets = model, targets
        self.offsets = targets.offsets
        self.scales = targets.state_scales()
        self.pad = targets.tokens[0][-1]
        self.proj = model.proj_out

    def __call__(self, features: torch.Tensor, rows: Sequence[int], frames: int) -> torch.Tensor:
        ids, mask = _padded([self.targets.tokens[r] for r in rows], self.pad)
        encoded = encoder_hidden(self.model.model.encoder, features[..., :frames])
        got = [s[mask] for s in _decoder_states(self.model, encoded, ids)]
        index = torch.cat([torch.arange(self.offsets[r], self.offsets[r + 1]) for r in rows])
        wanted = [s[index] for s in self.targets.states]
        mse = sum(((g - w) ** 2 / s).mean() for g, w, s in zip(got, wanted, self.scales)) / len(got)
        with torch.no_grad():
            teacher_logp = F.log_softmax(self.proj(wanted[-1]).float(), dim=-1)
        student_logp = F.log_softmax(self.proj(got[-1]).float(), dim=-1)
        kl = F.kl_div(student_logp, teacher_logp, log_target=True, reduction="batchmean")
        return mse + KL_WEIGHT * kl


def trainable_encoder_parameters(model: nn.Module) -> list[nn.Parameter]:
    """What context tuning trains: the encoder's layers and final norm (low-rank
    factors included), not its conv stem or positional table."""
    encoder = model.model.encoder
    return [p for name, p in encoder.named_parameters()
            if not name.startswith(("conv1.", "conv2.", "embed_positions."))]


def _save_checkpoint(path: Path, step: int, params: list[nn.Parameter], optimizer, losses: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save({"step": step, "params": [p.detach().clone() for p in params], "optimizer": optimizer.state_dict(),
                "losses": losses}, tmp)
    os.replace(tmp, path)


def context_tune(
    model: nn.Module,
    targets: TeacherTargets,
    features: np.ndarray,
    speech_frames: np.ndarray,
    steps: int,
    tail: int,
    buckets: Sequence[int],
    batch_size: int = 8,
    lr: float = 1e-5,
    heldout: Sequence[int] = (),
    teacher: nn.Module | None = None,
    refine_features: np.ndarray | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
    seed: int = 0,
) -> ContextTuneResult:
    """Tune ``model``'s encoder (in place) for ``steps`` steps of
    ``batch_size`` clips so that, on trimmed contexts, its decoder follows
    ``targets`` (:func:`teacher_targets` of ``features``, (N, n_mels, 3000),
    whose first ``speech_frames[i]`` frames hold audio). ``tail`` and
    ``buckets``: how ``auto`` picks a clip's context at inference
    (:data:`liteasr_export.core.windowed.AUTO_BUCKETS`). Clips in
    ``heldout`` are only scored, before and after. ``teacher`` and
    ``refine_features``: add ``--refine``'s loss (the dense encoder's
    outputs on 30 s windows) to every step. ``checkpoint``: a file the
    state is saved to every :data:`CHECKPOINT_EVERY` steps and resumed
    from (a finished run's file makes a rerun load its result)."""
    params = trainable_encoder_parameters(model)
    start = time.perf_counter()
    held = [int(i) for i in heldout]
    skip = set(held)
    train = [i for i in range(len(targets.tokens)) if i not in skip]
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    speech = np.asarray(speech_frames, dtype=np.int64)
    objective = _Objective(model, targets)
    frozen = list(model.parameters())
    states = [p.requires_grad for p in frozen]
    for p in frozen:
        p.requires_grad_(False)
    was_training = model.training
    model.eval()  # no dropout: tuned for the inference-time function

    def score(rows: list[int], full: bool) -> float | None:
        if not rows:
            return None
        with torch.no_grad():
            total = 0.0
            for i in rows:
                frames = FULL_FRAMES if full else auto_bucket(int(speech[i]), tail, buckets)
                total += float(objective(x[[i]], [i], frames))
            return total / len(rows)

    refine_x = refine_targets = refine_scales = None
    if teacher is not None and refine_features is not None and len(refine_features):
        refine_x = torch.from_numpy(np.ascontiguousarray(refine_features, dtype=np.float32))
        with torch.no_grad():
            teacher.eval()
            refine_targets = [torch.cat(c) for c in zip(*(encoder_targets(teacher.model.encoder, refine_x[i: i + 4])
                                                          for i in range(0, len(refine_x), 4)))]
            refine_scales = [t.var(dim=(0, 1), keepdim=True)[0].clamp_min(1e-6) for t in refine_targets]

    optimizer = torch.optim.Adam(params, lr=lr)
    done, losses = 0, []
    if checkpoint is not None and checkpoint.is_file():
        saved = torch.load(checkpoint, weights_only=False)
        with torch.no_grad():
            for p, value in zip(params, saved["params"]):
                p.copy_(value)
        optimizer.load_state_dict(saved["optimizer"])
        done, losses = int(saved["step"]), list(saved["losses"])
    schedule = torch.optim.lr_scheduler.LambdaLR(  # cosine decay over all steps, resumed where it was
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s + done, steps) / steps)))
    resumed = done
    before_auto = before_full = None
    if not done:
        before_auto, before_full = score(held, False), score(held, True)
    generator = np.random.default_rng([seed, done])
    groups: dict[int, list[int]] = {}
    for i in train:
        groups.setdefault(auto_bucket(int(speech[i]), tail, buckets), []).append(i)
    names = sorted(groups)
    weights = np.array([len(groups[n]) for n in names], dtype=np.float64)
    try:
        for p in params:
            p.requires_grad_(True)
        bar = tqdm(range(done, steps), desc="context tuning", unit="step", disable=not progress,
                   initial=done, total=steps)
        for step in bar:
            group = groups[names[int(generator.choice(len(names), p=weights / weights.sum()))]]
            rows = sorted(generator.choice(group, size=min(batch_size, len(group)), replace=False).tolist())
            frames = context_lengths(speech[rows], tail, buckets, generator)
            loss = objective(x[rows], rows, frames)
            if refine_x is not None:
                pick = torch.from_numpy(generator.choice(len(refine_x), size=min(4, len(refine_x)), replace=False))
                loss = loss + encoder_loss(encoder_targets(model.model.encoder, refine_x[pick]),
                                                [t[pick] for t in refine_targets], refine_scales)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(round(float(loss.detach()), 6))
            if checkpoint is not None and ((step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == steps):
                _save_checkpoint(checkpoint, step + 1, params, optimizer, losses)
    finally:
        for p, state in zip(frozen, states):
            p.requires_grad_(state)
        model.train(was_training)
    result = ContextTuneResult(
        steps=steps, seconds=time.perf_counter() - start, clips=len(train), heldout_clips=len(held),
        trained="encoder layers and final norm (conv stem, positional table and decoder frozen)",
        heldout_auto_before=before_auto, heldout_auto_after=score(held, False),
        heldout_full_before=before_full, heldout_full_after=score(held, True),
        train_loss_first=float(np.mean(losses[:10])) if losses else None,
        train_loss_last=float(np.mean(losses[-10:])) if losses else None,
        refine_windows=0 if refine_x is None else len(refine_x), resumed_from=resumed)
    log.info("context tuned %d steps in %.1f s", steps, result.seconds)
    return result
