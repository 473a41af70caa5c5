"""The language codes Whisper knows, and which of them are written without
spaces between words (scored by character error rate as well: a word error
rate over text without spaces counts whole phrases as one word).

Data only, no imports: the speech sets (``calibration``) check a manifest's
``"language"`` against :data:`WHISPER_LANGUAGES` without loading a tokenizer,
and ``core.evaluation`` picks a normalizer by it.
"""

from __future__ import annotations

#: Whisper's language codes (``<|xx|>`` tokens), in the tokenizer's order
WHISPER_LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur hr bg lt la "
    "mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si km sn yo so af oc ka be "
    "tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln ha ba jw su yue"
).split()

#: written without spaces between words: Chinese, Japanese, Thai, Lao,
#: Burmese, Khmer, Tibetan, Cantonese
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "km", "bo", "yue"})


def language_problem(code: object) -> str | None:
    """Why ``code`` is not a Whisper language code (None when it is one)."""
    if not isinstance(code, str):
        return f"the language must be a string such as \"es\", not {code!r}"
    if code not in WHISPER_LANGUAGES:
        hint = f" (lower case: {code.lower()!r})" if code.lower() in WHISPER_LANGUAGES else ""
        return f"unknown language code {code!r}{hint}"
    return None
