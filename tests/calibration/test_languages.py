"""Speech in other languages: the Spanish, French and Italian Asterisk
prompts, the synthetic voices, and the ``language`` of a manifest.

The real-prompt test needs `apt-get install asterisk-core-sounds-es-g722
asterisk-core-sounds-es` (`make test` installs them) and is skipped without
them; the synthetic-voice test needs espeak-ng.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from calibration import asterisk as ast
from calibration import datasets as ds
from calibration import synthetic as syn
from calibration.utterances import Utterance
from liteasr_export.core.errors import DatasetError

HAVE_ASTERISK_ES = importlib.util.find_spec("G722") is not None and ds.asterisk_available("es")

# Lines as the Debian files write them (the Italian file starts with a BOM
# and lost some accented vowels to "?").
SPANISH = """; Core Asterisk Sounds in Spanish

agent-loggedoff: Agente desconectado
conf-adminmenu: Por favor marque 1 para habilitar, 2 para bloquear.
beep: [tono simple]
confbridge-join: (beep)
demo-instruct: marque 500 para intentar
vm-tempgreetactive: Sus saludos [temporales] estan actualmente en uso
digits/0: cero
digits/0: diez
digits/1: uno
vm-savefolder: En que carpeta desea guardar el mensaje ?
"""
ITALIAN = """\ufeff; Core Asterisk Sounds in Italian
; Elenco completo del set “core sound”

conf-full: La conferenza ? piena.
cannot-complete-as-dialed: La chiamata non pu? essere completata cos? come composta.
letters/at: a [@]
invalid: Spiacente, [quello] non è un interno valido.
spy-iax2: IAX (nota: non dice "2")
silence/1: (1 secondo di silenzio)
"""


def test_spanish_transcripts() -> None:
    assert ds.parse_asterisk_transcripts(SPANISH.splitlines(), "es") == {
        "agent-loggedoff": "Agente desconectado",
        "conf-adminmenu": "Por favor marque uno para habilitar, dos para bloquear.",  # lone digits read as words
        "digits/1": "uno",
        "vm-savefolder": "En que carpeta desea guardar el mensaje?",
        # dropped: notes alone (beep), a number of several digits (500: how is it read?),
        # a bracketed word among words (said or not?), a name given twice with two texts
    }


def test_italian_transcripts_are_repaired() -> None:
    assert ds.parse_asterisk_transcripts(ITALIAN.splitlines(), "it") == {
        "conf-full": "La conferenza è piena.",
        "cannot-complete-as-dialed": "La chiamata non può essere completata così come composta.",
        "letters/at": "a",  # a symbol in brackets is a note, not a word
        "spy-iax2": "IAX",
    }


def test_french_digits_and_english_unchanged() -> None:
    assert ds.normalize_asterisk_text("appuyez sur 5, puis sur 1.", "fr") == "appuyez sur cinq, puis sur un."
    assert ds.normalize_asterisk_text("composez le * 7", "fr") == ""  # the reader's word for '*' is not known
    assert ds.normalize_asterisk_text("dial 500 now") == "dial five zero zero now"
    assert ds.normalize_asterisk_text("Press * [beep]") == "Press star"


def test_split_by_name_hash_is_stable_and_disjoint() -> None:
    prompts = [Utterance("", "x", f"asterisk-es/prompt-{i}", language="es") for i in range(400)]
    calib = {u.id for u in prompts if ds.asterisk_part(u) == "calib"}
    evaluation = {u.id for u in prompts if ds.asterisk_part(u) == "eval"}
    assert calib.isdisjoint(evaluation) and len(calib | evaluation) == 400
    assert 0.18 < len(calib) / 400 < 0.32
    # the same ids give the same parts on every run (sha256 of the id, not Python's hash)
    assert [ds.asterisk_part(u) for u in prompts[:8]] == [ds.asterisk_part(Utterance("", "y", u.id)) for u in prompts[:8]]
    # pinned: a change of the hash or the share would move prompts between the parts
    assert ds.asterisk_part(Utterance("", "x", "asterisk-es/agent-loggedoff")) == "calib"
    assert ds.asterisk_part(Utterance("", "x", "asterisk-es/conf-hasjoin")) == "eval"


@pytest.mark.parametrize(
    ("spec", "want"),
    [("asterisk", ("en", "")), ("asterisk-eval", ("en", "eval")), ("asterisk-all", ("en", "all")),
     ("asterisk-es", ("es", "")), ("asterisk-fr-calib", ("fr", "calib")), ("asterisk-it-all", ("it", "all")),
     ("asterisk-de", (None, "")), ("asterisk-es-test", (None, "")), ("fotaq-eval", (None, ""))],
)
def test_asterisk_set_names(spec: str, want: tuple) -> None:
    assert ds.asterisk_spec(spec) == want


def test_missing_language_package_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        ds.asterisk_set(sounds_dir=tmp_path, transcripts=tmp_path / "t.txt.gz", language="fr")
    assert "apt-get install asterisk-core-sounds-fr-g722 asterisk-core-sounds-fr" in err.value.fix


def test_language_folders_can_be_named_in_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LITEASR_ASTERISK_SOUNDS_IT", str(tmp_path))
    assert ds.asterisk_sound_dirs("it") == (tmp_path,)
    assert ds.asterisk_sound_dirs("en") != (tmp_path,)
    with pytest.raises(DatasetError, match="no G.722 Asterisk prompts") as err:
        ds.resolve_set("asterisk-it", "eval")
    assert "asterisk-core-sounds-it-g722" in err.value.fix


# --- manifests ----------------------------------------------------------------

def _manifest(tmp_path: Path, items: list[dict]) -> Path:
    sf.write(str(tmp_path / "a.wav"), np.zeros(1600, np.float32), 16000)
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def test_manifest_language_per_line_and_for_the_set(tmp_path: Path) -> None:
    path = _manifest(tmp_path, [{"audio": "a.wav", "text": "hello"},
                                {"language": "fr"},
                                {"audio": "a.wav", "text": "bonjour", "id": "b"},
                                {"audio": "a.wav", "text": "hola", "id": "c", "language": "es"}])
    assert [(u.text, u.language) for u in ds.load_manifest(path)] == [("hello", None), ("bonjour", "fr"),
                                                                      ("hola", "es")]


@pytest.mark.parametrize("language", ["spanish", "ES", 7, None])
def test_manifest_unknown_language_names_the_line(tmp_path: Path, language) -> None:
    path = _manifest(tmp_path, [{"audio": "a.wav", "text": "hi"}, {"audio": "a.wav", "text": "x", "language": language}])
    with pytest.raises(DatasetError) as err:
        ds.load_manifest(path)
    assert f"{path}, line 2" in err.value.problem and '"language"' in err.value.problem
    assert "Whisper's codes" in err.value.fix and "es" in err.value.fix
    if language == "ES":
        assert "lower case: 'es'" in err.value.problem


# --- synthetic voices ------------------------------------------------------------

def test_every_language_has_several_voices() -> None:
    for language, voices in syn.SYNTH_VOICES.items():
        assert len({v.label for v in voices}) >= 3, language
        picked = {syn.voice_for(language, f"prompt-{i}") for i in range(200)}
        assert picked == set(voices)  # each voice reads some prompts
        assert syn.voice_for(language, "prompt-1") == syn.voice_for(language, "prompt-1")


def test_synthetic_set_names(monkeypatch) -> None:
    with pytest.raises(DatasetError, match="unknown synthetic speech set 'synth-de'"):
        ds.resolve_set("synth-de", "eval")
    monkeypatch.setattr(syn.shutil, "which", lambda name: None)
    with pytest.raises(DatasetError) as err:
        syn.check_synthetic("synth-it-eval", "calib")
    if err.value.problem.endswith("are not installed"):  # the texts are missing first
        assert "asterisk-core-sounds-it" in err.value.fix
    else:
        assert "espeak-ng is not installed" in err.value.problem and "festvox-italp16k" in err.value.fix


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="apt-get install espeak-ng")
def test_espeak_voice_writes_flac(tmp_path: Path) -> None:
    dst = tmp_path / "v" / "x.flac"
    syn._synthesize(syn.Voice("espeak-ng", "es+f3"), "Por favor ingrese su contraseña.", dst, "hint")
    info = sf.info(str(dst))
    assert info.format == "FLAC" and 1.0 < info.duration < 5.0
    assert not list(tmp_path.rglob("*.tmp"))


# --- real prompts ----------------------------------------------------------------

@pytest.mark.skipif(not HAVE_ASTERISK_ES,
                    reason="apt-get install asterisk-core-sounds-es-g722 asterisk-core-sounds-es && pip install g722")
def test_real_spanish_prompt(tmp_path: Path) -> None:
    got = ast.asterisk_set(language="es", cache_dir=tmp_path)
    by_id = {u.id: u for u in got}
    assert 400 < len(got) < 520
    u = by_id["asterisk-es/agent-loggedoff"]
    assert (u.text, u.language, u.speaker) == ("Agente desconectado", "es", "asterisk")
    audio, rate = sf.read(u.audio)
    assert rate == 16000 and 0.5 < len(audio) / rate < 4 and np.abs(audio).max() > 0.05
    assert "asterisk-es/digits/0" not in by_id and "asterisk-es/demo-instruct" not in by_id
    assert not any(ch.isdigit() for u in got for ch in u.text)
