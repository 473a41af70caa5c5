"""The clips ``--context-tune`` trains and scores on."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from calibration.mix import resolve_mix
from liteasr_export.app.export import context_stage
from liteasr_export.app.export.options import ExportOptions
from liteasr_export.core.frontend import load_audio, split_windows


def test_held_back_clips_are_scored_only_and_not_packed_into_the_training_windows(monkeypatch, tmp_path):
    """Every tenth single clip is held back; the packed 30 s windows (trained
    on) are made of the other clips only, so the held-back score is not
    measured on speech the tuning saw."""
    given: list[list[np.ndarray]] = []
    real = context_stage.packed_windows

    def recording(clips):
        given.append(list(clips))
        return real(clips)

    monkeypatch.setattr(context_stage, "packed_windows", recording)
    opts = ExportOptions(output=Path("unused"), calib="builtin", context_clips=12, cache_dir=tmp_path, progress=False)
    clips = context_stage.context_clips(opts, n_mels=80)
    singles = len(clips.ids) - clips.packed
    assert singles == 12 and clips.packed >= 1
    assert clips.heldout == [0, 10]
    packed_clips = [c for source in given for c in source]
    assert len(packed_clips) == singles - len(clips.heldout)
    mix = resolve_mix("builtin", "calib", 12)
    held_audio = [split_windows(load_audio(mix.utterances[i].audio))[0] for i in clips.heldout]
    assert [mix.utterances[i].id for i in clips.heldout] == [clips.ids[i] for i in clips.heldout]
    assert not any(np.array_equal(h, c) for h in held_audio for c in packed_clips)
