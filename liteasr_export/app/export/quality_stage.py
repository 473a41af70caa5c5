"""The validation stage of an export: numerical parity of the graphs, then
the quality gate (the artifacts against the dense model on check sets).

The check sets are drawn balanced per speaker; the gate uses one draw
(:data:`GATE_SEED`) and ``--target-wer-increase`` another
(:data:`SEARCH_SEED`), so the gate judges clips the search did not choose on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from calibration.datasets import resolve_set
from calibration.mix import balanced_sample
from calibration.statistics import parameter_fingerprint
from engines.validation.parity import parity
from engines.validation.quality_gate import (DEFAULT_GATE_SETS, LONG_MINUTES, TranscriptCache, WindowWatch,
                                             check_set, long_recording, run_gate)

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


def gate_transcriber(loaded):
    """A PyTorch runner of ``loaded`` that decodes as the gate does."""
    return open_runner("torch", loaded=loaded, settings=GATE_DECODING)


def dense_key(loaded) -> str:
    """What the dense transcripts depend on: every weight and the decoding options."""
    return f"{parameter_fingerprint(loaded.model)}|{loaded.decoding.to_json()}|{GATE_DECODING!r}"


def gate_checks(opts: ExportOptions, note: Callable[[str], None] = print, seed: int = GATE_SEED) -> list:
    """The quality gate's check sets: ``--eval`` (its first ``--eval-limit``
    utterances) and the built-in sets ``--gate-sets`` names that are installed."""
    checks = [check_set(opts.eval_set, resolve_set(opts.eval_set, purpose="eval")[: opts.eval_limit])]
    names = [] if opts.gate_sets in ("", "none") else [n.strip() for n in opts.gate_sets.replace(
        "default", ",".join(DEFAULT_GATE_SETS)).split(",") if n.strip()]
    for name in dict.fromkeys(names):
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
            if name not in DEFAULT_GATE_SETS:
                raise
            note(f"  note: check set {name} skipped: {exc}")
    return checks


def validate(dense, compressed, out_dir: Path, opts: ExportOptions, note: Callable[[str], None] = print,
             checks: list | None = None, margin: float | None = None) -> dict:
    """Parity of the graphs against the compressed PyTorch model, then the
    quality gate: the artifacts against the dense model on every check set
    (``checks``: :func:`gate_checks`, built once by a caller that validates
    several candidates). Raises ToleranceError on a parity failure; the
    gate's verdict is returned (the caller decides what a failure means).
    ``margin``: stop at the first set passed by no more than this many
    standard errors (a candidate that will be replaced anyway)."""
    checks = checks if checks is not None else gate_checks(opts, note)
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
    gate = run_gate(checks, gate_transcriber(dense).transcribe_many, backends, dense_key(dense),
                    TranscriptCache((opts.cache_dir or cache_root()) / "transcripts"),
                    opts.max_wer_increase, opts.max_disagreement, progress=note if opts.progress else None,
                    stop_early=not opts.allow_degradation, stop_short_of_margin=margin)
    gate.allowed_degradation = opts.allow_degradation
    timings["gate"] = round(time.perf_counter() - start, 2)
    return {"parity": [p.to_dict() for p in reports], "quality": gate, "timings_s": timings}
