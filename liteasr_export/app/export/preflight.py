"""Checks of every option and input before any work starts, so that a bad
value fails in a second with one line, not minutes into an export.

Each check raises a :class:`~liteasr_export.core.errors.LiteASRError` naming the
problem and the fix; none writes anything.
"""

from __future__ import annotations

import math
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


def check_count(value: int | None, option: str) -> None:
    """``None`` (the default) or a whole number >= 1."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise LiteASRError(f"{option} must be a whole number >= 1, got {value!r}", f"pass {option} 1 or more")


def check_device(device: str) -> None:
    """A torch device this machine has: ``cpu``, or ``cuda[:N]`` with a GPU."""
    import torch  # only when a device is checked: the ONNX Runtime path runs without torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise LiteASRError(f"unknown --device {device!r}", "use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise LiteASRError(f"--device {device} is not supported", "use cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise EngineUnavailableError(f"--device {device}: this PyTorch has no usable CUDA GPU",
                                     "use --device cpu, or a CUDA build of PyTorch on a machine with a GPU")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise EngineUnavailableError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)",
                                     "use --device cuda:0")


def check_export_options(opts) -> None:
    """Everything ``run_export`` will need, checked before it loads anything:
    counts, device, model, rank settings, speech sets, files and folders."""

    for value, option in ((opts.threads, "--threads"), (opts.calib_samples, "--calib-samples"),
                          (opts.eval_limit, "--eval-limit"), (opts.parity_clips, "--parity-clips"),
                          (opts.trt_max_batch, "--max-batch")):
        check_count(value, option)
    check_device(opts.device)
    check_output(Path(opts.output), opts.force)
    kind = model_kind(opts.model)
    if opts.compress and kind != "lite-whisper":  # a low-rank source is exported as it is
        from liteasr_export.model.compression.rank_policies import make_policy  # torch (through lowrank): only an export checks ranks

        make_policy(opts.policy, theta=opts.theta, target_size=opts.target_size, ranks=opts.ranks, preset=opts.preset)
        if opts.stats is not None:
            if not Path(opts.stats).is_file():
                raise LiteASRError(f"--stats {opts.stats} not found", "pass a file written by --save-stats")
        else:
            check_spec(opts.calib)
            Augmenter.parse(opts.augment)
            if opts.cache_dir is not None:
                check_writable_folder(opts.cache_dir, "--cache-dir")
        if opts.save_stats is not None:
            check_output_file(opts.save_stats, "--save-stats")
        check_compression_options(opts)
    if opts.validate:
        check_spec(opts.eval_set, "eval")
        extra = [n.strip() for n in opts.gate_sets.split(",") if n.strip() not in ("", "none", "default", "long")]
        for name in extra:
            if name not in DEFAULT_GATE_SETS:
                check_spec(name, "eval")
        check_count(opts.gate_clips, "--gate-clips")
        for value, option in ((opts.max_wer_increase, "--max-wer-increase"),
                              (opts.max_disagreement, "--max-disagreement")):
            check_fraction_or_points(value, option, upper=None)
    if opts.target_wer_increase is not None and not opts.validate:
        raise LiteASRError("--target-wer-increase needs the quality checks", "drop --no-validate")


def check_fraction_or_points(value: float, option: str, upper: float | None = 1.0) -> None:
    """A finite number >= 0 (and <= ``upper`` when given)."""
    if not isinstance(value, (int, float)) or math.isnan(value) or value < 0 or (upper is not None and value > upper):
        limit = f"between 0 and {upper:g}" if upper is not None else "0 or more"
        raise LiteASRError(f"{option} must be {limit}, got {value!r}", f"pass {option} {limit}")


def check_compression_options(opts) -> None:
    """The settings of the steps after the factorization."""
    check_fraction_or_points(opts.shrinkage, "--shrinkage")
    for value, option in ((opts.probe_windows, "--probe-windows"), (opts.compensate, "--compensate"),
                          (opts.refine, "--refine")):
        if value:
            check_count(value, option)
    check_count(opts.refine_windows, "--refine-windows")
    if opts.target_wer_increase is not None:
        check_fraction_or_points(opts.target_wer_increase, "--target-wer-increase", upper=None)


def check_decoding_options(settings, engine: str, model: str | None = None, artifacts: str | None = None) -> None:
    """Decoding choices (:class:`~liteasr_export.core.windowed.TranscribeOptions`):
    numbers in range, and a language and task the model can do, read from
    its tokenizer alone (before the model is loaded)."""
    s = settings.search
    for value, option in ((s.beam_size, "--beam-size"), (s.best_of, "--best-of")):
        check_count(value, option)
    if not (isinstance(s.patience, (int, float)) and math.isfinite(s.patience) and s.patience > 0):
        raise LiteASRError(f"--patience must be a number > 0, got {s.patience!r}", "pass --patience 1.0 (the default)")
    if s.length_penalty is not None and not (math.isfinite(s.length_penalty) and 0 <= s.length_penalty <= 1):
        raise LiteASRError(f"--length-penalty must lie between 0 and 1, got {s.length_penalty!r}",
                           "pass an ALPHA in [0, 1], or leave it out to divide by the length")
    if not s.temperatures or s.temperatures[0] != 0:
        raise LiteASRError(f"the first fallback temperature must be 0, got {list(s.temperatures)}",
                           "start --temperatures with 0 (greedy or beam search), e.g. 0,0.2,0.4")
    if s.seed < 0:
        raise LiteASRError(f"--seed must be >= 0, got {s.seed}", "pass a whole number >= 0")
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
    """``--output-format`` and ``--output-dir`` of liteasr-transcribe fit together."""
    if fmt in TIMED_FORMATS and not timestamps:
        raise LiteASRError(f"--output-format {fmt} needs timestamps", "drop --no-timestamps")
    if output_dir is None:
        if fmt == "all":
            raise LiteASRError("--output-format all writes one file per format", "pass --output-dir DIR")
        if fmt in TIMED_FORMATS and len(audio) > 1:
            raise LiteASRError(f"{len(audio)} files cannot share one {fmt} output on stdout",
                               "pass --output-dir DIR (one file per input)")
        return
    check_writable_folder(output_dir, "--output-dir")
    seen: dict[Path, str] = {}
    for path in audio:
        for one in formats_of(fmt):
            target = output_path(path, output_dir, one)
            if target in seen:
                raise OutputError(f"{seen[target]} and {path} would both be written to {target}",
                                  "rename one of them, or transcribe them into different --output-dir folders")
            seen[target] = path
            check_output_file(target, "--output-dir", inputs=audio, folder=False)
