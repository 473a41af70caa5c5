"""Calibration mixes: several speech sources, balanced per source and, inside
a source, per speaker.

Statistics fitted to one kind of speech fit that kind only (the project's
held-out measurements: synthetic-only calibration doubled the errors on real
speakers, one real speaker alone broke the model), so the default
calibration draws the same number of utterances from every available source:
real multi-speaker dialogue (``fotaq``), real telephone prompts
(``asterisk``), generated voices (``builtin``), plus whatever the user names.

A multilingual model is calibrated on its other languages too
(``multilingual=True``): statistics from English alone can cut directions
that other languages need. The default then adds, per language of
:data:`LANGUAGE_SOURCES`, its real prompts (``asterisk-LANG``) and its
synthetic voices (``synth-LANG``), and balances the languages: each gets the
utterances English gets (``per_source`` from each of its
:data:`DEFAULT_SOURCES`), split evenly between its own sources. An
English-only model's default mix is unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from liteasr_export.core.errors import DatasetError

from .datasets import (SPLIT_SETS, Utterance, asterisk_available, asterisk_language, asterisk_spec,
                       resolve_set)
from .fotaq import FETCH_HINT, find_archive
from .synthetic import check_synthetic

#: what ``--calib default`` mixes, in order; sources that are not installed are
#: left out with a note (``builtin`` ships with the package, so one always remains)
DEFAULT_SOURCES = ("fotaq", "asterisk", "builtin")
DEFAULT_SPEC = "default"
#: sources of generated (synthetic) speech: statistics from these alone fit
#: generated voices and can hide damage on real speakers (DESIGN.md, section 9)
GENERATED_SOURCES = ("builtin", "synth")
#: utterances drawn from each source by default
DEFAULT_PER_SOURCE = 48
#: the sources of each language besides English that the default mix of a
#: multilingual model adds (real prompts, then synthetic voices)
LANGUAGE_SOURCES = {code: (f"asterisk-{code}", f"synth-{code}") for code in ("es", "fr", "it")}


@dataclass
class Source:
    """One named source of a mix and the utterances drawn from it."""

    name: str
    utterances: list[Utterance]

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances if u.speaker is not None})


@dataclass
class Mix:
    """The sources of a calibration (or evaluation) mix, and the requested
    sources that were unavailable, with the reason."""

    sources: list[Source]
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def utterances(self) -> list[Utterance]:
        """Interleaved: one utterance of each source in turn."""
        out: list[Utterance] = []
        longest = max((len(s.utterances) for s in self.sources), default=0)
        for i in range(longest):
            out += [s.utterances[i] for s in self.sources if i < len(s.utterances)]
        return out

    @property
    def generated_only(self) -> bool:
        """Every source is generated speech (no real speaker in the mix)."""
        return bool(self.sources) and all(s.name.split("-")[0] in GENERATED_SOURCES for s in self.sources)

    @property
    def languages(self) -> dict[str, int]:
        """Utterances per stated language (none stated: English)."""
        counts: dict[str, int] = {}
        for u in self.utterances:
            counts[u.language or "en"] = counts.get(u.language or "en", 0) + 1
        return counts

    def describe(self) -> dict:
        described = {
            "sources": {s.name: {"utterances": len(s.utterances), "speakers": s.speakers} for s in self.sources},
            "missing": dict(self.missing),
        }
        if len(self.languages) > 1:  # a multilingual mix says how its languages were balanced
            described["languages"] = self.languages
        return described


def _stable_key(text: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}|{text}".encode()).hexdigest()


def balanced_sample(utterances: Sequence[Utterance], n: int | None, seed: int = 0) -> list[Utterance]:
    """At most ``n`` utterances, speakers taking turns (each speaker's clips in
    a fixed pseudo-random order), so a set dominated by one voice still yields
    every voice. Deterministic for a given ``seed``; ``None`` keeps all (reordered)."""
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker or "", []).append(u)
    queues = [sorted(group, key=lambda u: _stable_key(u.id, seed)) for _, group in sorted(by_speaker.items())]
    out: list[Utterance] = []
    limit = len(utterances) if n is None else min(n, len(utterances))
    depth = 0
    while len(out) < limit:
        out += [q[depth] for q in queues if depth < len(q)][: limit - len(out)]
        depth += 1
    return out


def default_sources(multilingual: bool = False) -> tuple[str, ...]:
    """What ``default`` expands to: :data:`DEFAULT_SOURCES`, and for a
    multilingual model every source of :data:`LANGUAGE_SOURCES` after them."""
    extra = tuple(name for names in LANGUAGE_SOURCES.values() for name in names) if multilingual else ()
    return DEFAULT_SOURCES + extra


def language_of_source(name: str) -> str | None:
    """The language whose source of :data:`LANGUAGE_SOURCES` ``name`` is (None: another source)."""
    return next((code for code, names in LANGUAGE_SOURCES.items() if name in names), None)


def language_quota(english: int, sources: int) -> int:
    """Utterances drawn from each of a language's ``sources`` installed
    sources in a multilingual default mix: the ``english`` utterances the
    English sources gave, split evenly between them (so each language
    weighs as much as English, whichever of its sources are installed)."""
    return max(1, english // max(sources, 1))


def split_spec(spec: str, multilingual: bool = False) -> list[str]:
    """``"fotaq,asterisk,my/folder"`` -> its parts; ``default`` -> :func:`default_sources`."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise DatasetError(f"empty speech set {spec!r}", "name a set, e.g. default or fotaq,builtin")
    return [name for p in parts for name in (default_sources(multilingual) if p == DEFAULT_SPEC else (p,))]


def check_spec(spec: str, purpose: str = "calib") -> None:
    """Fail now, without decoding anything, when a source the user named
    explicitly cannot be read (the default's sources are optional)."""
    explicit = [p.strip() for p in spec.split(",") if p.strip() and p.strip() != DEFAULT_SPEC]
    split_spec(spec)  # an empty spec fails here
    for name in explicit:
        base = name.partition("-")[0]
        if base == "fotaq" and name.partition("-")[2] in ("", "calib", "eval"):
            if find_archive() is None:
                raise DatasetError(f"speech set {name}: the flight-of-the-amazon-queen speech is not available",
                                   FETCH_HINT)
        elif asterisk_spec(name)[0] is not None:
            language = asterisk_language(asterisk_spec(name)[0])
            if not asterisk_available(language.code):
                raise DatasetError(f"speech set {name}: the Asterisk prompts are not installed", language.install)
        elif base == "synth":
            check_synthetic(name, purpose)
        elif base not in SPLIT_SETS:
            resolve_set(name, purpose)


def resolve_mix(spec: str, purpose: str, per_source: int | None = DEFAULT_PER_SOURCE, seed: int = 0,
                multilingual: bool = False) -> Mix:
    """The sources named by ``spec`` (comma-separated; ``default`` expands to
    :func:`default_sources`), ``per_source`` utterances from each, balanced
    per speaker. A source of the default that is not installed is skipped with
    a note; a source the user named explicitly must resolve.

    ``multilingual``: the model speaks more than English, so ``default`` adds
    the other languages' sources, each language drawing as many utterances
    as the English sources gave (:func:`language_quota`); sources named
    explicitly keep ``per_source``."""
    explicit = {p.strip() for p in spec.split(",")} - {DEFAULT_SPEC}
    missing: dict[str, str] = {}
    found: dict[str, list[Utterance]] = {}
    for name in dict.fromkeys(split_spec(spec, multilingual)):
        try:
            found[name] = resolve_set(name, purpose)
        except DatasetError as exc:
            if name in explicit:
                raise
            missing[name] = str(exc)  # the caller says so: the export prints it and the report lists it
    drawn = {name: balanced_sample(utterances, per_source, seed) for name, utterances in found.items()
             if name in explicit or not multilingual or language_of_source(name) is None}
    english = sum(len(drawn[name]) for name in DEFAULT_SOURCES if name in drawn)
    others = [name for name in found if name not in drawn]  # the other languages' sources of the default
    for name in others:
        installed = sum(language_of_source(n) == language_of_source(name) for n in others)
        quota = language_quota(english, installed) if per_source is not None else None
        drawn[name] = balanced_sample(found[name], quota, seed)
    sources = [Source(name, drawn[name]) for name in found]
    if not sources:
        raise DatasetError(f"no source of {spec!r} is available ({'; '.join(missing.values())})",
                           "use builtin (generated speech), or install the sources named above")
    return Mix(sources, missing)
