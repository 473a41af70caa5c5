"""Command-line entry points: thin wrappers over library functions.

Errors derived from :class:`LiteASRError` print as one line and exit
non-zero; ``--debug`` shows the traceback instead. Any other exception is a
bug: one line, "run with --debug for details", exit code 70. SIGTERM and
SIGHUP unwind like Ctrl-C, so temporary files are removed. The exit codes
are in :mod:`liteasr_export.core.errors` and the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
import warnings
from dataclasses import MISSING, fields, replace
from pathlib import Path
from typing import Callable, NoReturn, Sequence

from calibration.datasets import resolve_set

from liteasr_export.app.runners import ENGINES, TORCH_MODULES, open_runner
from liteasr_export.core.decoding import DEFAULT_TEMPERATURES, SearchOptions
from liteasr_export.core.choices import Choice, option_of
from liteasr_export.core.errors import (DEBUG_ENV, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_ITEMS_FAILED, EXIT_TERMINATED,
                     LiteASRError, Namer, RankError, UserNotice, plain_name, require_extra)
from liteasr_export.core.evaluation import UNSTATED, evaluate, merge, with_references
from liteasr_export.core.frontend import load_audio
from liteasr_export.core.interrupts import Terminated, signals_as_interrupts
from liteasr_export.app.export.options import ExportOptions, field_types
from liteasr_export.core.output_formats import FORMATS, WRITERS, formats_of, output_path, write_atomic
from liteasr_export.core.output_folder import path_problem
from liteasr_export.app.export.preflight import (check_decoding_options, check_device, check_output_file, check_output_options,
                        check_writable_folder)
from liteasr_export.app.ray_jobs.cluster import LOCAL, is_address
from liteasr_export.core.windowed import TranscribeOptions, parse_audio_context


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors on one line (``--help`` shows the usage).
    ``aliases``: library parameters the command passes its options to under
    another name (``cache_dir``: ``ort_cache``), so that their errors show
    the option's flag (:func:`flag_namer`)."""

    aliases: dict[str, str] = {}

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}. See {self.prog} --help\n")


def _count(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def _number_or_off(text: str) -> float | None:
    """argparse type: a finite number, or ``off`` (the check is disabled)."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or 'off', got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"must be a finite number or 'off', got {text!r}")
    return value


def _temperatures(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated temperatures, each >= 0."""
    try:
        values = tuple(float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated numbers, got {text!r}") from None
    if not values or any(not 0 <= t <= 10 for t in values):
        raise argparse.ArgumentTypeError(f"temperatures must lie between 0 and 10, got {text!r}")
    return values


def _path(text: str) -> str:
    """argparse type: a path the system can look up (not a name too long for
    the file system); whether it exists is checked where it is used."""
    problem = path_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def _file_path(text: str) -> Path:
    return Path(_path(text))


def _audio_context(text: str) -> int | str:
    """argparse type: ``--audio-context`` (full, auto, seconds or mel frames)."""
    try:
        return parse_audio_context(text)
    except LiteASRError as exc:
        raise argparse.ArgumentTypeError(exc.render(lambda name, value: "--audio-context")) from None


def _path_list(text: str) -> str:
    """argparse type: comma-separated names or paths, each one as :func:`_path`."""
    for part in text.split(","):
        _path(part.strip())
    return text


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _warn(prog: str, message, category: type, debug: bool) -> None:
    """Warnings meant for the user (audio normalized, a cut-off line moved
    aside...) as one line; the libraries' deprecation notices only with --debug."""
    if debug or issubclass(category, UserNotice):
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)


def _run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    debug_env = os.environ.get(DEBUG_ENV)
    if args.debug:  # the libraries' logs (ONNX Runtime, Ray), here and in the processes a command starts
        os.environ[DEBUG_ENV] = "1"
    show_warning = warnings.showwarning
    warnings.showwarning = lambda message, category, *rest, **kw: _warn(parser.prog, message, category, args.debug)
    try:
        with signals_as_interrupts():
            return main(args)
    except LiteASRError as exc:
        if args.debug:  # the traceback, then the same line and exit code as without --debug
            traceback.print_exc()
        print(f"{parser.prog}: error: {_one_line(exc.render(flag_namer(parser)))}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print(f"{parser.prog}: terminated ({exc})", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: say what, briefly; the traceback is one flag away
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else " (run with --debug for details)"
        print(f"{parser.prog}: internal error: {type(exc).__name__}: {_one_line(exc)[:300]}{hint}", file=sys.stderr)
        return EXIT_INTERNAL
    finally:
        warnings.showwarning = show_warning
        if debug_env is None:
            os.environ.pop(DEBUG_ENV, None)
        else:
            os.environ[DEBUG_ENV] = debug_env


def _debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def _common(parser: argparse.ArgumentParser) -> None:
    _debug(parser)
    parser.add_argument("--threads", type=_count, default=None, help="CPU threads for the backend")


def _decoding_args(parser: argparse.ArgumentParser, language: str | None, timestamps: bool,
                   language_default: str | None = None) -> None:
    """Decoding options shared by liteasr-transcribe and liteasr-eval
    (openai-whisper's defaults; see liteasr_export.core.decoding.SearchOptions).
    ``language_default``: what the help says the default is (default ``language``)."""
    d = SearchOptions()
    g = parser.add_argument_group("decoding")
    g.add_argument("--language", default=language,
                   help=f"language code, or auto: detect it from each file's first 30 s (multilingual models; "
                        f"default {language_default or language})")
    g.add_argument("--task", choices=("transcribe", "translate"), default="transcribe",
                   help="translate: speech in any language to English text (multilingual models)")
    g.add_argument("--beam-size", type=_count, default=d.beam_size,
                   help=f"beams in beam search (default {d.beam_size}; 1: greedy)")
    g.add_argument("--patience", type=float, default=d.patience,
                   help="beam search stops once beam-size x patience candidates finished (default 1.0)")
    g.add_argument("--length-penalty", type=float, default=None,
                   help="rank candidates by log-probability / ((5 + length) / 6) ** ALPHA, ALPHA in [0, 1] "
                        "(default: / length)")
    g.add_argument("--no-fallback", dest="fallback", action="store_false",
                   help="decode each window once at temperature 0 and keep it (no fallback, no silence skipping)")
    g.add_argument("--temperatures", type=_temperatures, default=DEFAULT_TEMPERATURES,
                   help="fallback temperatures, tried in turn while a window fails a threshold "
                        "(default 0,0.2,0.4,0.6,0.8,1.0)")
    g.add_argument("--best-of", type=_count, default=d.best_of,
                   help=f"samples per window at temperatures > 0, the likeliest kept (default {d.best_of})")
    g.add_argument("--compression-ratio-threshold", type=_number_or_off, default=d.compression_ratio_threshold,
                   help="a window whose text compresses better than this is a loop: fall back (default 2.4; off)")
    g.add_argument("--logprob-threshold", type=_number_or_off, default=d.logprob_threshold,
                   help="fall back when the average log-probability is below this (default -1.0; off)")
    g.add_argument("--no-speech-threshold", type=_number_or_off, default=d.no_speech_threshold,
                   help="skip a window as silence when its no-speech probability is above this and the "
                        "log-probability is below --logprob-threshold (default 0.6; off)")
    g.add_argument("--seed", type=int, default=d.seed, help="seed of the fallback's sampling (default 0)")
    g.add_argument("--timestamps", action=argparse.BooleanOptionalAction, default=timestamps,
                   help="decode timestamps: segments, and long audio moves on by its last complete segment; "
                        "without, long audio is cut in quiet moments and its windows decoded together "
                        f"(default {'on' if timestamps else 'off'})")
    g.add_argument("--batch-size", type=_count, default=8,
                   help="30 s windows decoded together, across files (default 8)")
    g.add_argument("--audio-context", type=_audio_context, default=None, metavar="full|auto|N",
                   help="audio the encoder sees per window (default: the export's, auto when it was tuned with "
                        "--context-tune, else full): full (30 s, Whisper's padding), auto "
                        "(each window's audio plus 1 s, in 3 to 30 s steps; a window that fails on it "
                        "is decoded again on 30 s), or N seconds (10, 7.5s) or mel frames (1000f). Stock "
                        "models lose many words on short real speech (see the README): keep full for them. "
                        "Needs an export from this version (onnx) or --engine torch")


def _settings(args: argparse.Namespace):
    """The decoding choices of the command line as TranscribeOptions."""
    search = SearchOptions(beam_size=args.beam_size, patience=args.patience, length_penalty=args.length_penalty,
                           temperatures=tuple(args.temperatures), best_of=args.best_of,
                           compression_ratio_threshold=args.compression_ratio_threshold,
                           logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold,
                           seed=args.seed)
    if not args.fallback:
        search = search.without_fallback()
    return TranscribeOptions(search=search, timestamps=args.timestamps, language=args.language, task=args.task,
                             audio_context=args.audio_context)


#: the runtime's parameters that liteasr-transcribe, -eval and -serve fill from their options
_RUNTIME_ALIASES = {"cache_dir": "ort_cache", "providers": "provider", "artifacts_dir": "artifacts"}


def _backend_args(parser: argparse.ArgumentParser) -> None:
    parser.aliases = _RUNTIME_ALIASES
    parser.add_argument("--engine", choices=list(ENGINES), default="torch", help="backend (default torch)")
    parser.add_argument("--model", type=_path, default=None,
                        help="bundled name (tiny.en, base) or model folder, for --engine torch")
    parser.add_argument("--artifacts", type=_path, default=None, help="folder written by liteasr-export, for --engine onnx/trt")
    parser.add_argument("--device", default="cpu", help="torch device for --engine torch (cpu, cuda)")
    parser.add_argument("--provider", default=None, help="ONNX Runtime providers in order, e.g. tensorrt,cuda,cpu (default cpu)")
    parser.add_argument("--ort-cache", type=_path, default=None,
                        help="folder for ONNX Runtime's optimized graphs (faster start)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the sha256 check of the artifacts (see the README)")
    _common(parser)


def _model(args: argparse.Namespace) -> str | None:
    return args.model if args.model or args.engine != "torch" else "tiny.en"


def _check_backend_args(args: argparse.Namespace) -> None:
    """The options of transcribe and eval that can be checked before any work."""
    if args.engine != "torch" and args.artifacts is None:
        raise LiteASRError(f"--engine {args.engine} needs exported artifacts",
                           "pass --artifacts OUT (made by liteasr-export)")
    if args.engine == "torch":
        require_extra("export", "--engine torch", TORCH_MODULES)
        check_device(args.device)
    if args.ort_cache is not None:
        check_writable_folder(args.ort_cache, "ort_cache")
    check_decoding_options(_settings(args), args.engine, _model(args), args.artifacts)


def _open(args: argparse.Namespace):
    language = args.language if args.language not in (None, "auto") else "en"
    return open_runner(args.engine, model=_model(args), artifacts=args.artifacts, threads=args.threads,
                       device=args.device, language=language, providers=args.provider,
                       ort_cache=args.ort_cache, verify=args.verify, settings=_settings(args),
                       batch_size=args.batch_size)


class _TranscribeParser(_Parser):
    """``--ray [ADDR] INPUTS...``: a value of ``--ray`` that is no cluster
    address is the first input (argparse cannot tell them apart)."""

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed = super().parse_args(args, namespace)
        if parsed.ray is not None and not is_address(parsed.ray):
            parsed.audio.insert(0, parsed.ray)
            if path_problem(parsed.ray):
                self.error(f"argument audio: {path_problem(parsed.ray)}")
            parsed.ray = LOCAL
        if not parsed.audio:
            self.error("the following arguments are required: audio")
        return parsed


def transcribe_parser() -> argparse.ArgumentParser:
    parser = _TranscribeParser(prog="liteasr-transcribe",
                               description="Transcribe audio files with a model or exported artifacts.")
    parser.add_argument("audio", nargs="*", type=_path, help="wav / flac / ogg / mp3 files")
    parser.add_argument("--output-format", "-f", choices=FORMATS, default="txt",
                        help="txt (default), json (segments, language, and how each window was decoded), "
                             "srt, vtt or tsv subtitles, or all of them (with --output-dir)")
    parser.add_argument("--json", dest="output_format", action="store_const", const="json",
                        help="the same as --output-format json")
    parser.add_argument("--output-dir", "-o", type=_path, default=None,
                        help="write one file per input, AUDIO_STEM.FORMAT, here (default: print)")
    ray = parser.add_argument_group("batch jobs on Ray Data (the [serve] extra)")
    ray.add_argument("--ray", nargs="?", const=LOCAL, default=None, metavar="ADDR",
                     help="transcribe on Ray Data: on a local Ray instance, or on the cluster at ADDR (auto, "
                          "ray://HEAD:10001); AUDIO may then also be folders, .jsonl manifests or set names "
                          "(asterisk-all); needs --artifacts and --output")
    ray.add_argument("--output", type=_path, default=None, metavar="RESULTS.jsonl",
                     help="--ray: one JSON record per file, appended as files finish; a rerun skips the files "
                          "already recorded")
    ray.add_argument("--actors", type=_count, default=None,
                     help="--ray: transcribers in the actor pool (default: the cluster's CPUs / --threads)")
    ray.add_argument("--retry-failed", action="store_true",
                     help="--ray: transcribe again the files the output records as failed")
    _backend_args(parser)
    _decoding_args(parser, language="auto", timestamps=True)
    return parser


def _transcribe_on_ray(args: argparse.Namespace) -> int:
    """``--ray``: a resumable Ray Data job writing JSON lines."""
    require_extra("serve", "--ray")
    from liteasr_export.app.ray_jobs.transcribe import transcribe_job  # Ray only for --ray

    if args.artifacts is None or args.engine == "trt":
        raise LiteASRError("--ray runs ONNX Runtime transcribers on exported artifacts",
                           "pass --artifacts OUT (made by liteasr-export)")
    if args.output is None:
        raise LiteASRError("--ray needs a results file", "pass --output results.jsonl")
    args.engine = "onnx"
    _check_backend_args(args)
    check_output_file(args.output, "output", inputs=args.audio)
    summary = transcribe_job(args.audio, args.output, args.artifacts, _settings(args), address=args.ray,
                             batch_size=args.batch_size, actors=args.actors, threads=args.threads or 1,
                             provider=args.provider, ort_cache=args.ort_cache, verify=args.verify,
                             retry_failed=args.retry_failed)
    wer = f", WER {summary.wer:.2f}% on the {summary.scored} with a reference" if summary.wer is not None else ""
    print(f"{summary.output}: {summary.files} files, {summary.skipped} already done, {summary.transcribed} "
          f"transcribed now, {summary.failed} failed now{wer}")
    if summary.failed_total:
        print(f"liteasr-transcribe: error: {summary.failed_total} file(s) could not be transcribed; their records "
              f"in {summary.output} say why (--retry-failed tries them again)", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    if args.ray is not None:
        return _transcribe_on_ray(args)
    if args.output is not None:
        raise LiteASRError("--output (a JSON-lines results file) goes with --ray",
                           "add --ray, or use --output-dir DIR for one file per input")
    _check_backend_args(args)
    check_output_options(args.audio, args.output_format, args.output_dir, args.timestamps)
    audio = [load_audio(path) for path in args.audio]  # fail on bad files before loading a model
    transcripts = _open(args).transcribe_detailed(audio)
    if args.output_dir is not None:
        for path, transcript in zip(args.audio, transcripts):
            for fmt in formats_of(args.output_format):
                write_atomic(output_path(path, args.output_dir, fmt), WRITERS[fmt](transcript, path))
    elif args.output_format == "json":
        items = [{"audio": path, **t.to_dict()} for path, t in zip(args.audio, transcripts)]
        print(json.dumps(items, ensure_ascii=False, indent=2))
    elif args.output_format == "txt":
        for path, t in zip(args.audio, transcripts):
            print(t.text if len(args.audio) == 1 else f"{path}: {t.text}")
    else:
        sys.stdout.write(WRITERS[args.output_format](transcripts[0], args.audio[0]))
    return 0


def eval_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="liteasr-eval", description="Word error rate of a backend on an evaluation set.")
    parser.add_argument("--eval", type=_path, default="builtin",
                        help="builtin (generated speech), asterisk (real speech; asterisk-es, asterisk-fr, "
                             "asterisk-it in other languages), synth-es, synth-fr, synth-it (generated), or a "
                             'manifest .jsonl (a line may give its "language")')
    parser.add_argument("--limit", type=_count, default=None, help="evaluate only the first N utterances")
    parser.add_argument("--json", action="store_true",
                        help='print {"wer": percent, "cer": percent, "n": count, "languages": {code: {...}}, '
                             '"items": [...]}')
    _backend_args(parser)
    _decoding_args(parser, language=None, timestamps=False,
                   language_default="each item's own (the set's or the manifest's), English where none is given; "
                                    "given, it is used for every item, each still scored in its own language")
    return parser


def _decode_languages(args: argparse.Namespace, utterances: list) -> dict:
    """{language to decode in: positions of the items}: ``--language`` for
    all, else each item's own (None: the model's, English)."""
    groups: dict = {}
    for index, u in enumerate(utterances):
        groups.setdefault(args.language or u.language, []).append(index)
    return groups


def _configure_language(transcriber, settings: TranscribeOptions, language: str | None, count: int,
                        args: argparse.Namespace) -> None:
    """Decode in ``language`` from now on; an English-only model given
    items in another language is an error before anything is decoded, not
    a WER over English guesses."""
    try:
        transcriber.configure(replace(settings, language=language))
    except LiteASRError as exc:
        if args.language is not None:
            raise
        raise LiteASRError(f"--eval {args.eval}: {count} item(s) are in language {language!r}, "
                           f"which the model cannot decode ({exc.problem})",
                           "evaluate them with a multilingual model (e.g. --model base), or pass --language en "
                           "to decode every item as English anyway") from None


def _eval(args: argparse.Namespace) -> int:
    _check_backend_args(args)
    # a manifest's missing or unreadable file is an error item (exit 4), not the end of the evaluation
    utterances = with_references(resolve_set(args.eval, purpose="eval", check_audio=False)[: args.limit],
                                 f"--eval {args.eval}")
    transcriber = _open(args)
    settings, groups = _settings(args), _decode_languages(args, utterances)
    for language, indices in groups.items():  # every language checked before any decoding
        _configure_language(transcriber, settings, language, len(indices), args)
    parts = []
    for language, indices in groups.items():
        _configure_language(transcriber, settings, language, len(indices), args)
        scoring = args.language if args.language not in (None, "auto") else None
        parts.append((indices, evaluate(transcriber.transcribe, [utterances[i] for i in indices],
                                        progress=sys.stderr.isatty(), keep_going=True,
                                        transcribe_many=transcriber.transcribe_many, chunk=4 * args.batch_size,
                                        language=scoring)))
    result = merge(parts)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"WER {result.wer:.2f}% (CER {result.cer:.2f}%) on {result.n} utterances ({result.errors} errors / "
              f"{result.words} words), {result.seconds:.1f} s")
        if len(result.languages) > 1 or set(result.languages) - {"en", UNSTATED}:
            print(result.table())
    if result.failed:
        first = next(item for item in result.items if item.error)
        print(f"liteasr-eval: error: {result.failed} utterance(s) could not be transcribed and are not in "
              f"the WER (first: {_one_line(first.error)})", file=sys.stderr)
        return EXIT_ITEMS_FAILED
    return 0


def transcribe_main(argv: Sequence[str] | None = None) -> int:
    return _run(_transcribe, transcribe_parser(), argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    return _run(_eval, eval_parser(), argv)


def _positive(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number_or_off(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_or_off(text: str) -> float | None:
    """argparse type: a finite number > 0, or ``off``."""
    value = _number_or_off(text)
    if value is not None and value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 or 'off', got {text!r}")
    return value


def _seconds(text: str) -> float:
    """argparse type: a finite number of seconds >= 0."""
    value = _number_or_off(text)
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    value = _count(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {text!r}")
    return value


def serve_parser() -> argparse.ArgumentParser:
    from liteasr_export.app.serve.openai_api import (DEFAULT_BATCH_WAIT_S, DEFAULT_MAX_AUDIO_SECONDS, DEFAULT_MAX_BATCH,  # no Ray there
                                   DEFAULT_MAX_UPLOAD_MB)

    parser = _Parser(prog="liteasr-serve",
                     description="OpenAI-compatible transcription service (POST /v1/audio/transcriptions) on Ray Serve, "
                                 "batching requests across clients.")
    parser.add_argument("--artifacts", type=_path, required=True, help="folder written by liteasr-export")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="join the Ray cluster at ADDR (auto, ray://HEAD:10001); default: start Ray on this "
                             "machine and stop it on exit")
    parser.add_argument("--replicas", type=_count, default=1, help="replicas of the model (default 1)")
    parser.add_argument("--replica-cpus", type=_positive, default=1.0,
                        help="CPUs Ray reserves for each replica (default 1)")
    parser.add_argument("--num-cpus", type=_count, default=None,
                        help="CPUs of the local Ray instance (default: all; ignored with --address)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8000, help="port (default 8000)")
    parser.add_argument("--max-batch-size", type=_count, default=DEFAULT_MAX_BATCH,
                        help=f"requests decoded together by a replica (default {DEFAULT_MAX_BATCH}; 1: no batching)")
    parser.add_argument("--batch-wait-timeout", type=_seconds, default=DEFAULT_BATCH_WAIT_S,
                        help=f"seconds a batch waits to fill up (default {DEFAULT_BATCH_WAIT_S:g})")
    parser.add_argument("--max-upload-mb", type=_positive, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest audio upload accepted, in MB (default {DEFAULT_MAX_UPLOAD_MB:g}, OpenAI's limit)")
    parser.add_argument("--max-audio-seconds", type=_positive_or_off, default=DEFAULT_MAX_AUDIO_SECONDS,
                        help="longest recording accepted, read from its header before decoding (default "
                             f"{DEFAULT_MAX_AUDIO_SECONDS:g}; off: no limit)")
    parser.aliases = _RUNTIME_ALIASES
    parser.add_argument("--provider", default=None, help="ONNX Runtime providers in order, e.g. cuda,cpu (default cpu)")
    parser.add_argument("--ort-cache", type=_path, default=None,
                        help="folder for ONNX Runtime's optimized graphs (faster start)")
    _common(parser)
    _decoding_args(parser, language="auto", timestamps=True)
    return parser


def _serve(args: argparse.Namespace) -> int:
    require_extra("serve", "liteasr-serve", ("ray", "fastapi"))
    from liteasr_export.app.serve.service import ServiceConfig, run_service

    if args.ort_cache is not None:
        check_writable_folder(args.ort_cache, "ort_cache")
    check_decoding_options(_settings(args), "onnx", None, args.artifacts)
    threads = args.threads or max(1, round(args.replica_cpus))
    config = ServiceConfig(args.artifacts, _settings(args), max_batch_size=args.max_batch_size,
                           batch_wait_timeout_s=args.batch_wait_timeout, max_upload_mb=args.max_upload_mb,
                           max_audio_seconds=args.max_audio_seconds,
                           threads=threads, provider=args.provider, ort_cache=args.ort_cache,
                           window_batch_size=args.batch_size)
    run_service(config, address=args.address, host=args.host, port=args.port, replicas=args.replicas,
                replica_cpus=args.replica_cpus, num_cpus=args.num_cpus)
    return 0


def serve_main(argv: Sequence[str] | None = None) -> int:
    return _run(_serve, serve_parser(), argv)


#: the text readers of declared options (``Option.text``); others read their field's type
_READERS: dict[str | None, Callable[[str], object]] = {"path": _path, "paths": _path_list, "count": _count}


def _declared_arguments(parser: argparse.ArgumentParser, options: type) -> None:
    """One argparse option per field of the dataclass ``options``, from its
    declaration (:class:`~liteasr_export.core.choices.Option`): flags, help,
    help section, choices (a :class:`Choice` field's values) and default."""
    types = field_types(options)
    parser.aliases = {fed: f.name for f in fields(options) for fed in option_of(f).feeds}  # type: ignore[attr-defined]
    groups: dict[str | None, argparse._ActionsContainer] = {None: parser}
    defaults = {}
    for f in fields(options):
        how = option_of(f)
        if not how.cli:
            continue
        if how.group not in groups:
            groups[how.group] = parser.add_argument_group(how.group)
        where = groups[how.group]
        if how.consts:
            many = where.add_mutually_exclusive_group() if len(how.consts) > 1 else where
            for flag, value, text in how.consts:
                many.add_argument(flag, action="store_const", const=value, dest=f.name, help=text)
        elif how.switch:
            where.add_argument(how.switch, dest=f.name, action="store_false" if f.default else "store_true",
                               help=how.help)
        else:
            kind = types[f.name]
            choice = isinstance(kind, type) and issubclass(kind, Choice)
            read = _READERS[how.text] if how.text else (str if choice else kind)
            where.add_argument(*(how.flags or ("--" + f.name.replace("_", "-"),)), dest=f.name, type=read,
                               help=how.help, **({"choices": kind.values()} if choice else {}), **how.extra)
        if f.default is not MISSING and "default" not in how.extra:
            defaults[f.name] = f.default
    parser.set_defaults(**defaults)


def export_parser() -> argparse.ArgumentParser:
    """Built from :class:`ExportOptions`' declaration (flags, help, choices
    and defaults declared once there), and ``--debug``."""
    parser = _Parser(
        prog="liteasr-export",
        description="Compress Whisper's encoder (LiteASR low-rank), export ONNX graphs, build engines, validate.",
    )
    _declared_arguments(parser, ExportOptions)
    _debug(parser)
    return parser


def export_defaults() -> dict:
    """Every ``liteasr-export`` option's default, read from :class:`ExportOptions`."""
    return {f.name: f.default for f in fields(ExportOptions) if f.default is not MISSING}


def _flags(parser: argparse.ArgumentParser) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """A command line's flags by the field (argparse ``dest``) they set: the
    flag that takes a value, and the flags that set one value each (``--fp16``:
    ``precision=fp16``, ``--no-validate``: ``validate=False``)."""
    takes: dict[str, str] = {}
    sets: dict[str, dict[str, str]] = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if not longs or action.dest == "help":
            continue
        if isinstance(action, argparse.BooleanOptionalAction):
            sets.setdefault(action.dest, {}).update({"True": longs[0], "False": longs[1]})
        elif isinstance(action, argparse._StoreConstAction):  # store_true and store_false too
            sets.setdefault(action.dest, {})[str(action.const)] = longs[0]
        else:
            takes.setdefault(action.dest, longs[0])
    return takes, sets


def field_flags(parser: argparse.ArgumentParser) -> dict[str, str]:
    """field -> how the command line names it (``eval_limit``: ``--eval-limit``)."""
    takes, sets = _flags(parser)
    named = {**{name: "/".join(flags.values()) for name, flags in sets.items()}, **takes}
    return {**{alias: named[field] for alias, field in getattr(parser, "aliases", {}).items()}, **named}


def flag_namer(parser: argparse.ArgumentParser) -> Namer:
    """Writes the parameters an error names (:meth:`LiteASRError.render`) as
    this command line's flags: ``target_size`` -> ``--target-size``,
    ``language=de`` -> ``--language de``, ``validate=False`` -> ``--no-validate``."""
    takes, sets = _flags(parser)
    aliases = getattr(parser, "aliases", {})

    def name(field: str, value: str | None) -> str:
        field = aliases.get(field, field)
        if value is not None and value in sets.get(field, {}):
            return sets[field][value]
        if field in takes:
            return takes[field] if value is None else f"{takes[field]} {value}"
        if field in sets and value is None:
            return "/".join(sets[field].values())
        return plain_name(field, value)
    return name


def _check_preset(args: argparse.Namespace) -> None:
    """A preset sets the rank policy and its settings: naming them as well is a conflict."""
    if args.preset is None:
        return
    given = [flag for flag, value in (("--policy", args.policy), ("--theta", args.theta),
                                      ("--target-size", args.target_size)) if value is not None]
    if given:
        raise RankError(f"--preset {args.preset} sets the rank policy and its settings; {', '.join(given)} "
                        "would be ignored", f"drop --preset, or drop {', '.join(given)}")


def _export(args: argparse.Namespace) -> int:
    require_extra("export", "liteasr-export")
    if args.ray is not None:
        require_extra("serve", "--ray")
    from liteasr_export.app.export.pipeline import run_export  # torch and transformers: only an export needs them, not transcribe or eval

    _check_preset(args)
    defaults = export_defaults()
    # an option left out (None) that the command line does not default (--policy) takes the declared default
    values = {k: v for k, v in vars(args).items()
              if k in ExportOptions.__dataclass_fields__ and (v is not None or defaults.get(k) is None)}
    values["output"] = Path(args.output or Path("out") / Path(str(args.model)).name)
    result = run_export(ExportOptions(**values))
    summary = result.summary
    print(f"\noutputs: {result.output}\nmanifest: {result.manifest}\nreport: {result.report}")
    comp = summary.get("compression")
    if comp:
        print(f"encoder size: {100 * comp['size_ratio']:.1f}% of dense, FLOPs {100 * comp['flops_ratio']:.1f}%")
    validation = summary.get("validation")
    if isinstance(validation, dict):
        gate = validation["quality"]
        for row in gate["sets"]:
            for backend, agree in row["agreement"].items():
                wer = (f"WER {row['dense_wer']:.2f}% dense -> {row['wer'][backend]:.2f}% "
                       f"({row['increase'][backend]:+.2f} ± {row['increase_se'][backend]:.2f})"
                       if row["labeled"] else "no references")
                print(f"{row['name']} ({row['utterances']} clips): {wer}, {agree:.2f}% of words differ from dense [{backend}]")
        for step in validation.get("default_size_steps", [])[:-1]:
            print(f"default size: {100 * step['size_ratio']:.1f}% of dense did not pass with margin, stepped up")
        print("quality gate: " + ("passed" if gate["passed"] else "FAILED, written anyway (--allow-degradation)"))
    else:
        print("quality: not checked (--no-validate)")
    from liteasr_export.app.export.pipeline import describe_timings  # loaded already: the export ran

    print("stage times: " + ", ".join(describe_timings(result.timings)))
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    return _run(_export, export_parser(), argv)
