"""Generated speech in other languages: the Asterisk prompts' texts of a
language (Debian ``asterisk-core-sounds-LANG``, the transcripts alone) read
by several synthetic voices, so that no language rests on one voice.

``synth-es``, ``synth-fr``, ``synth-it``: espeak-ng voices (regional
variants, male and female) and, for Italian, Debian's two festival voices
(``festvox-italp16k``, female, and ``festvox-itapc16k``, male). Each prompt
is read by one voice, picked by a hash of its name, and is in the
calibration part exactly when the real prompt of that name is
(:func:`calibration.datasets.asterisk_part`): a text never sits in the
calibration part of one set and the evaluation part of the other.

Nothing is committed: the clips are synthesized on first use into
``$XDG_CACHE_HOME/liteasr-export/synth-LANG/VOICE/`` (FLAC) and read from
there afterwards, like the decoded Asterisk prompts.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from liteasr_export.core.cache import cache_root
from liteasr_export.core.errors import DatasetError

from .asterisk import asterisk_language, asterisk_part, parse_asterisk_transcripts
from .utterances import Utterance, write_flac_atomically


@dataclass(frozen=True)
class Voice:
    """A synthetic voice: ``engine`` espeak-ng (``name``: its voice, with a
    ``+variant``) or festival (``name``: the voice's Scheme function)."""

    engine: str
    name: str

    @property
    def label(self) -> str:
        return f"{self.engine}-{self.name.replace('+', '-')}"


def _espeak(*names: str) -> tuple[Voice, ...]:
    return tuple(Voice("espeak-ng", n) for n in names)


SYNTH_VOICES = {
    "es": _espeak("es", "es+f3", "es-419", "es-419+f2"),
    "fr": _espeak("fr-fr", "fr-fr+f3", "fr-be", "fr-ch+f2"),
    "it": _espeak("it", "it+f3") + (Voice("festival", "voice_lp_diphone"), Voice("festival", "voice_pc_diphone")),
}
#: the Debian packages the voices come from (the texts come from the Asterisk transcripts)
SYNTH_PACKAGES = {
    "es": ("espeak-ng", "asterisk-core-sounds-es"),
    "fr": ("espeak-ng", "asterisk-core-sounds-fr"),
    "it": ("espeak-ng", "festival", "festvox-italp16k", "festvox-itapc16k", "asterisk-core-sounds-it"),
}
#: what festival reads its text files as
_FESTIVAL_ENCODING = "latin-1"
_FESTIVAL_VOICE_DIRS = {"voice_lp_diphone": "lp_diphone", "voice_pc_diphone": "pc_diphone"}


def _install_hint(language: str) -> str:
    return f"run: apt-get install {' '.join(SYNTH_PACKAGES[language])}"


def _voice_problem(voice: Voice) -> str | None:
    if voice.engine == "espeak-ng":
        return None if shutil.which("espeak-ng") else "espeak-ng is not installed"
    if shutil.which("text2wave") is None:
        return "festival (text2wave) is not installed"
    folder = _FESTIVAL_VOICE_DIRS[voice.name]
    if not any(Path("/usr/share/festival/voices").glob(f"*/{folder}")):
        return f"the festival voice {folder} is not installed"
    return None


def synthetic_available(language: str) -> bool:
    """Every voice of ``language`` and its texts are installed."""
    return (language in SYNTH_VOICES and asterisk_language(language).transcripts.is_file()
            and not any(_voice_problem(v) for v in SYNTH_VOICES[language]))


def _synthesize(voice: Voice, text: str, dst: Path, hint: str) -> None:
    """Speak ``text`` into ``dst`` (FLAC, the voice's own rate), atomically."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        if voice.engine == "espeak-ng":
            command = ["espeak-ng", "-v", voice.name, "-w", str(wav), "--", text]
        else:
            source = Path(tmp) / "text.txt"
            source.write_text(text, encoding=_FESTIVAL_ENCODING, errors="replace")
            command = ["text2wave", "-eval", f"({voice.name})", str(source), "-o", str(wav)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0 or not wav.is_file():
            raise DatasetError(f"{voice.engine} voice {voice.name} failed on {text!r}: "
                               f"{(done.stderr or done.stdout).strip()[-300:]}", hint)
        samples, rate = sf.read(str(wav), dtype="int16")
    write_flac_atomically(dst, samples, rate)


def voice_for(language: str, name: str) -> Voice:
    """The voice that reads prompt ``name`` (a stable hash of it)."""
    voices = SYNTH_VOICES[language]
    return voices[int(hashlib.sha256(f"{language}/{name}".encode()).hexdigest(), 16) % len(voices)]


def check_synthetic(spec: str, purpose: str) -> tuple[str, str]:
    """``spec``'s (language, part), once its texts and voices are known to be
    installed (:class:`DatasetError` naming what to install otherwise)."""
    words = spec.split("-")
    language = words[1] if len(words) > 1 else ""
    part = words[2] if len(words) == 3 else purpose
    if language not in SYNTH_VOICES or len(words) > 3 or part not in ("calib", "eval", "all"):
        raise DatasetError(f"unknown synthetic speech set {spec!r}",
                           f"use synth-LANG[-calib|-eval|-all], LANG one of {', '.join(SYNTH_VOICES)}")
    transcripts = asterisk_language(language).transcripts
    if not transcripts.is_file():
        raise DatasetError(f"speech set {spec}: the texts ({transcripts}) are not installed", _install_hint(language))
    problems = sorted({p for v in SYNTH_VOICES[language] if (p := _voice_problem(v))})
    if problems:
        raise DatasetError(f"speech set {spec}: {'; '.join(problems)}", _install_hint(language))
    return language, part


def synthetic_set(spec: str, purpose: str, cache_dir: str | Path | None = None) -> list[Utterance]:
    """``synth-LANG`` (the part for ``purpose``), ``synth-LANG-calib``,
    ``synth-LANG-eval`` or ``synth-LANG-all``: the language's prompt texts,
    each read by one of its voices; synthesized once into the cache."""
    language, part = check_synthetic(spec, purpose)
    lang = asterisk_language(language)
    with gzip.open(lang.transcripts, "rt", encoding="utf-8", errors="replace") as f:
        texts = parse_asterisk_transcripts(f.read().splitlines(), language)
    cache = Path(cache_dir) if cache_dir is not None else cache_root() / f"synth-{language}"
    out: list[Utterance] = []
    for name in sorted(texts):
        real = Utterance("", texts[name], f"{lang.name}/{name}", language=language)
        if part != "all" and asterisk_part(real) != part:
            continue
        voice = voice_for(language, name)
        dst = cache / voice.label / f"{name}.flac"
        if not dst.is_file():
            _synthesize(voice, texts[name], dst, _install_hint(language))
        out.append(Utterance(str(dst.resolve()), texts[name], f"synth-{language}/{voice.label}/{name}",
                             voice.label, language))
    return out
