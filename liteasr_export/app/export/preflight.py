"""Checks of every option and input before any work starts, so that a bad
value fails in a second with one line, not minutes into an export.

Each check raises a :class:`~liteasr_export.core.errors.LiteASRError` naming the
problem and the fix; none writes anything.
"""

from __future__ import annotations

from pathlib import Path

from calibration.augment import Augmenter
from calibration.mix import check_spec
from engines.validation.quality_gate import DEFAULT_GATE_SETS

from liteasr_export.core.errors import ArtifactError, EngineUnavailableError, LiteASRError, ModelSourceError, OutputError
from liteasr_export.core.manifest import load_manifest
from liteasr_export.core.output_folder import check_output, check_output_file, check_writable_folder
from liteasr_export.core.output_formats import TIMED_FORMATS, formats_of, output_path
from liteasr_export.model.sources import BUNDLED, model_kind
from liteasr_export.core.tokenizer import WhisperTokenizer, check_language

__all__ = ["check_output_file", "check_writable_folder"]  # re-exported: the CLI checks its outputs with them


def check_device(device: str, name: str = "device") -> None:
    """A torch device this machine has: ``cpu``, or ``cuda[:N]`` with a GPU;
    an error names the parameter ``name``."""
    import torch  # only when a device is checked: the ONNX Runtime path runs without torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise LiteASRError(f"unknown `{name}` {device!r}", "use cpu, cuda or cuda:N", field=name) from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise LiteASRError(f"`{name}={device}` is not supported", "use cpu, cuda or cuda:N", field=name)
    if not torch.cuda.is_available():
        raise EngineUnavailableError(f"`{name}={device}`: this PyTorch has no usable CUDA GPU",
                                     f"use `{name}=cpu`, or a CUDA build of PyTorch on a machine with a GPU",
                                     field=name)
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise EngineUnavailableError(f"`{name}={device}`: this machine has {torch.cuda.device_count()} GPU(s)",
                                     f"use `{name}=cuda:0`", field=name)


def check_export_options(opts) -> None:
    """Everything ``run_export`` will need, checked before it loads anything:
    the values and their combinations (:meth:`ExportOptions.check`), device,
    model, rank settings, speech sets, files and folders."""
    opts.check()
    check_device(opts.device)
    check_output(Path(opts.output), opts.force)
    kind = model_kind(opts.model)
    if opts.compress and kind != "lite-whisper":  # a low-rank source is exported as it is
        from liteasr_export.model.compression.rank_policies import make_policy  # torch (through lowrank): only an export checks ranks

        make_policy(opts.policy, theta=opts.theta, target_size=opts.target_size, ranks=opts.ranks, preset=opts.preset)
        if opts.stats is not None:
            if not Path(opts.stats).is_file():
                raise LiteASRError(f"`stats` {opts.stats} not found", "pass a file written by `save_stats`",
                                   field="stats")
        else:
            _about("calib", check_spec, opts.calib)
            _about("augment", Augmenter.parse, opts.augment)
            if opts.cache_dir is not None:
                check_writable_folder(opts.cache_dir, "cache_dir")
        if opts.save_stats is not None:
            check_output_file(opts.save_stats, "save_stats")
    if opts.validate:
        _about("eval_set", check_spec, opts.eval_set, "eval")
        extra = [n.strip() for n in opts.gate_sets.split(",") if n.strip() not in ("", "none", "default", "long")]
        for name in extra:
            if name not in DEFAULT_GATE_SETS:
                _about("gate_sets", check_spec, name, "eval")


def _about(field: str, check, *args) -> None:
    """``check(*args)``, its error said about the option ``field`` it checks."""
    try:
        check(*args)
    except LiteASRError as exc:
        raise exc.given_as(field) from None


def check_decoding_options(settings, engine: str, model: str | None = None, artifacts: str | None = None) -> None:
    """Decoding choices (:class:`~liteasr_export.core.windowed.TranscribeOptions`):
    numbers in range (:meth:`SearchOptions.check`), and a language and task
    the model can do, read from its tokenizer alone (before the model is loaded)."""
    settings.search.check()
    tokenizer = _tokenizer_of(engine, model, artifacts)
    if tokenizer is not None:
        check_language(tokenizer, settings.language, settings.task)


def _tokenizer_of(engine: str, model: str | None, artifacts: str | None):
    """The tokenizer a model or artifacts folder will use, or None when it
    cannot be found cheaply (loading the model then names the problem)."""
    try:
        if engine == "torch" and model is not None:
            folder = BUNDLED[model].files()[0] if model_kind(model) == "bundled" else Path(model).expanduser()
            path = folder / "tokenizer.json"
        elif artifacts is not None:
            path = load_manifest(artifacts).tokenizer_path
        else:
            return None
        return WhisperTokenizer(path) if path.is_file() else None
    except (ModelSourceError, ArtifactError):
        return None


def check_output_options(audio: list[str], fmt: str, output_dir: str | None, timestamps: bool) -> None:
    """``output_format`` and ``output_dir`` (liteasr-transcribe's) fit together."""
    if fmt in TIMED_FORMATS and not timestamps:
        raise LiteASRError(f"`output_format={fmt}` needs timestamps", "drop `timestamps=False`",
                           field="output_format")
    if output_dir is None:
        if fmt == "all":
            raise LiteASRError("`output_format=all` writes one file per format", "pass `output_dir` DIR",
                               field="output_format")
        if fmt in TIMED_FORMATS and len(audio) > 1:
            raise LiteASRError(f"{len(audio)} files cannot share one {fmt} output on stdout",
                               "pass `output_dir` DIR (one file per input)", field="output_dir")
        return
    check_writable_folder(output_dir, "output_dir")
    seen: dict[Path, str] = {}
    for path in audio:
        for one in formats_of(fmt):
            target = output_path(path, output_dir, one)
            if target in seen:
                raise OutputError(f"{seen[target]} and {path} would both be written to {target}",
                                  "rename one of them, or transcribe them into different `output_dir` folders",
                                  field="output_dir")
            seen[target] = path
            check_output_file(target, "output_dir", inputs=audio, folder=False)
