"""bench/multilingual.py's summary: per language, WER and CER over the
words of all its sets, detection weighted by clips, and the issue's
targets judged from them."""

from __future__ import annotations

from bench.multilingual import language_summary

BACKENDS = ["dense", "export", "faster-whisper int8"]


def _row(name: str, language: str, backend: str, errors: int, words: int) -> dict:
    return {"set": name, "language": language, "backend": backend, "clips": 10, "seconds": 2.0,
            "errors": errors, "words": words, "char_errors": errors * 3, "chars": words * 5}


def test_the_summary_pools_each_language_and_judges_its_bound() -> None:
    rows = [_row("a-es", "es", "dense", 10, 100), _row("a-es", "es", "export", 11, 100),
            _row("a-es", "es", "faster-whisper int8", 9, 100),
            _row("s-es", "es", "dense", 30, 100), _row("s-es", "es", "export", 31, 100),
            _row("s-es", "es", "faster-whisper int8", 40, 100),
            _row("b-en", "en", "dense", 5, 200), _row("b-en", "en", "export", 7, 200),
            _row("b-en", "en", "faster-whisper int8", 5, 200)]
    sets = [{"set": "a-es", "language": "es", "clips": 10, "detection_clips": 10,
             "detection_correct": {"dense": 100.0, "export": 100.0, "faster-whisper int8": 90.0},
             "detection_agreement": {"export": 100.0, "faster-whisper int8": 90.0},
             "detection_kept": {"export": 100.0, "faster-whisper int8": 90.0}},
            {"set": "s-es", "language": "es", "clips": 10, "detection_clips": 0,  # dense never right: nothing kept
             "detection_correct": {"dense": 0.0, "export": 10.0, "faster-whisper int8": 0.0},
             "detection_agreement": {"export": 90.0, "faster-whisper int8": 100.0},
             "detection_kept": {}},
            {"set": "b-en", "language": "en", "clips": 10, "detection_clips": 10,
             "detection_correct": {"dense": 100.0, "export": 90.0, "faster-whisper int8": 100.0},
             "detection_agreement": {"export": 90.0, "faster-whisper int8": 100.0},
             "detection_kept": {"export": 90.0, "faster-whisper int8": 100.0}}]
    summary = language_summary(rows, sets, BACKENDS)
    es, en = summary["es"], summary["en"]
    assert (es["dense"]["wer"], es["export"]["wer"], es["faster-whisper int8"]["wer"]) == (20.0, 21.0, 24.5)
    assert es["export"]["cer"] == round(100 * 126 / 1000, 2) and es["export"]["words"] == 200
    assert es["export"]["detection_agreement"] == 95.0 and es["export"]["detection_kept"] == 100.0
    assert es["export"]["detection_correct"] == 55.0
    assert es["targets"] == {"wer_increase": 1.0, "wer_bound": 1.0, "wer_met": True, "detection_met": True,
                             "export_minus_faster_whisper": -3.5, "dense_minus_faster_whisper": -4.5}
    # English: +1.0 against a +0.5 bound, and detection kept on 90 % of the clips
    assert en["targets"]["wer_increase"] == 1.0 and not en["targets"]["wer_met"]
    assert not en["targets"]["detection_met"]
