"""The validation stage of an export: numerical parity of the graphs, then
the quality gate (the artifacts against the dense model on check sets).

The check sets are drawn balanced per speaker; the gate uses one draw
(:data:`GATE_SEED`) and ``--target-wer-increase`` another
(:data:`SEARCH_SEED`), so the gate judges clips the search did not choose on.

A multilingual model is also checked in the other languages whose speech is
installed (:data:`LANGUAGE_GATE_SETS`: each set decoded with its language
token, scored with its language's normalizer, held to the same limit as the
English sets), and on language detection (gated) and translation (reported):
:mod:`engines.validation.languages`. An English-only model skips them.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from calibration.datasets import resolve_set
from calibration.mix import LANGUAGE_SOURCES, balanced_sample
from calibration.statistics import parameter_fingerprint
from engines.validation.languages import LanguageProbe, check_languages
from engines.validation.parity import parity
from engines.validation.quality_gate import (DEFAULT_GATE_SETS, LONG_MINUTES, TranscriptCache, WindowWatch,
                                             check_set, check_sets, long_recording, run_gate)

from liteasr_export.core.cache import cache_root
from liteasr_export.core.decoding import SearchOptions
from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import split_windows
from liteasr_export.core.graphs import graph_precision
from liteasr_export.app.export.options import ExportOptions
from liteasr_export.app.runners import open_runner
from liteasr_export.core.windowed import TranscribeOptions

GATE_SEED = 0
SEARCH_SEED = 2
#: how the gate, the validation WER and the target search decode: greedy with
#: openai-whisper's temperature fallback (its ``transcribe()`` default). Both
#: models decode alike, so the comparison isolates the encoder; beam search
#: would multiply the CPU time of every export by the beam for little
#: difference in the verdict, and without fallback one loop decides a set.
GATE_DECODING = TranscribeOptions(search=SearchOptions(beam_size=1))
#: the other languages' evaluation sets a multilingual model is checked on
#: (``--gate-sets default``), when installed: real prompts and synthetic voices
LANGUAGE_GATE_SETS = tuple(f"{name}-eval" for names in LANGUAGE_SOURCES.values() for name in names)


class CheckSets(list):
    """The gate's check sets, and what a multilingual model was not checked
    on: ``missing`` (set name -> why: not installed); ``multilingual``:
    whether the other languages' sets were considered."""

    def __init__(self, checks=(), missing: dict[str, str] | None = None, multilingual: bool = False) -> None:
        super().__init__(checks)
        self.missing = dict(missing or {})
        self.multilingual = multilingual


def gate_transcriber(loaded):
    """A PyTorch runner of ``loaded`` that decodes as the gate does."""
    return open_runner("torch", loaded=loaded, settings=GATE_DECODING)


def dense_key(loaded) -> str:
    """What the dense transcripts depend on: every weight and the decoding options."""
    return f"{parameter_fingerprint(loaded.model)}|{loaded.decoding.to_json()}|{GATE_DECODING!r}"


def is_multilingual(loaded) -> bool:
    """Whether ``loaded`` (a loaded model) speaks more than English."""
    return bool(loaded.tokenizer.is_multilingual)


def transcribe_check(runner, check, multilingual: bool) -> list[str]:
    """``runner``'s transcripts of ``check`` as the gate decodes it: in the
    set's language (its token; None: the model's own) when the model is
    ``multilingual``, else in the model's language."""
    if multilingual:
        runner.configure(replace(runner.settings, language=check.language))
    return runner.transcribe_many(check.audio)


def gate_key(loaded) -> str:
    """:func:`dense_key`, marked for a multilingual model whose own prompt
    is not English: its English sets are now decoded in English, not in its
    prompt's language, so transcripts cached before must not be reused."""
    options = loaded.decoding
    own = options.prompt[options.sot_index + 1] if options.sot_index is not None else None
    english = loaded.tokenizer.language_ids.get("en")
    return dense_key(loaded) + ("|sets in their own language" if is_multilingual(loaded) and own != english else "")


def _gate_set_names(opts: ExportOptions, defaults: tuple[str, ...]) -> list[str]:
    """The sets ``--gate-sets`` names, ``default`` standing for ``defaults``."""
    if opts.gate_sets in ("", "none"):
        return []
    return list(dict.fromkeys(n.strip() for n in opts.gate_sets.replace("default", ",".join(defaults)).split(",")
                              if n.strip()))


def _add_sets(checks: CheckSets, names: list[str], opts: ExportOptions, note: Callable[[str], None],
              seed: int) -> None:
    """Append the check sets ``names`` (built-in ones that are not installed
    are skipped with a note, and listed in ``checks.missing`` when they are
    another language's)."""
    for name in names:
        try:
            if name == "long":  # real speech when installed, else the generated voices
                try:
                    clips = balanced_sample(resolve_set("fotaq", "eval"), None, seed=seed + 1)
                except DatasetError:
                    clips = resolve_set("builtin", "eval")
                checks.append(long_recording(clips, LONG_MINUTES))
            elif name != opts.eval_set:
                checks.append(check_set(name, balanced_sample(resolve_set(name, "eval"), opts.gate_clips, seed)))
        except DatasetError as exc:
            if name not in DEFAULT_GATE_SETS + LANGUAGE_GATE_SETS:
                raise
            note(f"  note: check set {name} skipped: {exc}")
            if name in LANGUAGE_GATE_SETS:
                checks.missing[name] = str(exc)


def gate_checks(opts: ExportOptions, note: Callable[[str], None] = print, seed: int = GATE_SEED,
                multilingual: bool = False) -> CheckSets:
    """The quality gate's check sets: ``--eval`` (its first ``--eval-limit``
    utterances; one set per language when it holds several) and the built-in
    sets ``--gate-sets`` names that are installed; ``multilingual`` (the
    model speaks more than English): ``default`` also names
    :data:`LANGUAGE_GATE_SETS`, and those not installed are listed in the
    result's ``missing``."""
    checks = CheckSets(check_sets(opts.eval_set, resolve_set(opts.eval_set, purpose="eval")[: opts.eval_limit]),
                       multilingual=multilingual)
    _add_sets(checks, _gate_set_names(opts, DEFAULT_GATE_SETS + (LANGUAGE_GATE_SETS if multilingual else ())),
              opts, note, seed)
    return checks


def with_language_checks(checks: list, loaded, opts: ExportOptions, note: Callable[[str], None] = print,
                         seed: int = GATE_SEED) -> list:
    """``checks`` with the other languages' sets when ``loaded`` is
    multilingual and they were not considered yet (checks built by
    :func:`gate_checks` without ``multilingual``): added to ``checks``
    itself when it is a :class:`CheckSets`, so a caller that validates
    several candidates builds them once."""
    if not is_multilingual(loaded) or (isinstance(checks, CheckSets) and checks.multilingual):
        return checks
    checks = checks if isinstance(checks, CheckSets) else CheckSets(checks)
    named = {c.name for c in checks}
    wanted = [n for n in _gate_set_names(opts, LANGUAGE_GATE_SETS) if n in LANGUAGE_GATE_SETS and n not in named]
    _add_sets(checks, wanted, opts, note, seed)
    checks.multilingual = True
    return checks


def _language_probe(runner) -> LanguageProbe:
    """Detection and translation with ``runner`` (its settings restored after translating)."""

    def translate(audios: list[np.ndarray], language: str) -> list[str]:
        settings = runner.settings
        runner.configure(replace(settings, language=language, task="translate"))
        try:
            return runner.transcribe_many(audios)
        finally:
            runner.configure(settings)

    return LanguageProbe(lambda audios: [code for code, _ in runner.detect_languages(audios)], translate)


def validate(dense, compressed, out_dir: Path, opts: ExportOptions, note: Callable[[str], None] = print,
             checks: list | None = None, margin: float | None = None) -> dict:
    """Parity of the graphs against the compressed PyTorch model, then the
    quality gate: the artifacts against the dense model on every check set
    (``checks``: :func:`gate_checks`, built once by a caller that validates
    several candidates). Raises ToleranceError on a parity failure; the
    gate's verdict is returned (the caller decides what a failure means).
    ``margin``: stop at the first set passed by no more than this many
    standard errors (a candidate that will be replaced anyway).

    A multilingual ``dense`` model is checked in its other installed
    languages too (:func:`with_language_checks`), each set decoded with its
    language token, then on language detection and translation, unless the
    gate has already failed or stopped short (the gate's time includes it)."""
    multilingual = is_multilingual(dense)
    checks = (with_language_checks(checks, dense, opts, note) if checks is not None
              else gate_checks(opts, note, multilingual=multilingual))
    start = time.perf_counter()
    reference = gate_transcriber(compressed)
    onnx = open_runner("onnx", artifacts=out_dir, threads=opts.threads, settings=GATE_DECODING)
    features = np.stack([reference.features(split_windows(a)[0]) for a in checks[0].audio[: opts.parity_clips]])
    # bf16 exports float32 graphs; the TensorRT engines are judged by the gate (their TF32 and fp16
    # kernels are not held to ONNX Runtime's float32 tolerances, and no TensorRT run was checked here)
    reports = parity(reference, onnx, features, graph_precision(opts.precision, "encoder"))
    for report in reports:
        report.raise_on_failure()
    timings = {"parity": round(time.perf_counter() - start, 2)}
    start = time.perf_counter()
    runners = [onnx]
    if opts.engine == "trt" and not opts.build_script:
        runners.append(open_runner("trt", artifacts=out_dir, settings=GATE_DECODING))
    backends = {runner.name: WindowWatch(runner.transcribe_detailed) for runner in runners}
    dense_runner = gate_transcriber(dense)

    def set_language(code: str | None) -> None:  # each set in its language's token (None: the model's own)
        for runner in (dense_runner, *runners):
            runner.configure(replace(runner.settings, language=code))

    cache = TranscriptCache((opts.cache_dir or cache_root()) / "transcripts")
    progress = note if opts.progress else None
    gate = run_gate(checks, dense_runner.transcribe_many, backends, gate_key(dense), cache,
                    opts.max_wer_increase, opts.max_disagreement, progress=progress,
                    stop_early=not opts.allow_degradation, stop_short_of_margin=margin,
                    set_language=set_language if multilingual else None)
    gate.allowed_degradation = opts.allow_degradation
    gate.multilingual, gate.not_installed = multilingual, dict(getattr(checks, "missing", {}))
    if multilingual and not gate.skipped and (gate.passed or opts.allow_degradation):
        set_language(None)
        gate.languages, failures = check_languages(checks, _language_probe(dense_runner),
                                                   {runner.name: _language_probe(runner) for runner in runners},
                                                   gate_key(dense), cache, progress=progress)
        gate.failures += failures
    timings["gate"] = round(time.perf_counter() - start, 2)
    return {"parity": [p.to_dict() for p in reports], "quality": gate, "timings_s": timings}
