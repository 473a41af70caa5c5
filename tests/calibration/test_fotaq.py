"""The Flight of the Amazon Queen speech set: archive and dialogue parsing on a
synthetic archive built here, then the real package when it is present
(`python -m calibration.fotaq fetch`; CI fetches it)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration import fotaq
from calibration.datasets import resolve_set
from liteasr_export.core.errors import DatasetError

HAVE_FOTAQ = fotaq.find_archive() is not None


def _string(text: str, offset: int, align: int) -> bytes:
    """Length byte + cp437 text, zero-padded so the next field is aligned (as the game writes)."""
    raw = text.encode("cp437")
    if not raw:
        return b"\0"
    end = (offset + 1 + len(raw) + align - 1) & ~(align - 1)
    return bytes([len(raw)]) + raw + b"\0" * (end - offset - 1 - len(raw))


def _table(entries: list[tuple[int, str]], offset: int) -> bytes:
    out = b""
    for ident, text in entries:
        out += b"\0\0" + struct.pack(">h", ident)
        out += _string(text, offset + len(out), 4)
    return out


def _dialogue(talk_key: int, joe: list[tuple[int, str]], person: list[tuple[int, str]], closing: tuple[str, str]) -> bytes:
    level_max = 1
    joe_at = 32 + 96 * level_max
    joe_bytes = _table(joe, joe_at)
    person_at = joe_at + len(joe_bytes)
    person_bytes = _table(person, person_at)
    closing_at = person_at + len(person_bytes)
    closing_bytes = _string(closing[0], closing_at, 2)
    closing_bytes += _string(closing[1], closing_at + len(closing_bytes), 2)
    head = struct.pack(">hhhhh", -level_max, 1, talk_key, len(joe), len(person)) + b"\0" * 12
    head += struct.pack(">HHH", person_at, 0, closing_at) + b"\0" * 4
    assert len(head) == 32
    return b"H" * 20 + head + b"\0" * 96 * level_max + joe_bytes + person_bytes + closing_bytes


def _mp3(seconds: float = 0.4, rate: int = 11025) -> bytes:
    buffer = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="MP3")
    return buffer.getvalue()


def _archive(path: Path, entries: dict[str, bytes]) -> Path:
    table_size = 15 + 21 * len(entries)
    table, body = b"", b""
    for name, data in entries.items():
        table += name.encode().ljust(12, b"\0") + b"\0" + struct.pack(">II", table_size + len(body), len(data))
        body += data
    path.write_bytes(b"QTBL" + b"CEM10" + b"\0\0\0\1" + struct.pack(">H", len(entries)) + table + body)
    return path


BOB_DOG = _dialogue(
    15,
    joe=[(0, "Hi there."), (7, "Can I have a look*FLat the Crystal Skull?"), (9, "Never mind.")],
    person=[(7, "Sure.*GDtake*XY00(237,112)it <gulp>"), (10, "<gulp>")],
    closing=("See you, Joe.", ""),
)
#: the clips the game would play for BOB_DOG, and their texts
BOB_CLIPS = {
    "15SSSSJ1.SB": "Hi there.",
    "150007J1.SB": "Can I have a look",
    "150007J2.SB": "at the Crystal Skull?",
    # part 1 ("Sure.") ends at *GD: no clip, but it is counted
    "150007P2.SB": "take",
    "150007P3.SB": "it",  # after the 11-character *XY command; <gulp> dropped
    "15XXXXP1.SB": "See you, Joe.",
}


@pytest.fixture()
def archive(tmp_path: Path) -> Path:
    entries = {"BOB1.DOG": BOB_DOG}
    entries.update({name: _mp3() for name in BOB_CLIPS})
    entries["150009J1.SB"] = b"not an mp3"  # "Never mind." pairs with a broken clip
    return _archive(tmp_path / "queen.1c", entries)


def test_speech_parts_follow_the_engine_numbering() -> None:
    assert fotaq.speech_parts("Plain line.") == [(1, "Plain line.")]
    assert fotaq.speech_parts("One*FLtwo*WTthree") == [(1, "One"), (2, "two"), (3, "three")]
    assert fotaq.speech_parts("Grab*GDthis") == [(2, "this")]
    assert fotaq.speech_parts("Go*XY00(237,112)there") == [(1, "Go"), (2, "there")]
    assert fotaq.speech_parts("*FFHello") == [(1, ""), (2, "Hello")]


def test_clean_text_drops_stage_tokens() -> None:
    assert fotaq.clean_text("  it <gulp> ") == "it"
    assert fotaq.clean_text("<gulp>") == ""
    assert fotaq.clean_text("...") == ""


def test_clips_pair_names_and_texts(archive: Path) -> None:
    clips = fotaq.list_clips(fotaq.Archive(archive))
    got = {c.name: c.text for c in clips}
    want = dict(BOB_CLIPS, **{"150009J1.SB": "Never mind."})
    assert got == want
    assert {c.speaker for c in clips} == {"JOE", "BOB"}
    assert all(c.dialogue == "BOB1.DOG" for c in clips)


def test_set_decodes_each_clip_once_into_the_cache(archive: Path, tmp_path: Path) -> None:
    part = fotaq.split_of(fotaq.Clip("x", "BOB1.DOG", "BOB", "x"))
    with pytest.raises(DatasetError, match="cannot decode clip 150009J1.SB"):
        fotaq.fotaq_set(part, archive, tmp_path / "cache")
    entries = {"BOB1.DOG": BOB_DOG, **{name: _mp3() for name in BOB_CLIPS}}
    good = _archive(tmp_path / "good.1c", entries)
    got = fotaq.fotaq_set(part, good, tmp_path / "cache")
    assert [u.text for u in got] == [BOB_CLIPS[Path(u.audio).stem + ".SB"] for u in got]
    assert {u.speaker for u in got} == {"JOE", "BOB"}
    info = sf.info(got[0].audio)
    assert info.samplerate == 16000 and info.format == "FLAC"
    mtime = Path(got[0].audio).stat().st_mtime_ns
    assert fotaq.fotaq_set(part, good, tmp_path / "cache") == got
    assert Path(got[0].audio).stat().st_mtime_ns == mtime
    other = "eval" if part == "calib" else "calib"
    with pytest.raises(DatasetError, match="no speech clip"):
        fotaq.fotaq_set(other, good, tmp_path / "cache")


def test_missing_or_foreign_archive_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fotaq.ARCHIVE_ENV, str(tmp_path / "nowhere.1c"))
    monkeypatch.setattr(fotaq, "SYSTEM_ARCHIVE", tmp_path / "none")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(DatasetError) as err:
        resolve_set("fotaq", "eval")
    assert "python -m calibration.fotaq fetch" in err.value.fix
    (tmp_path / "foreign.1c").write_bytes(b"RIFF0000WAVE")
    with pytest.raises(DatasetError, match="no QTBL header"):
        fotaq.Archive(tmp_path / "foreign.1c")


@pytest.mark.skipif(not HAVE_FOTAQ, reason="python -m calibration.fotaq fetch")
def test_real_archive_splits_by_character() -> None:
    clips = fotaq.list_clips(fotaq.Archive(fotaq.find_archive()))
    assert 3900 <= len(clips) <= 4100
    assert len({c.speaker for c in clips}) >= 28
    assert next(c.text for c in clips if c.name == "150007J1.SB") == "Can I have a look at the Crystal Skull?"
    parts = {p: [c for c in clips if fotaq.split_of(c) == p] for p in fotaq.PARTS}
    dialogues = {p: {c.dialogue for c in chosen} for p, chosen in parts.items()}
    assert dialogues["calib"].isdisjoint(dialogues["eval"])
    speakers = {p: {c.speaker for c in chosen} for p, chosen in parts.items()}
    assert speakers["calib"] & speakers["eval"] == {"JOE"}
    assert all(len(chosen) > 1000 for chosen in parts.values())


def test_fetching_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """LITEASR_NO_FETCH=1: no download is tried; the demo's optional fetch
    then goes on without the speech (exit 0, a warning)."""
    monkeypatch.setenv(fotaq.NO_FETCH_ENV, "1")
    monkeypatch.setattr(fotaq.shutil, "which", lambda tool: pytest.fail(f"{tool} looked up with fetching off"))
    with pytest.raises(DatasetError, match="downloading is off"):
        fotaq.fetch(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fotaq.ARCHIVE_ENV, raising=False)
    monkeypatch.setattr(fotaq, "SYSTEM_ARCHIVE", tmp_path / "none" / "queen.1c")
    assert fotaq.main(["fetch", "--optional"]) == 0
    assert fotaq.main(["fetch"]) == 2
