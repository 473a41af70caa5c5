"""Command-line entry points: thin wrappers over library functions.

Errors derived from :class:`LiteASRError` print as one line and exit
non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from .backends import ENGINES
from .errors import LiteASRError


def _run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    args = parser.parse_args(argv)
    try:
        return main(args)
    except LiteASRError as exc:
        if args.debug:
            raise
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    parser.add_argument("--language", default="en", help="language token for multilingual models (default en)")


def _backend_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES, default="torch", help="backend (default torch)")
    parser.add_argument("--model", default=None, help="bundled name (tiny.en, base) or model folder, for --engine torch")
    parser.add_argument("--artifacts", default=None, help="folder written by liteasr-export, for --engine onnx/trt")
    parser.add_argument("--device", default="cpu", help="torch device for --engine torch (cpu, cuda)")
    _common(parser)


def _open(args: argparse.Namespace):
    from .backends import open_transcriber

    model = args.model if args.model or args.engine != "torch" else "tiny.en"
    return open_transcriber(args.engine, model=model, artifacts=args.artifacts, threads=args.threads,
                            device=args.device, language=args.language)


def transcribe_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liteasr-transcribe", description="Transcribe audio files with a model or exported artifacts.")
    parser.add_argument("audio", nargs="+", help="wav / flac / ogg / mp3 files")
    parser.add_argument("--json", action="store_true", help='print [{"audio": path, "text": ...}]')
    _backend_args(parser)
    return parser


def _transcribe(args: argparse.Namespace) -> int:
    from .frontend import load_audio

    audio = [load_audio(path) for path in args.audio]  # fail on bad files before loading a model
    transcriber = _open(args)
    results = [{"audio": path, "text": transcriber.transcribe(pcm)} for path, pcm in zip(args.audio, audio)]
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for item in results:
            print(item["text"] if len(results) == 1 else f"{item['audio']}: {item['text']}")
    return 0


def eval_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="liteasr-eval", description="Word error rate of a backend on an evaluation set.")
    parser.add_argument("--eval", default="builtin", help="builtin (generated speech), asterisk (real speech), or a manifest .jsonl")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N utterances")
    parser.add_argument("--json", action="store_true", help='print {"wer": percent, "n": count, "items": [...]}')
    _backend_args(parser)
    return parser


def _eval(args: argparse.Namespace) -> int:
    from calibration.datasets import resolve_set

    from .evaluation import evaluate

    utterances = resolve_set(args.eval, purpose="eval")[: args.limit]
    result = evaluate(_open(args).transcribe, utterances, progress=sys.stderr.isatty())
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(f"WER {result.wer:.2f}% on {result.n} utterances ({result.errors} errors / {result.words} words), "
              f"{result.seconds:.1f} s")
    return 0


def transcribe_main(argv: Sequence[str] | None = None) -> int:
    return _run(_transcribe, transcribe_parser(), argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    return _run(_eval, eval_parser(), argv)
