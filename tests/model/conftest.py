"""Fixtures of the model tests (compression on tiny random Whisper models)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def calibrate(random_features):
    """Factory: ``calibrate(model, n=2)``, the activation statistics of a model
    on ``n`` windows of random features (seeds 100, 101, ...)."""
    from calibration.statistics import ActivationStats, accumulate, model_info

    def make(model, n=2):
        batches = [random_features(1, seed=100 + i).numpy() for i in range(n)]
        layers, windows = accumulate(model, batches)
        return ActivationStats(layers, model_info(model), n_windows=windows, n_utterances=n)

    return make
