"""Typed errors. Every error names the problem and the fix; the CLI prints
them as one line and exits non-zero (tracebacks only with ``--debug``)."""

from __future__ import annotations


class LiteASRError(Exception):
    """Base class: ``problem`` says what is wrong, ``fix`` what to do about it."""

    exit_code = 2

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}. {fix}".strip() if fix else problem)


class ModelSourceError(LiteASRError):
    """A model could not be found, read or recognised."""


class AudioError(LiteASRError):
    """An audio file is missing, empty, corrupt or unreadable."""


class DatasetError(LiteASRError):
    """A calibration or evaluation set is missing or malformed."""


class RankError(LiteASRError):
    """A rank, threshold or rank profile is invalid for the model."""


class CalibrationError(LiteASRError):
    """Calibration statistics are missing, empty or from another model."""


class ExportError(LiteASRError):
    """A graph could not be exported."""


class ArtifactError(LiteASRError):
    """An exported artifacts folder is incomplete or inconsistent."""


class ShapeError(ArtifactError):
    """An output has the wrong shape."""


class OutputMismatchError(ArtifactError):
    """An artifact's outputs differ in names or count from the reference."""


class ToleranceError(LiteASRError):
    """Numerical parity failed: an output exceeded its tolerance."""

    exit_code = 3


class EngineUnavailableError(LiteASRError):
    """A backend (TensorRT, CUDA, a provider) is not available on this machine."""
