"""Typed errors and exit codes. Every error names the problem and the fix;
the CLI prints them as one line and exits non-zero (tracebacks only with
``--debug``)."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable
from typing import Callable

#: exit codes of the command-line programs (liteasr-export, -transcribe, -eval, -serve; the README has the table)
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # a bad option, input file, model or artifacts folder (also argparse's usage errors)
EXIT_VALIDATION = 3  # numerical parity failed: the export was not written
EXIT_ITEMS_FAILED = 4  # liteasr-eval or liteasr-transcribe --ray finished, but some files could not be transcribed
EXIT_BUSY = 5  # another liteasr-export is writing the same --output
EXIT_QUALITY = 6  # the quality gate refused the compressed model: the export was not written
EXIT_INTERNAL = 70  # an unexpected error (a bug): run with --debug for the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM or SIGHUP

#: set by the CLI's ``--debug`` (and inherited by the processes a command
#: starts, a local Ray's workers included): the libraries' own logs and
#: warnings (ONNX Runtime, Ray) are shown only then
DEBUG_ENV = "LITEASR_DEBUG"


def debug_enabled() -> bool:
    """Whether ``--debug`` (or ``LITEASR_DEBUG=1``) asks for the libraries' logs."""
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


class UserNotice(UserWarning):
    """Something the user should know about a run that went on (audio
    normalized, a cut-off line moved aside): the CLI prints it as one line,
    where the libraries' own warnings show only with ``--debug``."""


#: how a message names what the library was given: ```name``` (a parameter,
#: or a field of an options dataclass) or ```name=value``` (that parameter
#: set to that value); see :meth:`LiteASRError.render`
NAMED = re.compile(r"(?<!`)`([A-Za-z_][A-Za-z0-9_]*)(?:=([^`]*))?`(?!`)")

#: names a parameter in a message: (name, value or None) -> text
Namer = Callable[[str, "str | None"], str]


def plain_name(name: str, value: str | None) -> str:
    """How the library itself writes a named parameter: ``target_size``,
    ``force=True``."""
    return name if value is None else f"{name}={value}"


def named(text: str) -> list[str]:
    """The parameter names a message template marks, in order."""
    return [m.group(1) for m in NAMED.finditer(text)]


class LiteASRError(Exception):
    """Base class: ``problem`` says what is wrong, ``fix`` what to do about it.

    A message names what the library was given, not a command line's flag:
    the templates mark parameters as ```target_size``` or ```force=True```,
    ``field`` is the parameter (or options field) the problem is about, and
    :meth:`render` writes the marked names, as the library does
    (``target_size``, ``force=True``) or, for a command line, as its flags
    (``--target-size``, ``--force``). ``problem`` and ``fix`` hold the
    library's wording."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, problem: str, fix: str = "", *, field: str | None = None) -> None:
        super().__init__()
        self._say(problem, fix, field)

    def _say(self, problem: str, fix: str, field: str | None) -> None:
        self.template = (problem, fix)
        self.field = field
        self.problem, self.fix = (NAMED.sub(lambda m: plain_name(m.group(1), m.group(2)), t) for t in self.template)
        self.args = (self.render(),)

    def given_as(self, field: str, fix: str | None = None) -> "LiteASRError":
        """This error, said about the caller's parameter ``field`` (named
        first, unless the message names it already) and with the caller's
        ``fix`` when given: a caller that passed a value on to a function
        under another name makes that function's error name its own."""
        problem = self.template[0]
        if field not in named(" ".join(self.template)):
            problem = f"`{field}`: {problem}"
        self._say(problem, self.template[1] if fix is None else fix, field)
        return self

    @property
    def fields(self) -> list[str]:
        """Every parameter the error is about or names: ``field`` first."""
        names = [self.field] if self.field else []
        return names + [n for n in named(" ".join(self.template)) if n not in names]

    def render(self, name: Namer = plain_name) -> str:
        """The one-line message, each marked parameter written by ``name``."""
        problem, fix = (NAMED.sub(lambda m: name(m.group(1), m.group(2)), t) for t in self.template)
        return f"{problem}. {fix}".strip() if fix else problem


class ModelSourceError(LiteASRError):
    """A model could not be found, read or recognised."""


class AudioError(LiteASRError):
    """An audio file is missing, empty, corrupt or unreadable."""


class AudioTooLongError(AudioError):
    """A recording is longer than a caller accepts (``liteasr-serve --max-audio-seconds``)."""


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


class IntegrityError(ArtifactError):
    """A file differs from the sha256 its manifest records (corrupt or modified)."""


class ShapeError(ArtifactError):
    """An output has the wrong shape."""


class OutputMismatchError(ArtifactError):
    """An artifact's outputs differ in names or count from the reference."""


class ToleranceError(LiteASRError):
    """Numerical parity failed: an output exceeded its tolerance."""

    exit_code = EXIT_VALIDATION


class EngineUnavailableError(LiteASRError):
    """A backend (TensorRT, CUDA, a provider) is not available on this machine."""


class MissingExtraError(EngineUnavailableError):
    """A command needs an optional part of the package (a pip "extra") that is
    not installed; the message is one line naming the extra to install."""

    def __init__(self, what: str, extra: str) -> None:
        problem = f"{what} needs the {extra} extra ({EXTRAS[extra][1]})"
        fix = f"pip install 'liteasr-export[{extra}]'"
        super().__init__(problem, fix)
        self.extra = extra


#: the extras a command may need (pyproject.toml's optional dependencies):
#: the modules checked by default, and the words the error names them with.
#: ``pip install liteasr-export`` alone is the runtime (ONNX Runtime, no torch)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "export": (("torch", "transformers", "safetensors", "onnx", "onnxscript", "polygraphy"),
               "torch, transformers, onnx"),
    "serve": (("ray",), "Ray"),
}


def require_extra(extra: str, what: str, modules: Iterable[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` (or
    just ``modules``, top-level names) can be imported; ``what`` is the
    command or option that needs them, as the user typed it. Nothing is
    imported: the check looks the modules up (``importlib.util.find_spec``)."""
    for module in modules if modules is not None else EXTRAS[extra][0]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken or half-removed installation
            found = False
        if not found:
            raise MissingExtraError(what, extra)


class OutputError(LiteASRError):
    """The output folder cannot be written, or must not be replaced."""


class OutputBusyError(OutputError):
    """Another export holds the lock on the same output folder."""

    exit_code = EXIT_BUSY


class QualityGateError(LiteASRError):
    """The compressed model transcribes worse than the dense one by more than
    allowed; ``gate`` holds the gate's full result (every set and backend)."""

    exit_code = EXIT_QUALITY

    def __init__(self, problem: str, fix: str = "", gate: dict | None = None, *, field: str | None = None) -> None:
        super().__init__(problem, fix, field=field)
        self.gate = gate

