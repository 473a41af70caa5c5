"""Scoring per language: the normalizer each language gets, CER, the
per-language results and table, and merging results decoded per language."""

from __future__ import annotations

import pytest

from liteasr_export.core import evaluation as ev
from liteasr_export.core.languages import NO_SPACE_LANGUAGES, WHISPER_LANGUAGES, language_problem


def test_english_and_unstated_use_the_english_normalizer() -> None:
    assert ev.normalize("Mr. Smith paid twenty dollars, colour!") == "mister smith paid $20 color"
    assert ev.normalize("Mr. Smith paid twenty dollars, colour!", "en") == ev.normalize("Mr. Smith paid twenty dollars, colour!")


@pytest.mark.parametrize(
    ("language", "text", "want"),
    [("es", "¿Cuál es su contraseña?", "cual es su contrasena"),
     ("fr", "Composez votre numéro d'agent, suivi du dièse.", "composez votre numero d agent suivi du diese"),
     ("it", "La conferenza è piena [nota].", "la conferenza e piena"),
     ("de", "Straße", "strasse")],
)
def test_other_languages_use_the_basic_normalizer_without_diacritics(language: str, text: str, want: str) -> None:
    assert " ".join(ev.normalize(text, language).split()) == want


def test_a_missing_accent_is_no_error_but_numbers_are_left_as_written() -> None:
    (errors, words), = ev.word_errors(["Ingrese su contrasena"], ["Ingrese su contraseña."], ["es"])
    assert (errors, words) == (0, 3)
    (errors, _), = ev.word_errors(["presione uno"], ["presione 1"], ["es"])
    assert errors == 1
    # English: the same pair differs in the basic normalizer, not in the English one
    assert ev.word_errors(["press one"], ["press 1"])[0][0] == 0


def test_character_errors() -> None:
    assert ev.char_errors("hola amigo", "hola amigos", "es") == (1, 10)
    assert ev.char_errors("abc", "", "es") == (3, 3)
    assert ev.char_errors("", "abc", "es") == (3, 0)
    # without spaces between words, the normalizer's spaces are not characters
    assert ev.char_errors("你好，世界。", "你好世界", "zh") == (0, 4)
    assert "zh" in NO_SPACE_LANGUAGES and "ja" in NO_SPACE_LANGUAGES


def test_score_per_language_and_table() -> None:
    result = ev.score(["a", "b", "c"], ["press one now", "hola amigo", "bonjour à tous"],
                      ["press 1 now", "hola amigos", "bonjour à tous"], 1.0, ["en", "es", "fr"])
    assert (result.n, result.errors, result.words) == (3, 1, 8)
    assert set(result.languages) == {"en", "es", "fr"}
    es = result.languages["es"]
    assert (es.n, es.errors, es.words, es.wer, es.char_errors, es.chars) == (1, 1, 2, 50.0, 1, 10)
    assert result.languages["fr"].wer == 0.0 and result.languages["en"].wer == 0.0
    assert [i.language for i in result.items] == ["en", "es", "fr"]
    d = result.to_dict()
    assert d["wer"] == result.wer and d["languages"]["es"]["cer"] == 10.0 and "cer" in d
    lines = result.table().splitlines()
    assert lines[0].split() == ["language", "n", "words", "WER", "%", "CER", "%", "failed"]
    assert lines[2].split() == ["es", "1", "2", "50.00", "10.00", "0"]
    assert len(lines) == 4


def test_unstated_language_is_scored_as_english() -> None:
    result = ev.score(["a"], ["Press one."], ["press 1"])
    assert list(result.languages) == [ev.UNSTATED] and result.wer == 0.0 and result.items[0].language is None


def test_merge_puts_items_back_in_set_order_and_sums() -> None:
    spanish = ev.score(["b", "d"], ["hola", "adios"], ["hola", "adio"], 2.0, ["es", "es"])
    english = ev.score(["a", "c"], ["hi", "bye"], ["hi", "by"], 3.0, ["en", "en"])
    english.items[1] = ev.EvalItem("c", "bye", "", 0, 0, "cannot decode", "en")
    merged = ev.merge([([1, 3], spanish), ([0, 2], english)])
    assert [i.audio for i in merged.items] == ["a", "b", "c", "d"]
    assert (merged.n, merged.failed, merged.errors, merged.words, merged.seconds) == (3, 1, 1, 3, 5.0)
    assert merged.languages["en"].failed == 1 and merged.languages["en"].n == 1
    assert merged.languages["es"].wer == 50.0


def test_language_codes() -> None:
    assert len(WHISPER_LANGUAGES) == len(set(WHISPER_LANGUAGES)) == 100
    assert language_problem("es") is None and language_problem("yue") is None
    assert "unknown language code 'xx'" in language_problem("xx")
    assert "lower case" in language_problem("FR")
    assert "must be a string" in language_problem(3)
