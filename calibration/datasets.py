"""Speech sets: JSONL manifests, folders of audio files, the built-in
generated-speech sets, the Asterisk prompts (real speech, one speaker a
language: English, Spanish, French, Italian; in :mod:`calibration.asterisk`),
the Flight of the Amazon Queen dialogue (real speech, about 30 voices, in
:mod:`calibration.fotaq`), both read from Debian packages, and generated
speech in other languages (:mod:`calibration.synthetic`).

Sets with a calibration and an evaluation part (``builtin``, ``asterisk``,
``asterisk-LANG``, ``synth-LANG``, ``fotaq``) never share a recording
between the parts; a bare name resolves to the part for the purpose at
hand.

Loaders only list files and reference texts; decoding audio is the job of
``liteasr_export.core.frontend.load_audio``. Imports stay light (no torch, no
transformers) so the ONNX Runtime path can use them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from liteasr_export.core.errors import AudioError, DatasetError
from liteasr_export.core.frontend import check_audio_path
from liteasr_export.core.languages import WHISPER_LANGUAGES, language_problem

from .asterisk import (ASTERISK_CALIB_SHARE, ASTERISK_INSTALL, ASTERISK_LANGUAGES, ASTERISK_SKIP,  # noqa: F401
                       ASTERISK_SOUNDS_ENV, ASTERISK_TRANSCRIPTS, DEBIAN_ASTERISK_SOUND_DIRS, AsteriskLanguage,
                       asterisk_available, asterisk_language, asterisk_part, asterisk_set, asterisk_sound_dirs,
                       normalize_asterisk_text, parse_asterisk_transcripts)
from .fotaq import fotaq_set
from .synthetic import synthetic_set
from .utterances import Utterance, write_flac_atomically

__all__ = ["Utterance", "write_flac_atomically", "resolve_set"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_SETS = {"builtin-calib": "calib.jsonl", "builtin-eval": "eval.jsonl"}
#: names of the sets made of a calibration and an evaluation part
SPLIT_SETS = ("builtin", "asterisk", "fotaq")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PURPOSES = ("calib", "eval")

def load_manifest(path: str | os.PathLike[str], check_audio: bool = True) -> list[Utterance]:
    """Read a JSONL manifest: one ``{"audio": ..., "text": ...}`` object a line.

    ``audio`` is relative to the manifest's folder (or absolute); ``id``,
    ``speaker`` (or ``voice``) and ``language`` (a Whisper code: ``"es"``)
    are optional, other keys are ignored; blank lines are skipped. A line
    that holds only ``{"language": "es"}`` sets the language of the lines
    after it that name none (one language for a whole set). ``check_audio``: a line whose file is missing (or a
    folder, a FIFO, empty) rejects the manifest; without, it is listed and
    reading it fails later, for that utterance alone (an evaluation records
    it as an error item and goes on).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest not found: {path}", "check the path, or pass 'builtin' or 'asterisk'")
    fmt = 'write one JSON object per line, e.g. {"audio": "a.wav", "text": "hello there"}'
    out: list[Utterance] = []
    set_language: str | None = None
    try:
        content = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is not UTF-8 text (byte {exc.start})", f"save it as UTF-8; {fmt}") from None
    for n, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {n}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON ({exc.msg})", fmt) from None
        if not isinstance(item, dict):
            raise DatasetError(f"{where}: expected a JSON object, got {type(item).__name__}", fmt)
        language = item.get("language", set_language)
        if "language" in item and language_problem(language):
            raise DatasetError(f'{where}: {language_problem(language)} in "language"',
                               f"use one of Whisper's codes ({', '.join(WHISPER_LANGUAGES[:8])}, ...; ISO 639-1 "
                               'lower case), or leave "language" out (scored as English)')
        if set(item) == {"language"}:
            set_language = language
            continue
        audio, text = item.get("audio"), item.get("text")
        if not isinstance(audio, str) or not audio:
            raise DatasetError(f'{where}: no "audio" path', fmt)
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(f'{where}: no "text" (the reference transcript)', fmt)
        file = (path.parent / audio).resolve()
        if check_audio:
            try:
                check_audio_path(file)
            except AudioError as exc:
                raise DatasetError(f"{where}: {exc.problem}",
                                   "fix the path (relative to the manifest's folder) or remove the line") from None
        uid, speaker = item.get("id"), item.get("speaker", item.get("voice"))
        out.append(Utterance(str(file), text.strip(), str(uid) if uid is not None else str(Path(audio).with_suffix("")),
                             str(speaker) if speaker is not None else None, language))
    if not out:
        raise DatasetError(f"manifest is empty: {path}", fmt)
    return out


def audio_folder(path: str | os.PathLike[str]) -> list[Utterance]:
    """Every wav/flac/ogg/mp3 file under ``path`` (recursive, sorted); texts unknown."""
    root = Path(path)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not files:
        raise DatasetError(f"no audio files in {root}", f"put {'/'.join(AUDIO_SUFFIXES)} files there")
    return [Utterance(str(p.resolve()), None, str(p.relative_to(root).with_suffix(""))) for p in files]


def builtin_set(name: str) -> list[Utterance]:
    """The bundled generated-speech sets: 'builtin-calib' (32) or 'builtin-eval' (48)."""
    if name not in BUILTIN_SETS:
        raise DatasetError(f"unknown built-in set {name!r}", f"use one of {', '.join(BUILTIN_SETS)}")
    path = BUILTIN_DIR / BUILTIN_SETS[name]
    if not path.is_file():
        raise DatasetError(
            f"built-in set {name!r} is missing ({path})",
            "reinstall the package, or run scripts/make_builtin_speech.py in a source checkout",
        )
    return load_manifest(path)


def resolve_set(spec: str, purpose: str, check_audio: bool = True) -> list[Utterance]:
    """Turn a user's ``--calib``/``--eval`` value into utterances.

    ``spec``: a split set's name (``builtin``, ``asterisk``, ``asterisk-es``,
    ``asterisk-fr``, ``asterisk-it``, ``synth-es``, ``synth-fr``,
    ``synth-it``, ``fotaq``: the part for ``purpose``) or one part of it
    (``builtin-calib``, ``asterisk-eval``, ``asterisk-es-eval``,
    ``fotaq-eval``, ...), ``asterisk-all`` (every prompt; ``asterisk-es-all``
    ...), a manifest
    ``*.jsonl`` or a folder of audio. ``purpose``: 'calib' or 'eval'.
    ``check_audio``: as in :func:`load_manifest`, for a manifest.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    language, part = asterisk_spec(spec)
    if language is not None:
        prompts = asterisk_set(language=language)
        return prompts if part == "all" else [u for u in prompts if asterisk_part(u) == (part or purpose)]
    if spec.startswith("synth-"):
        return synthetic_set(spec, purpose)
    name, _, part = spec.partition("-")
    if name in SPLIT_SETS and part in ("", *PURPOSES):
        part = part or purpose
        if name == "builtin":
            return builtin_set(f"builtin-{part}")
        return fotaq_set(part)
    if spec.endswith(".jsonl"):
        return load_manifest(spec, check_audio)
    if Path(spec).is_dir():
        return audio_folder(spec)
    raise DatasetError(
        f"unknown speech set {spec!r} (not a set name, a .jsonl manifest or an existing folder)",
        "use builtin, asterisk, asterisk-es, asterisk-fr, asterisk-it, synth-es, synth-fr, synth-it or fotaq (or "
        "their -calib / -eval parts), asterisk-all (asterisk-es-all, ...), a path to a .jsonl manifest or a "
        "folder of wav/flac/ogg/mp3 files",
    )


def asterisk_spec(spec: str) -> tuple[str | None, str]:
    """``asterisk[-LANG][-calib|-eval|-all]`` -> (language, part: '' for the
    purpose's); (None, '') for any other name."""
    words = spec.split("-")
    if words[0] != "asterisk" or len(words) > 3:
        return None, ""
    language = words[1] if len(words) > 1 and words[1] in ASTERISK_LANGUAGES else "en"
    rest = words[2:] if len(words) > 1 and words[1] in ASTERISK_LANGUAGES else words[1:]
    if len(rest) > 1 or (rest and rest[0] not in (*PURPOSES, "all")):
        return None, ""
    return language, rest[0] if rest else ""


