"""Audio-context tuning on tiny random Whisper models: the teacher's
targets, the context lengths drawn, what trains and what stays, the loss on
held-back clips, and resuming from a checkpoint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from liteasr_export.core.windowed import AUTO_BUCKETS, AUTO_TAIL_FRAMES
from liteasr_export.model.distillation import context_tune as ct

SPEECH = np.array([220, 380, 420, 560, 900, 260], dtype=np.int64)  # mel frames of audio in each clip


@pytest.fixture(scope="module")
def clips(random_features):
    """Six clips: random log-mel whose frames after the speech are the
    padding's constant (what a short clip padded to 30 s looks like)."""
    features = random_features(len(SPEECH), seed=5).numpy()
    for i, frames in enumerate(SPEECH):
        features[i, :, frames:] = -0.5
    return features


@pytest.fixture(scope="module")
def tokens():
    rng = np.random.default_rng(0)
    return [[3, 7] + rng.integers(10, 120, size=n).tolist() + [2] for n in (3, 5, 4, 6, 2, 5)]


@pytest.fixture(scope="module")
def dense(tiny_whisper):
    return tiny_whisper(seed=3)


def test_teacher_targets_hold_every_layer_for_every_token_and_round_trip(dense, clips, tokens) -> None:
    targets = ct.teacher_targets(dense, clips, tokens, batch_size=4, progress=False)
    total = sum(len(t) for t in tokens)
    assert len(targets.states) == dense.config.decoder_layers
    assert all(s.shape == (total, dense.config.d_model) for s in targets.states)
    # the same clip alone gives the same states: padding of a batch never leaks in
    alone = ct.teacher_targets(dense, clips[3:4], tokens[3:4], progress=False)
    offsets = targets.offsets
    for got, want in zip(alone.states, targets.states):
        torch.testing.assert_close(got, want[offsets[3]: offsets[4]], rtol=1e-4, atol=1e-5)
    again = ct.TeacherTargets.from_tensors(targets.to_tensors())
    assert again.tokens == tokens and all(torch.equal(a, b) for a, b in zip(again.states, targets.states))


def test_context_lengths_are_even_cover_the_speech_and_include_auto_and_30_s() -> None:
    rng = np.random.default_rng(1)
    drawn = [ct.context_lengths(np.array([430, 512]), AUTO_TAIL_FRAMES, AUTO_BUCKETS, rng) for _ in range(400)]
    assert all(f % 2 == 0 and 512 + ct.MIN_MARGIN_FRAMES <= f <= ct.FULL_FRAMES for f in drawn)
    assert ct.auto_bucket(512, AUTO_TAIL_FRAMES, AUTO_BUCKETS) in drawn and ct.FULL_FRAMES in drawn
    assert len(set(drawn)) > 50  # random margins: many lengths, not a few buckets


def test_tuning_lowers_the_trimmed_loss_on_held_back_clips_and_trains_the_encoder_only(dense, clips, tokens) -> None:
    targets = ct.teacher_targets(dense, clips, tokens, progress=False)
    student = copy.deepcopy(dense)
    teacher_state = {k: v.clone() for k, v in dense.state_dict().items()}
    result = ct.context_tune(student, targets, clips, SPEECH, steps=30, tail=AUTO_TAIL_FRAMES, buckets=AUTO_BUCKETS,
                             batch_size=2, lr=1e-3, heldout=[0, 3], progress=False)
    assert result.steps == 30 and result.clips == 4 and result.heldout_clips == 2
    # the student is the teacher at 30 s, so only the trimmed contexts have anything to learn
    assert result.heldout_full_before == pytest.approx(0.0, abs=1e-6)
    assert result.heldout_auto_before > 0.01
    assert result.heldout_auto_after < 0.7 * result.heldout_auto_before
    trained = {n for n, p in student.named_parameters() if not torch.equal(p, teacher_state[n])}
    assert trained and all(n.startswith("model.encoder.layers.") or n.startswith("model.encoder.layer_norm")
                           for n in trained)
    assert {n for n, _ in student.named_parameters() if n.startswith("model.encoder.layers.")} <= trained
    assert all(torch.equal(v, teacher_state[k]) for k, v in dense.state_dict().items())  # the teacher is untouched
    flags = {n: p.requires_grad for n, p in dense.named_parameters()}
    assert {n: p.requires_grad for n, p in student.named_parameters()} == flags  # the student's flags given back
    assert not ct.is_tuned(student)
    ct.mark_tuned(student)
    assert ct.is_tuned(student) and "held-back clips" in ct.describe(result.to_dict())


def test_tuning_resumes_from_its_checkpoint_and_a_finished_run_is_reloaded(dense, clips, tokens, tmp_path,
                                                                         monkeypatch) -> None:
    targets = ct.teacher_targets(dense, clips, tokens, progress=False)
    monkeypatch.setattr(ct, "CHECKPOINT_EVERY", 4)
    checkpoint = tmp_path / "tune.pt"
    calls = {"n": 0}
    real = ct._Objective.__call__

    def dies_at_step_seven(self, *args):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        return real(self, *args)

    student = copy.deepcopy(dense)
    with monkeypatch.context() as patch:
        patch.setattr(ct._Objective, "__call__", dies_at_step_seven)
        with pytest.raises(KeyboardInterrupt):
            ct.context_tune(student, targets, clips, SPEECH, steps=10, tail=AUTO_TAIL_FRAMES, buckets=AUTO_BUCKETS,
                            batch_size=2, lr=1e-3, checkpoint=checkpoint, progress=False)
    assert torch.load(checkpoint, weights_only=False)["step"] == 4
    resumed = copy.deepcopy(dense)
    result = ct.context_tune(resumed, targets, clips, SPEECH, steps=10, tail=AUTO_TAIL_FRAMES, buckets=AUTO_BUCKETS,
                             batch_size=2, lr=1e-3, checkpoint=checkpoint, progress=False)
    assert result.resumed_from == 4 and torch.load(checkpoint, weights_only=False)["step"] == 10
    reloaded = copy.deepcopy(dense)
    again = ct.context_tune(reloaded, targets, clips, SPEECH, steps=10, tail=AUTO_TAIL_FRAMES, buckets=AUTO_BUCKETS,
                            batch_size=2, lr=1e-3, checkpoint=checkpoint, progress=False)
    assert again.resumed_from == 10
    assert all(torch.equal(a, b) for a, b in zip(ct.trainable_encoder_parameters(reloaded),
                                                  ct.trainable_encoder_parameters(resumed)))
    assert any(not torch.equal(a, b) for a, b in zip(ct.trainable_encoder_parameters(reloaded),
                                                     ct.trainable_encoder_parameters(dense)))


def test_refine_loss_joins_the_same_steps(dense, clips, tokens, random_features) -> None:
    targets = ct.teacher_targets(dense, clips, tokens, progress=False)
    windows = random_features(2, seed=9).numpy()
    result = ct.context_tune(copy.deepcopy(dense), targets, clips, SPEECH, steps=3, tail=AUTO_TAIL_FRAMES,
                             buckets=AUTO_BUCKETS, batch_size=2, teacher=dense, refine_features=windows,
                             progress=False)
    assert result.refine_windows == 2 and "--refine's loss on 2 windows" in ct.describe(result.to_dict())
