"""liteasr-transcribe's output formats: SRT and VTT read back by real
subtitle parsers from PyPI (``srt``, ``webvtt-py``), TSV and JSON by the
standard library; on real tiny.en weights through the command line."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from liteasr_export.core.output_formats import format_timestamp, to_srt, to_tsv, to_vtt
from liteasr_export.core.windowed import Segment, Transcript


def _seconds(value) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _vtt_seconds(stamp: str) -> float:
    parts = [float(p) for p in stamp.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def _parse(fmt: str, text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of every cue, read by a real parser."""
    if fmt == "srt":
        import srt

        return [(_seconds(c.start), _seconds(c.end), c.content) for c in srt.parse(text)]
    if fmt == "vtt":
        import io

        import webvtt

        return [(_vtt_seconds(c.start), _vtt_seconds(c.end), c.text) for c in webvtt.from_buffer(io.StringIO(text))]
    rows = list(csv.reader(text.splitlines(), delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    return [(int(a) / 1000, int(b) / 1000, t) for a, b, t in rows[1:]]


TRANSCRIPT = Transcript(
    text="First line. Second, after an hour.", duration=3700.0, language="en", language_probability=None,
    segments=[Segment(0.0, 2.5, " First line."), Segment(2.5, 2.5, " "),  # empty cues are left out
              Segment(3600.02, 3602.999, " Second,\nafter an hour.")],
    windows=[])


@pytest.mark.parametrize("fmt, writer", [("srt", to_srt), ("vtt", to_vtt), ("tsv", to_tsv)])
def test_subtitles_parse_with_real_parsers(fmt, writer):
    cues = _parse(fmt, writer(TRANSCRIPT))
    assert [c[2] for c in cues] == ["First line.", "Second, after an hour."]
    assert [(round(a, 3), round(b, 3)) for a, b, _ in cues] == [(0.0, 2.5), (3600.02, 3602.999)]


def test_timestamps_in_both_layouts():
    assert format_timestamp(3725.5, ",", True) == "01:02:05,500"
    assert format_timestamp(65.0009) == "01:05.001"


@pytest.mark.slow
def test_transcribe_writes_every_format_on_real_weights(tmp_path):
    """Two files (a clip and a 70 s recording: three windows or more, seeking
    by segments) through liteasr-transcribe, every format written; the SRT and
    VTT cues are the JSON segments, in order, inside the recording."""
    from calibration.datasets import resolve_set
    from liteasr_export.app.cli import transcribe_main
    from liteasr_export.core.frontend import load_audio

    clips = [load_audio(u.audio) for u in resolve_set("builtin", "eval")[:12]]
    gap = np.zeros(8000, np.float32)
    long = np.concatenate([x for c in clips for x in (c, gap)])[: 70 * 16000]
    sf.write(tmp_path / "long.wav", long, 16000)
    files = [resolve_set("builtin", "eval")[0].audio, str(tmp_path / "long.wav")]
    out = tmp_path / "out"
    assert transcribe_main(["--engine", "torch", "--model", "tiny.en", "-f", "all", "-o", str(out), *files]) == 0
    for path in files:
        stem = Path(path).stem
        data = json.loads((out / f"{stem}.json").read_text())
        assert (out / f"{stem}.txt").read_text().strip() == data["text"]
        segments = [(s["start"], s["end"], " ".join(s["text"].split())) for s in data["segments"] if s["text"].strip()]
        assert len(segments) >= 1 and data["language"] == "en"
        for fmt in ("srt", "vtt", "tsv"):
            cues = _parse(fmt, (out / f"{stem}.{fmt}").read_text())
            assert [c[2] for c in cues] == [s[2] for s in segments]
            assert [(round(a, 3), round(b, 3)) for a, b, _ in cues] == [(round(a, 3), round(b, 3))
                                                                       for a, b, _ in segments]
            starts = [c[0] for c in cues]
            assert starts == sorted(starts) and all(a <= b <= data["duration"] + 1e-6 for a, b, _ in cues)
    long_json = json.loads((out / "long.json").read_text())
    assert len(long_json["windows"]) >= 3 and long_json["segments"][-1]["end"] > 55
    # windows follow the segments: each starts where the previous one's last complete segment ended
    assert all(b["start"] <= a["end"] for a, b in zip(long_json["windows"], long_json["windows"][1:]))
