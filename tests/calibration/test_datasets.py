"""Speech-set loaders: manifests, folders, built-in sets, Asterisk prompts.

The full Asterisk test needs `apt-get install asterisk-core-sounds-en-g722
asterisk-core-sounds-en` (CI installs them) and is skipped without them.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration import datasets as ds
from liteasr_export.core.errors import DatasetError

HAVE_G722 = importlib.util.find_spec("G722") is not None
HAVE_ASTERISK = HAVE_G722 and ds.ASTERISK_TRANSCRIPTS.is_file() and any(
    any(d.glob("*.g722")) for d in ds.asterisk_sound_dirs()
)


def _wav(path: Path, seconds: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.zeros(int(16000 * seconds), np.float32), 16000)
    return path


def _manifest(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- manifests ----------------------------------------------------------------


def test_manifest_paths_are_relative_to_the_manifest(tmp_path: Path) -> None:
    a = _wav(tmp_path / "audio" / "a.wav")
    path = _manifest(
        tmp_path,
        [
            json.dumps({"audio": "audio/a.wav", "text": " hello there ", "voice": "x"}),
            "",
            json.dumps({"audio": str(a), "text": "again", "id": "custom"}),
        ],
    )
    got = ds.load_manifest(path)
    assert got == [
        ds.Utterance(str(a.resolve()), "hello there", "audio/a", speaker="x"),
        ds.Utterance(str(a.resolve()), "again", "custom"),
    ]


@pytest.mark.parametrize(
    "bad_line, words",
    [
        ('{"audio": "a.wav", "text": "hi"', "not valid JSON"),
        ('["a.wav", "hi"]', "expected a JSON object"),
        ('{"text": "hi"}', '"audio"'),
        ('{"audio": "a.wav"}', '"text"'),
        ('{"audio": "a.wav", "text": "  "}', '"text"'),
        ('{"audio": "missing.wav", "text": "hi"}', "audio file not found"),
    ],
)
def test_manifest_errors_name_file_and_line(tmp_path: Path, bad_line: str, words: str) -> None:
    _wav(tmp_path / "a.wav")
    path = _manifest(tmp_path, [json.dumps({"audio": "a.wav", "text": "fine"}), bad_line])
    with pytest.raises(DatasetError) as err:
        ds.load_manifest(path)
    assert words in err.value.problem
    assert f"{path}, line 2" in err.value.problem
    assert err.value.fix


def test_manifest_names_what_a_bad_audio_path_is_or_lists_it_unchecked(tmp_path: Path) -> None:
    (tmp_path / "folder.wav").mkdir()
    path = _manifest(tmp_path, [json.dumps({"audio": "folder.wav", "text": "hi"}),
                                json.dumps({"audio": "missing.wav", "text": "there"})])
    with pytest.raises(DatasetError, match="line 1: .*folder.wav is a folder, not an audio file"):
        ds.load_manifest(path)
    listed = ds.resolve_set(str(path), "eval", check_audio=False)  # an evaluation records each as an error item
    assert [u.audio for u in listed] == [str(tmp_path / "folder.wav"), str(tmp_path / "missing.wav")]


def test_manifest_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="manifest not found"):
        ds.load_manifest(tmp_path / "nope.jsonl")
    with pytest.raises(DatasetError, match="empty"):
        ds.load_manifest(_manifest(tmp_path, [""]))


# --- resolve_set ----------------------------------------------------------------


def test_resolve_folder_manifest_and_unknown(tmp_path: Path) -> None:
    _wav(tmp_path / "d" / "b.flac")
    _wav(tmp_path / "d" / "sub" / "a.wav")
    (tmp_path / "d" / "notes.txt").write_text("not audio")
    got = ds.resolve_set(str(tmp_path / "d"), "calib")
    assert [u.id for u in got] == ["b", "sub/a"] and all(u.text is None for u in got)

    _wav(tmp_path / "a.wav")
    path = _manifest(tmp_path, [json.dumps({"audio": "a.wav", "text": "hi"})])
    assert [u.text for u in ds.resolve_set(str(path), "eval")] == ["hi"]

    with pytest.raises(DatasetError) as err:
        ds.resolve_set("librispeech", "eval")
    assert "builtin" in err.value.fix and "asterisk" in err.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no audio files"):
        ds.resolve_set(str(tmp_path / "empty"), "calib")
    with pytest.raises(ValueError):
        ds.resolve_set("builtin", "train")


def test_builtin_resolves_by_purpose() -> None:
    assert ds.resolve_set("builtin", "calib") == ds.builtin_set("builtin-calib")
    assert ds.resolve_set("builtin", "eval") == ds.resolve_set("builtin-eval", "calib")
    with pytest.raises(DatasetError):
        ds.builtin_set("builtin-train")


# --- built-in generated speech ---------------------------------------------------


@pytest.mark.parametrize("name, count", [("builtin-calib", 32), ("builtin-eval", 48)])
def test_builtin_sets(name: str, count: int) -> None:
    utts = ds.builtin_set(name)
    assert len(utts) == count
    assert len({u.id for u in utts}) == count
    for u in utts:
        assert u.text and 10 <= len(u.text.split()) <= 40
        audio, sr = sf.read(u.audio, dtype="float32")
        assert sr == 16000 and audio.ndim == 1
        assert 1.0 < len(audio) / sr < 30.0
        assert 0.1 < np.abs(audio).max() <= 1.0


def test_builtin_sets_are_disjoint_and_multi_voice() -> None:
    calib, ev = ds.builtin_set("builtin-calib"), ds.builtin_set("builtin-eval")
    assert not {u.text for u in calib} & {u.text for u in ev}
    for manifest in ("calib.jsonl", "eval.jsonl"):
        lines = (ds.BUILTIN_DIR / manifest).read_text().splitlines()
        assert len({json.loads(line)["voice"] for line in lines}) >= 5


# --- Asterisk prompts --------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, want",
    [
        ("Press 1 to enter an extension, press 2 to use the directory", "Press one to enter an extension, press two to use the directory"),
        ("press * to toggle pause, press # to enter a new dictation filename", "press star to toggle pause, press pound to enter a new dictation filename"),
        ("Please leave your message after the tone. (simple tone sound plays)", "Please leave your message after the tone."),
        ('IAX (note: does not say "2")', "IAX"),
        ("3D audio enabled", "three D audio enabled"),
        ("dial 500 now", "dial five zero zero now"),
        ("at [@]", "at"),
        ("exclaimation-point [!]", "exclamation point"),
        ("... for ...", "... for ..."),
        ("  Press 5 to leave a message", "Press five to leave a message"),
        ("(10 seconds of silence)", ""),
        ("[sound of monkeys screaming]", ""),
        ("<beep ascending>", ""),
    ],
)
def test_normalize_asterisk_text(raw: str, want: str) -> None:
    assert ds.normalize_asterisk_text(raw) == want


def test_parse_asterisk_transcripts() -> None:
    lines = [
        "; Core Asterisk Sounds in English",
        "",
        "digits/1: one",
        "beep: [this is a simple beep tone]",
        "vm-Cust1: folder 5",
        "at-tone-time-exactly: At the sound of the tone, the time will be exactly...",
    ]
    assert ds.parse_asterisk_transcripts(lines) == {
        "digits/1": "one",
        "vm-Cust1": "folder five",
        "at-tone-time-exactly": "At the sound of the tone, the time will be exactly...",
    }


def test_asterisk_missing_packages_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        ds.asterisk_set(sounds_dir=tmp_path, transcripts=tmp_path / "t.txt.gz", cache_dir=tmp_path / "c")
    assert "apt-get install asterisk-core-sounds-en-g722 asterisk-core-sounds-en" in err.value.fix
    assert "pip install g722" in err.value.fix


@pytest.mark.skipif(not HAVE_G722, reason="pip install g722")
def test_asterisk_decodes_g722_into_cache(tmp_path: Path) -> None:
    from G722 import G722

    tone = (8000 * np.sin(np.arange(8000) * 2 * np.pi * 440 / 16000)).astype(np.int16)
    sounds = tmp_path / "sounds"
    (sounds / "digits").mkdir(parents=True)
    for name in ("hello", "digits/2", "beep"):
        (sounds / f"{name}.g722").write_bytes(bytes(G722(16000, 64000).encode(tone)))
    transcripts = tmp_path / "t.txt.gz"
    with gzip.open(transcripts, "wt") as f:
        f.write("; comment\nhello: Press 1 now.\ndigits/2: two\nbeep: [beep]\nno-audio: Hi there.\n")
    cache = tmp_path / "cache"
    got = ds.asterisk_set(sounds_dir=sounds, transcripts=transcripts, cache_dir=cache)
    assert [(u.id, u.text) for u in got] == [("asterisk/digits/2", "two"), ("asterisk/hello", "Press one now.")]
    for u in got:
        audio, sr = sf.read(u.audio, dtype="int16")
        assert sr == 16000 and len(audio) == len(tone) and Path(u.audio).is_relative_to(cache)
    assert not list(cache.rglob("*.tmp"))
    mtime = Path(got[0].audio).stat().st_mtime_ns
    assert ds.asterisk_set(sounds_dir=sounds, transcripts=transcripts, cache_dir=cache) == got
    assert Path(got[0].audio).stat().st_mtime_ns == mtime  # decoded once


@pytest.mark.skipif(not HAVE_ASTERISK, reason="apt-get install asterisk-core-sounds-en-g722 asterisk-core-sounds-en")
def test_asterisk_real_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    got = ds.resolve_set("asterisk-all", "eval")
    assert all(Path(u.audio).is_relative_to(tmp_path / "liteasr-export" / "asterisk") for u in got)
    assert 500 <= len(got) <= 570
    assert all(u.text and u.text.strip() == u.text for u in got)
    assert not any(ch.isdigit() or ch in "[]()<>*#" for u in got for ch in u.text)
    minutes = sum(sf.info(u.audio).duration for u in got) / 60
    assert 20 < minutes < 26
    by_id = {u.id: u.text for u in got}
    assert by_id["asterisk/digits/7"] == "seven"
    assert "asterisk/silence/1" not in by_id and "asterisk/beep" not in by_id
    # the calibration and evaluation parts split the prompts without overlap
    calib, evaluation = ds.resolve_set("asterisk", "calib"), ds.resolve_set("asterisk", "eval")
    assert ds.resolve_set("asterisk-eval", "calib") == evaluation
    assert {u.id for u in calib}.isdisjoint(u.id for u in evaluation)
    assert sorted(u.id for u in calib + evaluation) == sorted(by_id)
    assert 0.15 < len(calib) / len(got) < 0.35


def test_asterisk_folders_can_be_named_in_the_environment(tmp_path: Path, monkeypatch) -> None:
    """$LITEASR_ASTERISK_SOUNDS replaces Debian's folders: an empty folder
    there makes the prompts unavailable even where the package is installed
    (CI's first-run job tries the quick start as a user without them)."""
    monkeypatch.setenv(ds.ASTERISK_SOUNDS_ENV, str(tmp_path))
    assert ds.asterisk_sound_dirs() == (tmp_path,)
    assert not ds.asterisk_available()
    with pytest.raises(DatasetError, match=f"no G.722 Asterisk prompts in {tmp_path}"):
        ds.resolve_set("asterisk", "eval")
    monkeypatch.delenv(ds.ASTERISK_SOUNDS_ENV)
    assert ds.asterisk_sound_dirs() == ds.DEBIAN_ASTERISK_SOUND_DIRS
