"""Transcripts as txt, json, srt, vtt and tsv (``liteasr-transcribe
--output-format``), in the layouts openai-whisper writes.

Written by hand: each format is a timestamp formatter and a loop over
segments, and the runtime path should not grow a dependency for that (the
C++ example writes the same SRT). The tests parse the files with real
parsers from PyPI (``srt``, ``webvtt-py``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from liteasr_export.core.windowed import Transcript

FORMATS = ("txt", "json", "srt", "vtt", "tsv", "all")
#: formats made of timed segments (they need --timestamps)
TIMED_FORMATS = ("srt", "vtt", "tsv", "all")


def format_timestamp(seconds: float, decimal_marker: str = ".", always_hours: bool = False) -> str:
    """``[HH:]MM:SS.mmm`` (SRT: ``HH:MM:SS,mmm``), rounded to milliseconds."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    head = f"{hours:02d}:" if always_hours or hours else ""
    return f"{head}{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _line(text: str) -> str:
    """One subtitle line: no line breaks (a blank line ends an SRT/VTT cue)."""
    return " ".join(text.split())


def _cues(transcript: Transcript):
    for segment in transcript.segments:
        text = _line(segment.text)
        if text:
            yield segment.start, max(segment.end, segment.start), text


def to_txt(transcript: Transcript, audio: str = "") -> str:
    return transcript.text + "\n"


def to_json(transcript: Transcript, audio: str = "") -> str:
    return json.dumps({"audio": audio, **transcript.to_dict()}, ensure_ascii=False, indent=2) + "\n"


def to_srt(transcript: Transcript, audio: str = "") -> str:
    blocks = [f"{i}\n{format_timestamp(s, ',', True)} --> {format_timestamp(e, ',', True)}\n{text}\n"
              for i, (s, e, text) in enumerate(_cues(transcript), start=1)]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript, audio: str = "") -> str:
    blocks = ["WEBVTT\n"] + [f"{format_timestamp(s)} --> {format_timestamp(e)}\n{text}\n"
                             for s, e, text in _cues(transcript)]
    return "\n".join(blocks)


def to_tsv(transcript: Transcript, audio: str = "") -> str:
    """Start and end in integer milliseconds (no locale trouble with decimal marks)."""
    rows = ["start\tend\ttext"] + [f"{round(1000 * s)}\t{round(1000 * e)}\t{text.replace(chr(9), ' ')}"
                                   for s, e, text in _cues(transcript)]
    return "\n".join(rows) + "\n"


WRITERS: dict[str, Callable[[Transcript, str], str]] = {
    "txt": to_txt, "json": to_json, "srt": to_srt, "vtt": to_vtt, "tsv": to_tsv}


def formats_of(fmt: str) -> list[str]:
    """The formats ``--output-format fmt`` writes (``all``: every one)."""
    return list(WRITERS) if fmt == "all" else [fmt]


def output_path(audio: str | os.PathLike[str], output_dir: str | os.PathLike[str], fmt: str) -> Path:
    """Where the transcript of ``audio`` goes: ``OUTPUT_DIR/<audio stem>.<fmt>``."""
    return Path(output_dir) / f"{Path(audio).stem}.{fmt}"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a short temporary name: the longest name the file system takes still fits as ``path``
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".liteasr-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
