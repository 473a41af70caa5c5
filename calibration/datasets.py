"""Speech sets: JSONL manifests, folders of audio files, the built-in
generated-speech sets, the Asterisk prompts (real speech, one speaker) and the
Flight of the Amazon Queen dialogue (real speech, about 30 voices, in
:mod:`calibration.fotaq`), both read from Debian packages.

Sets with a calibration and an evaluation part (``builtin``, ``asterisk``,
``fotaq``) never share a recording between the parts; a bare name resolves
to the part for the purpose at hand.

Loaders only list files and reference texts; decoding audio is the job of
``liteasr_export.core.frontend.load_audio``. Imports stay light (no torch, no
transformers) so the ONNX Runtime path can use them.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import re
from pathlib import Path

import numpy as np

from liteasr_export.core.cache import cache_root
from liteasr_export.core.errors import AudioError, DatasetError
from liteasr_export.core.frontend import check_audio_path

from .fotaq import fotaq_set
from .utterances import Utterance, write_flac_atomically

__all__ = ["Utterance", "write_flac_atomically", "resolve_set"]

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
BUILTIN_SETS = {"builtin-calib": "calib.jsonl", "builtin-eval": "eval.jsonl"}
#: names of the sets made of a calibration and an evaluation part
SPLIT_SETS = ("builtin", "asterisk", "fotaq")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
PURPOSES = ("calib", "eval")

#: environment variable naming the folders (``:``-separated) to look for the
#: English G.722 prompts in, instead of the Debian package's
ASTERISK_SOUNDS_ENV = "LITEASR_ASTERISK_SOUNDS"
DEBIAN_ASTERISK_SOUND_DIRS = (
    Path("/usr/share/asterisk/sounds/en"),
    Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
    Path("/var/lib/asterisk/sounds/en"),
)
ASTERISK_TRANSCRIPTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")


def asterisk_sound_dirs() -> tuple[Path, ...]:
    """Where the prompts are looked for: ``$LITEASR_ASTERISK_SOUNDS`` or Debian's folders."""
    named = os.environ.get(ASTERISK_SOUNDS_ENV)
    return tuple(Path(p) for p in named.split(os.pathsep) if p) if named is not None else DEBIAN_ASTERISK_SOUND_DIRS
ASTERISK_INSTALL = "run: apt-get install asterisk-core-sounds-en-g722 asterisk-core-sounds-en && pip install g722"
# Prompts whose transcript does not say how the recording reads its numbers
# ("extension 8500", "28.8 kilobit", "H.323"), so a reference text would be a guess.
ASTERISK_SKIP = frozenset({"demo-instruct", "spy-h323"})


def load_manifest(path: str | os.PathLike[str], check_audio: bool = True) -> list[Utterance]:
    """Read a JSONL manifest: one ``{"audio": ..., "text": ...}`` object a line.

    ``audio`` is relative to the manifest's folder (or absolute); ``id`` and
    ``speaker`` (or ``voice``) are optional, other keys are ignored; blank
    lines are skipped. ``check_audio``: a line whose file is missing (or a
    folder, a FIFO, empty) rejects the manifest; without, it is listed and
    reading it fails later, for that utterance alone (an evaluation records
    it as an error item and goes on).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest not found: {path}", "check the path, or pass 'builtin' or 'asterisk'")
    fmt = 'write one JSON object per line, e.g. {"audio": "a.wav", "text": "hello there"}'
    out: list[Utterance] = []
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
                             str(speaker) if speaker is not None else None))
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

    ``spec``: a split set's name (``builtin``, ``asterisk``, ``fotaq``: the part
    for ``purpose``) or one part of it (``builtin-calib``, ``asterisk-eval``,
    ``fotaq-eval``, ...), ``asterisk-all`` (every prompt), a manifest
    ``*.jsonl`` or a folder of audio. ``purpose``: 'calib' or 'eval'.
    ``check_audio``: as in :func:`load_manifest`, for a manifest.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"purpose must be one of {PURPOSES}, not {purpose!r}")
    name, _, part = spec.partition("-")
    if name in SPLIT_SETS and part in ("", *PURPOSES):
        part = part or purpose
        if name == "builtin":
            return builtin_set(f"builtin-{part}")
        if name == "asterisk":
            return [u for u in asterisk_set() if asterisk_part(u) == part]
        return fotaq_set(part)
    if spec == "asterisk-all":
        return asterisk_set()
    if spec.endswith(".jsonl"):
        return load_manifest(spec, check_audio)
    if Path(spec).is_dir():
        return audio_folder(spec)
    raise DatasetError(
        f"unknown speech set {spec!r} (not a set name, a .jsonl manifest or an existing folder)",
        "use builtin, asterisk or fotaq (or their -calib / -eval parts), asterisk-all, a path to a .jsonl "
        "manifest or a folder of wav/flac/ogg/mp3 files",
    )


# --- Asterisk prompts -------------------------------------------------------

_DIGITS = "zero one two three four five six seven eight nine".split()
_NOTES = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Typos in the upstream transcript (the recordings say the corrected words).
_TYPOS = {"exclaimation-point": "exclamation point", "umute": "unmute"}


def _say_number(match: re.Match[str]) -> str:
    # Telephony prompts read numbers digit by digit ("dial 500" is "five zero zero").
    return " " + " ".join("point" if c == "." else _DIGITS[int(c)] for c in match.group()) + " "


def normalize_asterisk_text(text: str) -> str:
    """Make an Asterisk transcript line read as spoken; '' if nothing is spoken.

    Drops notes in [], () and <> ("[beep]", "(10 seconds of silence)"),
    reads '*' as "star", '#' as "pound" and digits one by one, fixes known
    typos, and collapses whitespace. Case and punctuation are kept.
    """
    text = _NOTES.sub(" ", text)
    for wrong, right in _TYPOS.items():
        text = re.sub(rf"\b{re.escape(wrong)}\b", right, text)
    text = text.replace("*", " star ").replace("#", " pound ")
    text = _NUMBER.sub(_say_number, text)
    text = " ".join(text.split())
    text = re.sub(r" ([,?!;:]|\.(?!\.))", r"\1", text)
    return text if re.search(r"[A-Za-z]", text) else ""


def parse_asterisk_transcripts(lines: list[str]) -> dict[str, str]:
    """``name: text`` lines (';' comments) -> {name: normalized text}, empty texts dropped."""
    out: dict[str, str] = {}
    for line in lines:
        if not line.strip() or line.lstrip().startswith(";") or ":" not in line:
            continue
        name, text = line.split(":", 1)
        text = normalize_asterisk_text(text)
        if text:
            out[name.strip()] = text
    return out


def _decode_g722(src: Path, dst: Path) -> None:
    """Decode one 16 kHz, 64 kbit/s G.722 file to 16-bit FLAC, atomically."""
    from G722 import G722  # optional (PyPI "g722"): without it only the Asterisk sets are unavailable

    pcm = np.frombuffer(G722(16000, 64000).decode(src.read_bytes()), dtype=np.int16)
    write_flac_atomically(dst, pcm, 16000)


#: share of the Asterisk prompts kept for calibration (by a stable hash of the name)
ASTERISK_CALIB_SHARE = 0.25


def asterisk_part(utterance: Utterance) -> str:
    """``calib`` for a fixed quarter of the prompts, ``eval`` for the rest."""
    digest = hashlib.sha256(utterance.id.encode()).hexdigest()
    return "calib" if int(digest, 16) % 1000 < 1000 * ASTERISK_CALIB_SHARE else "eval"


def asterisk_available() -> bool:
    """The G.722 prompts, their transcripts and the decoder are installed."""
    return (importlib.util.find_spec("G722") is not None and ASTERISK_TRANSCRIPTS.is_file()
            and any(any(d.glob("*.g722")) for d in asterisk_sound_dirs()))


def asterisk_set(
    sounds_dir: str | os.PathLike[str] | None = None,
    transcripts: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[Utterance]:
    """Real speech: the English Asterisk prompts (one US speaker, CC-BY-SA-3.0).

    The G.722 files are decoded once into ``cache_dir`` (default
    ``$XDG_CACHE_HOME/liteasr-export/asterisk``) because the frontend reads
    audio with soundfile, which has no G.722 decoder. Prompts without speech
    (silence, tones) or without a recording are skipped.
    """
    if sounds_dir is None:
        sounds_dir = next((d for d in asterisk_sound_dirs() if any(d.glob("*.g722"))), None)
    transcripts = Path(transcripts) if transcripts is not None else ASTERISK_TRANSCRIPTS
    if sounds_dir is None or not any(Path(sounds_dir).glob("*.g722")):
        where = sounds_dir or " or ".join(map(str, asterisk_sound_dirs())) or f"${ASTERISK_SOUNDS_ENV} (empty)"
        raise DatasetError(f"no G.722 Asterisk prompts in {where}", ASTERISK_INSTALL)
    if not transcripts.is_file():
        raise DatasetError(f"Asterisk transcripts not found: {transcripts}", ASTERISK_INSTALL)
    try:
        import G722  # noqa: F401  (optional: PyPI g722)
    except ImportError:
        raise DatasetError("the G.722 decoder (PyPI package 'g722') is not installed", ASTERISK_INSTALL) from None

    sounds = Path(sounds_dir)
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / "asterisk"
    opener = gzip.open if transcripts.suffix == ".gz" else open
    with opener(transcripts, "rt", encoding="utf-8", errors="replace") as f:
        texts = parse_asterisk_transcripts(f.read().splitlines())
    out: list[Utterance] = []
    for name in sorted(texts):
        src = sounds / f"{name}.g722"
        if name in ASTERISK_SKIP or not src.is_file():
            continue
        dst = cache / f"{name}.flac"
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            _decode_g722(src, dst)
        out.append(Utterance(str(dst.resolve()), texts[name], f"asterisk/{name}", speaker="asterisk"))
    if not out:
        raise DatasetError(f"no Asterisk prompt in {sounds} matches a transcript in {transcripts}", ASTERISK_INSTALL)
    return out
