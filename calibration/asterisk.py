"""Real speech: the Asterisk telephony prompts, read from Debian packages
(``asterisk-core-sounds-LANG-g722``, audio, and ``asterisk-core-sounds-LANG``,
transcripts) in English, Spanish, French and Italian: one speaker a
language, decoded from G.722 into the cache on first use, split into a
calibration and an evaluation part by a hash of each prompt's name.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liteasr_export.core.cache import cache_root
from liteasr_export.core.errors import DatasetError

from .utterances import Utterance, write_flac_atomically

#: environment variable naming the folders (``:``-separated) to look for the
#: English G.722 prompts in, instead of the Debian package's (another
#: language's: the same name plus ``_ES``, ``_FR``, ``_IT``)
ASTERISK_SOUNDS_ENV = "LITEASR_ASTERISK_SOUNDS"


@dataclass(frozen=True)
class AsteriskLanguage:
    """One language of the Asterisk prompts: Debian's
    ``asterisk-core-sounds-CODE-g722`` (audio, in a folder named after the
    locale and the voice) and ``asterisk-core-sounds-CODE`` (transcripts,
    ``name: text`` lines).

    ``digits``: 0-9 as the reader says them (a lone digit in a transcript is
    read as its word). ``repairs``: damage in the transcript file and the
    text that is spoken instead. ``speaker``: the reader's label (the
    Spanish prompts are read by the English prompts' reader)."""

    code: str
    sound_dirs: tuple[Path, ...]
    digits: tuple[str, ...]
    speaker: str
    repairs: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The set's name: ``asterisk`` (English) or ``asterisk-CODE``."""
        return "asterisk" if self.code == "en" else f"asterisk-{self.code}"

    @property
    def transcripts(self) -> Path:
        return Path(f"/usr/share/doc/asterisk-core-sounds-{self.code}/core-sounds-{self.code}.txt.gz")

    @property
    def install(self) -> str:
        return (f"run: apt-get install asterisk-core-sounds-{self.code}-g722 asterisk-core-sounds-{self.code} "
                "&& pip install g722")

    @property
    def sounds_env(self) -> str:
        return ASTERISK_SOUNDS_ENV if self.code == "en" else f"{ASTERISK_SOUNDS_ENV}_{self.code.upper()}"


def _debian_dirs(*folders: str) -> tuple[Path, ...]:
    return (*(Path("/usr/share/asterisk/sounds") / f for f in folders), Path("/var/lib/asterisk/sounds") / folders[0])


ASTERISK_LANGUAGES = {
    "en": AsteriskLanguage("en", _debian_dirs("en", "en_US_f_Allison"),
                           tuple("zero one two three four five six seven eight nine".split()), "asterisk"),
    "es": AsteriskLanguage("es", _debian_dirs("es", "es_MX_f_Allison"),
                           tuple("cero uno dos tres cuatro cinco seis siete ocho nueve".split()), "asterisk"),
    "fr": AsteriskLanguage("fr", _debian_dirs("fr", "fr_CA_f_June"),
                           tuple("zéro un deux trois quatre cinq six sept huit neuf".split()), "asterisk-fr"),
    # The Italian transcript file lost its accented vowels to "?" in a few
    # words (a re-encoding upstream); the recordings say them.
    "it": AsteriskLanguage("it", _debian_dirs("it", "it_IT_m_Carlo"),
                           tuple("zero uno due tre quattro cinque sei sette otto nove".split()), "asterisk-it",
                           repairs=(("sar?", "sarà"), ("pu?", "può"), ("cos?", "così"), ("pi?", "più"),
                                    (" ? ", " è "))),
}
ENGLISH = ASTERISK_LANGUAGES["en"]
DEBIAN_ASTERISK_SOUND_DIRS = ENGLISH.sound_dirs
ASTERISK_TRANSCRIPTS = ENGLISH.transcripts


def asterisk_language(code: str) -> AsteriskLanguage:
    if code not in ASTERISK_LANGUAGES:
        raise DatasetError(f"no Asterisk prompts in language {code!r}",
                           f"use one of {', '.join(ASTERISK_LANGUAGES)}")
    return ASTERISK_LANGUAGES[code]


def asterisk_sound_dirs(language: str = "en") -> tuple[Path, ...]:
    """Where the prompts are looked for: ``$LITEASR_ASTERISK_SOUNDS`` (``_ES``,
    ``_FR``, ``_IT`` for the other languages) or Debian's folders."""
    lang = asterisk_language(language)
    named = os.environ.get(lang.sounds_env)
    return tuple(Path(p) for p in named.split(os.pathsep) if p) if named is not None else lang.sound_dirs
ASTERISK_INSTALL = ENGLISH.install
# Prompts whose transcript does not say how the recording reads its numbers
# ("extension 8500", "28.8 kilobit", "H.323"), so a reference text would be a guess.
ASTERISK_SKIP = frozenset({"demo-instruct", "spy-h323"})


_NOTES = re.compile(r"\[[^\]]*\]|\([^)]*\)|<[^>]*>")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
# Typos in the upstream transcript (the recordings say the corrected words).
_TYPOS = {"exclaimation-point": "exclamation point", "umute": "unmute"}
# A word in square brackets among other words ("Sus saludos [temporales]
# estan ...", "Spiacente, [quello] non è ..."): in the English file brackets
# hold notes, in the other languages' some hold words that may or may not be
# said, so those prompts are skipped rather than guessed.
_BRACKETED_WORD = re.compile(r"\[[^\]]*[^\W\d_][^\]]*\]")


def _say_number(match: re.Match[str], digits: tuple[str, ...]) -> str:
    # Telephony prompts read numbers digit by digit ("dial 500" is "five zero zero").
    return " " + " ".join("point" if c == "." else digits[int(c)] for c in match.group()) + " "


def normalize_asterisk_text(text: str, language: str = "en") -> str:
    """Make an Asterisk transcript line read as spoken; '' if nothing is spoken
    or the spoken text cannot be told from the line.

    Drops notes in [], () and <> ("[beep]", "(10 seconds of silence)"),
    reads digits one by one, fixes known typos, and collapses whitespace.
    Case and punctuation are kept. English: '*' is "star", '#' "pound".
    Other languages (their prompts are read from words, not digits by
    digit): a lone digit is its word ("appuyez sur 5": "cinq"); a line with
    a number of several digits ("composez 500": "cinq cents" or "cinq zéro
    zéro"?), a '*' or '#', or a word in square brackets among other words is
    '' (skipped); damage listed in the language's ``repairs`` is mended.
    """
    lang = asterisk_language(language)
    if language != "en":
        text = text.replace("\ufeff", "")
        for damaged, spoken in lang.repairs:
            text = text.replace(damaged, spoken)
        spoken_only = _NOTES.sub(" ", text)
        if (re.search(r"\d\d|\d[.,]\d|[*#]", spoken_only)
                or (_BRACKETED_WORD.search(text) and re.search(r"[^\W\d_]", _NOTES.sub(" ", text)))):
            return ""
    text = _NOTES.sub(" ", text)
    if language == "en":
        for wrong, right in _TYPOS.items():
            text = re.sub(rf"\b{re.escape(wrong)}\b", right, text)
        text = text.replace("*", " star ").replace("#", " pound ")
    text = _NUMBER.sub(lambda m: _say_number(m, lang.digits), text)
    text = " ".join(text.split())
    text = re.sub(r" ([,?!;:]|\.(?!\.))", r"\1", text)
    letters = r"[A-Za-z]" if language == "en" else r"[^\W\d_]"
    return text if re.search(letters, text) else ""


def parse_asterisk_transcripts(lines: list[str], language: str = "en") -> dict[str, str]:
    """``name: text`` lines (';' comments) -> {name: normalized text}, empty
    texts dropped, and names given twice with different texts (the Spanish
    file has two ``digits/0``, "cero" and "diez": which one is recorded?)."""
    out: dict[str, str] = {}
    ambiguous: set[str] = set()
    for line in lines:
        line = line.lstrip("\ufeff")
        if not line.strip() or line.lstrip().startswith(";") or ":" not in line:
            continue
        name, text = line.split(":", 1)
        name, text = name.strip(), normalize_asterisk_text(text, language)
        if name in out and out[name] != text:
            ambiguous.add(name)
        if text:
            out[name] = text
    return {name: text for name, text in out.items() if name not in ambiguous}


def _decode_g722(src: Path, dst: Path) -> None:
    """Decode one 16 kHz, 64 kbit/s G.722 file to 16-bit FLAC, atomically."""
    from G722 import G722  # optional (PyPI "g722"): without it only the Asterisk sets are unavailable

    pcm = np.frombuffer(G722(16000, 64000).decode(src.read_bytes()), dtype=np.int16)
    write_flac_atomically(dst, pcm, 16000)


#: share of the Asterisk prompts kept for calibration (by a stable hash of the name)
ASTERISK_CALIB_SHARE = 0.25


def asterisk_part(utterance: Utterance) -> str:
    """``calib`` for a fixed quarter of the prompts, ``eval`` for the rest
    (by a hash of the id, so each language's split is its own and stable)."""
    digest = hashlib.sha256(utterance.id.encode()).hexdigest()
    return "calib" if int(digest, 16) % 1000 < 1000 * ASTERISK_CALIB_SHARE else "eval"


def asterisk_available(language: str = "en") -> bool:
    """The G.722 prompts, their transcripts and the decoder are installed."""
    return (importlib.util.find_spec("G722") is not None and asterisk_language(language).transcripts.is_file()
            and any(any(d.glob("*.g722")) for d in asterisk_sound_dirs(language)))


def asterisk_set(
    sounds_dir: str | os.PathLike[str] | None = None,
    transcripts: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    language: str = "en",
) -> list[Utterance]:
    """Real speech: the Asterisk prompts in ``language`` (en, es, fr, it; one
    speaker each, CC-BY-SA-3.0).

    The G.722 files are decoded once into ``cache_dir`` (default
    ``$XDG_CACHE_HOME/liteasr-export/asterisk``, ``asterisk-CODE`` for the
    other languages) because the frontend reads audio with soundfile, which
    has no G.722 decoder. Prompts without speech (silence, tones), whose
    spoken text is unsure (:func:`normalize_asterisk_text`) or without a
    recording are skipped. Every utterance carries ``language``.
    """
    lang = asterisk_language(language)
    if sounds_dir is None:
        sounds_dir = next((d for d in asterisk_sound_dirs(language) if any(d.glob("*.g722"))), None)
    transcripts = Path(transcripts) if transcripts is not None else lang.transcripts
    if sounds_dir is None or not any(Path(sounds_dir).glob("*.g722")):
        where = sounds_dir or " or ".join(map(str, asterisk_sound_dirs(language))) or f"${lang.sounds_env} (empty)"
        raise DatasetError(f"no G.722 Asterisk prompts in {where}", lang.install)
    if not transcripts.is_file():
        raise DatasetError(f"Asterisk transcripts not found: {transcripts}", lang.install)
    try:
        import G722  # noqa: F401  (optional: PyPI g722)
    except ImportError:
        raise DatasetError("the G.722 decoder (PyPI package 'g722') is not installed", lang.install) from None

    sounds = Path(sounds_dir)
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / lang.name
    opener = gzip.open if transcripts.suffix == ".gz" else open
    with opener(transcripts, "rt", encoding="utf-8", errors="replace") as f:
        texts = parse_asterisk_transcripts(f.read().splitlines(), language)
    out: list[Utterance] = []
    for name in sorted(texts):
        src = sounds / f"{name}.g722"
        if name in ASTERISK_SKIP or not src.is_file():
            continue
        dst = cache / f"{name}.flac"
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            _decode_g722(src, dst)
        out.append(Utterance(str(dst.resolve()), texts[name], f"{lang.name}/{name}", lang.speaker, language))
    if not out:
        raise DatasetError(f"no Asterisk prompt in {sounds} matches a transcript in {transcripts}", lang.install)
    return out
