"""Real multi-speaker speech: the voice-acted dialogue of *Flight of the Amazon
Queen* (Debian package ``flight-of-the-amazon-queen``, freeware: read from the
package, never redistributed).

The game keeps everything in one archive, ``queen.1c``: a ``QTBL`` table of
named entries, among them the dialogue scripts (``*.DOG``) and the speech
clips (``*.SB``, MP3 at 11,025 Hz). A clip's name is derived from the
dialogue file's talk key, the line's id, the speaker (``J`` Joe, ``P`` the
other character) and the part of the line, so pairing a clip with its text
means reading the dialogue files the way the game's engine does (ScummVM's
``engines/queen/talk.cpp``: ``Talk::load``, ``findDialogueString``,
``speak``). About 4,000 clips from about 30 voices pair with a line.

The split is by character: every dialogue file of a character (``BOB1`` ..
``BOB5`` are Bob's) lands in the same set, so ``fotaq-eval`` holds
conversations and non-Joe voices that ``fotaq-calib`` never contains. Joe,
the hero, speaks in every conversation and so in both sets.

Fetch the package without installing the game (it depends on scummvm)::

    python -m calibration.fotaq fetch
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from liteasr_export.core.cache import cache_root
from liteasr_export.core.errors import DatasetError
from liteasr_export.core.frontend import SAMPLE_RATE, resample

from .utterances import Utterance, write_flac_atomically

PACKAGE = "flight-of-the-amazon-queen"
ARCHIVE_IN_PACKAGE = Path("usr/share/scummvm/flight-of-the-amazon-queen/queen.1c")
#: where an installed package puts the archive
SYSTEM_ARCHIVE = Path("/") / ARCHIVE_IN_PACKAGE
#: environment variable naming another copy of ``queen.1c``
ARCHIVE_ENV = "LITEASR_FOTAQ_ARCHIVE"
#: environment variable that, set to 1, forbids downloading (an offline
#: machine, or CI trying the quick start as a user without the speech would)
NO_FETCH_ENV = "LITEASR_NO_FETCH"
FETCH_HINT = (
    f"run: python -m calibration.fotaq fetch (apt-get download {PACKAGE}, unpacked into the cache; "
    f"no install needed), or apt-get install {PACKAGE}, or set {ARCHIVE_ENV}=/path/to/queen.1c"
)
PARTS = ("calib", "eval")
#: share of characters (and their conversations) held out for evaluation
EVAL_SHARE = 1 / 3
JOE = "JOE"

_HEADER = 20  # bytes before a dialogue file's data (the engine skips them)
_STAGE = re.compile(r"<[^>]*>")  # non-speech tokens such as <gulp>


@dataclass(frozen=True)
class Clip:
    """One speech clip paired with its text."""

    name: str  # archive entry, e.g. 150007J1.SB
    dialogue: str  # the dialogue file, e.g. BOB1.DOG
    speaker: str  # JOE or the character, e.g. BOB
    text: str


def _cache_root() -> Path:
    return cache_root() / "fotaq"


def find_archive() -> Path | None:
    """``queen.1c`` from ``$LITEASR_FOTAQ_ARCHIVE``, the installed package or the fetch cache."""
    candidates = [Path(os.environ[ARCHIVE_ENV])] if os.environ.get(ARCHIVE_ENV) else []
    candidates += [SYSTEM_ARCHIVE, _cache_root() / "queen.1c"]
    return next((p for p in candidates if p.is_file()), None)


# --- the archive ---------------------------------------------------------------


class Archive:
    """The ``QTBL`` table of ``queen.1c``: name -> (offset, size), read lazily."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            with open(self.path, "rb") as f:
                head = f.read(15)
                if len(head) < 15 or head[:4] != b"QTBL":
                    raise DatasetError(f"{self.path} is not a Flight of the Amazon Queen archive (no QTBL header)",
                                       FETCH_HINT)
                (count,) = struct.unpack(">H", head[13:15])
                table = f.read(21 * count)
        except OSError as exc:
            raise DatasetError(f"cannot read {self.path} ({exc.strerror})", FETCH_HINT) from None
        if len(table) < 21 * count:
            raise DatasetError(f"{self.path} is truncated (table of {count} entries cut short)", FETCH_HINT)
        self.entries: dict[str, tuple[int, int]] = {}
        for i in range(count):
            entry = table[21 * i : 21 * (i + 1)]
            name = entry[:12].split(b"\0", 1)[0].decode("ascii", "replace")
            self.entries[name] = struct.unpack(">II", entry[13:21])

    def read(self, name: str) -> bytes:
        offset, size = self.entries[name]
        with open(self.path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
        if len(data) != size:
            raise DatasetError(f"{self.path} is truncated (entry {name} cut short)", FETCH_HINT)
        return data


# --- dialogue files ---------------------------------------------------------------


def _i16(data: bytes, offset: int) -> int:
    return struct.unpack_from(">h", data, offset)[0]


def _u16(data: bytes, offset: int) -> int:
    return struct.unpack_from(">H", data, offset)[0]


def _string(data: bytes, offset: int, align: int) -> tuple[str, int]:
    """A length-prefixed cp437 string; a non-empty one is padded so that the
    next field starts at a multiple of ``align`` (as the engine's getString)."""
    length = data[offset]
    offset += 1
    if not length:
        return "", offset
    text = data[offset : offset + length].decode("cp437")
    return text, (offset + length + align - 1) & ~(align - 1)


def _voice_prefix(talk_key: int, line_id: int | str, who: str) -> str:
    """printf ``%2d%4X`` + J/P with spaces as zeros; ``line_id`` may be XXXX or SSSS."""
    ident = line_id if isinstance(line_id, str) else f"{line_id:4X}"
    return f"{talk_key:2d}{ident}".replace(" ", "0") + who


def dialogue_lines(data: bytes) -> Iterator[tuple[str, str]]:
    """``(voice prefix, text)`` of every line of one ``.DOG`` file (header included)."""
    data = data[_HEADER:]
    level_max = abs(_i16(data, 0))
    talk_key, joe_count, person_count = _i16(data, 4), _i16(data, 6), _i16(data, 8)
    tables = (("J", 32 + 96 * level_max, joe_count), ("P", _u16(data, 22), person_count))
    for who, offset, count in tables:
        for _ in range(count):
            line_id = _i16(data, offset + 2)
            text, offset = _string(data, offset + 4, 4)
            if text:
                ident: int | str = "SSSS" if who == "J" and line_id == 0 else line_id
                yield _voice_prefix(talk_key, ident, who), text
    offset = _u16(data, 26)  # closing lines: the character's, then Joe's
    for who in ("P", "J"):
        text, offset = _string(data, offset, 2)
        if text:
            yield _voice_prefix(talk_key, "XXXX", who), text


def speech_parts(line: str) -> list[tuple[int, str]]:
    """``(part number from 1, text)`` of the parts of a line that have a clip.

    A line is cut at ``*`` + a two-letter stage command (``*XY`` carries 11
    more characters). The part before a ``*GD`` / ``*GM`` (Joe grabs) has no
    clip but still counts in the numbering.
    """
    out: list[tuple[int, str]] = []
    index, start, i = 0, 0, 0
    while i < len(line):
        if line[i] != "*":
            i += 1
            continue
        code = line[i + 1 : i + 3]
        if code not in ("GD", "GM"):
            out.append((index + 1, line[start:i]))
        i += 3 + (11 if code == "XY" else 0)
        index, start = index + 1, i
    if start < len(line):
        out.append((index + 1, line[start:]))
    return out


def clean_text(text: str) -> str:
    """The spoken words: stage tokens (``<gulp>``) dropped, whitespace collapsed;
    '' when nothing speakable is left."""
    text = " ".join(_STAGE.sub(" ", text).split())
    return text if re.search(r"[A-Za-z]", text) else ""


def character(dialogue: str) -> str:
    """``BOB3.DOG`` -> ``BOB``."""
    return re.sub(r"\d+$", "", dialogue.rsplit(".", 1)[0])


def list_clips(archive: Archive) -> list[Clip]:
    """Every speech clip that pairs with a line of text, in archive-name order
    of the dialogue files (a clip named twice is kept once)."""
    clips: dict[str, Clip] = {}
    for dialogue in sorted(n for n in archive.entries if n.endswith(".DOG")):
        for prefix, line in dialogue_lines(archive.read(dialogue)):
            speaker = JOE if prefix.endswith("J") else character(dialogue)
            for part, text in speech_parts(line):
                name, text = f"{prefix}{part:X}.SB", clean_text(text)
                if text and name in archive.entries and name not in clips:
                    clips[name] = Clip(name, dialogue, speaker, text)
    return list(clips.values())


def is_eval_character(name: str) -> bool:
    """The deterministic held-out characters: a stable hash of the name."""
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % 1000 < 1000 * EVAL_SHARE


def split_of(clip: Clip) -> str:
    """``calib`` or ``eval``, by the character of the clip's dialogue file."""
    return "eval" if is_eval_character(character(clip.dialogue)) else "calib"


# --- decoded audio ------------------------------------------------------------------


def _decode_clip(archive: Archive, name: str, dst: Path) -> None:
    """Decode one MP3 clip, resample it to 16 kHz and write 16-bit FLAC atomically."""
    try:
        audio, rate = sf.read(io.BytesIO(archive.read(name)), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise DatasetError(f"cannot decode clip {name} of {archive.path} ({exc})", FETCH_HINT) from None
    write_flac_atomically(dst, resample(audio.mean(axis=1), rate, SAMPLE_RATE), SAMPLE_RATE)


def fotaq_set(part: str, archive_path: str | os.PathLike[str] | None = None,
              cache_dir: str | os.PathLike[str] | None = None) -> list:
    """``fotaq-calib`` or ``fotaq-eval`` as :class:`~calibration.datasets.Utterance`
    objects (speaker known), decoding each clip once into ``cache_dir``
    (default ``$XDG_CACHE_HOME/liteasr-export/fotaq/clips``)."""
    if part not in PARTS:
        raise DatasetError(f"unknown fotaq part {part!r}", "use fotaq-calib or fotaq-eval")
    path = Path(archive_path) if archive_path is not None else find_archive()
    if path is None or not path.is_file():
        raise DatasetError(f"the {PACKAGE} speech is not available ({path or 'no queen.1c found'})", FETCH_HINT)
    archive = Archive(path)
    cache = Path(cache_dir) if cache_dir is not None else _cache_root() / "clips"
    mtime = path.stat().st_mtime
    out = []
    for clip in list_clips(archive):
        if split_of(clip) != part:
            continue
        dst = cache / f"{clip.name[:-3]}.flac"
        if not dst.is_file() or dst.stat().st_mtime < mtime:
            _decode_clip(archive, clip.name, dst)
        out.append(Utterance(str(dst.resolve()), clip.text, f"fotaq/{clip.dialogue[:-4]}/{clip.name[:-3]}",
                             speaker=clip.speaker))
    if not out:
        raise DatasetError(f"no speech clip of {path} pairs with a dialogue line", FETCH_HINT)
    return out


# --- fetching the package --------------------------------------------------------------


def fetch(dest: Path | None = None) -> Path:
    """Download the Debian package with ``apt-get download`` (no install, no
    root needed when the package lists exist), unpack it with ``dpkg-deb -x``
    and keep ``queen.1c`` and the licence in ``dest`` (default: the cache)."""
    dest = dest or _cache_root()
    target = dest / "queen.1c"
    if target.is_file():
        return target
    if os.environ.get(NO_FETCH_ENV, "") not in ("", "0"):
        raise DatasetError(f"{PACKAGE} is not in {dest} and downloading is off ({NO_FETCH_ENV} is set)",
                           f"unset {NO_FETCH_ENV} to fetch it, or set {ARCHIVE_ENV}=/path/to/queen.1c")
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise DatasetError(f"{tool} is not available to fetch {PACKAGE}",
                               f"on Debian/Ubuntu run this again; elsewhere copy queen.1c and set {ARCHIVE_ENV}")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest) as tmp:
        download = ["apt-get", "download", PACKAGE]
        result = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
        if result.returncode != 0 and os.geteuid() == 0:  # empty package lists on a fresh machine
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
            result = subprocess.run(download, cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{PACKAGE}_*.deb"))
        if result.returncode != 0 or not debs:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DatasetError(f"apt-get download {PACKAGE} failed ({last})",
                               "check the network and the Debian sources (apt-get update as root)")
        unpacked = Path(tmp) / "root"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True, capture_output=True)
        licence = unpacked / "usr/share/doc" / PACKAGE / "copyright"
        if licence.is_file():
            shutil.copy(licence, dest / "copyright")
        os.replace(unpacked / ARCHIVE_IN_PACKAGE, target)  # same filesystem: atomic
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m calibration.fotaq", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("fetch", help=f"download {PACKAGE} into the cache (no install)")
    get.add_argument("--optional", action="store_true", help="exit 0 with a message when it cannot be fetched")
    sub.add_parser("info", help="where the archive is and how many clips each part holds")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"{PACKAGE}: {find_archive() or fetch()}")
        else:
            path = find_archive()
            if path is None:
                raise DatasetError(f"the {PACKAGE} speech is not available", FETCH_HINT)
            clips = list_clips(Archive(path))
            for part in PARTS:
                chosen = [c for c in clips if split_of(c) == part]
                speakers = sorted({c.speaker for c in chosen})
                print(f"fotaq-{part}: {len(chosen)} clips, {len(speakers)} speakers ({', '.join(speakers)})")
    except DatasetError as exc:
        print(f"{parser.prog}: {'warning' if getattr(args, 'optional', False) else 'error'}: {exc}", file=sys.stderr)
        return 0 if getattr(args, "optional", False) else exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
