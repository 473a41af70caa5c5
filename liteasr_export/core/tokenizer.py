"""Whisper vocabulary and special tokens, on the ``tokenizers`` library.

Both the PyTorch and the torch-free ONNX Runtime paths use this class, so the
special-token ids always come from ``tokenizer.json`` (English-only and
multilingual vocabularies differ; nothing is hard-coded).
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from liteasr_export.core.errors import ModelSourceError

TASKS = ("transcribe", "translate")
#: timestamp tokens <|0.00|> ... <|30.00|>, after <|notimestamps|> in every Whisper vocabulary
N_TIMESTAMPS = 1501


def check_language(tokenizer: "WhisperTokenizer", language: str | None, task: str = "transcribe") -> None:
    """``language`` (a code, or None/"auto" for detection) and ``task`` suit the model."""
    if task not in TASKS:
        raise ModelSourceError(f"unknown `task` {task!r}", "use `task=transcribe` or `task=translate`", field="task")
    if not tokenizer.is_multilingual:
        if language not in (None, "auto", "en"):
            raise ModelSourceError(f"this is an English-only model: it cannot transcribe `language={language}`",
                                   "use a multilingual model (e.g. `model=base`) or `language=en`", field="language")
        if task == "translate":
            raise ModelSourceError("this is an English-only model: it cannot `task=translate`",
                                   "use a multilingual model (e.g. `model=base`)", field="task")
        return
    if language not in (None, "auto") and language not in tokenizer.language_ids:
        raise ModelSourceError(f"unknown language code {language!r}",
                               f"use auto or one of {', '.join(sorted(tokenizer.language_ids))}", field="language")


class WhisperTokenizer:
    """Thin wrapper over a ``tokenizers.Tokenizer`` loaded from tokenizer.json."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelSourceError(f"tokenizer.json not found: {self.path}", "export or copy the model's tokenizer.json")
        try:
            self._tok = Tokenizer.from_file(str(self.path))
        except Exception as exc:  # tokenizers raises a bare Exception for JSON and schema errors
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelSourceError(f"cannot read tokenizer {self.path} ({reason})",
                                   "restore the model's original tokenizer.json, or re-export the folder") from None
        self.eot = self._require("<|endoftext|>")
        self.sot = self._require("<|startoftranscript|>")
        self.no_timestamps = self._require("<|notimestamps|>")
        self.transcribe = self._tok.token_to_id("<|transcribe|>")
        self.translate = self._tok.token_to_id("<|translate|>")
        self.no_speech = self._tok.token_to_id("<|nospeech|>") or self._tok.token_to_id("<|nocaptions|>")
        self.language_ids = self._languages()

    def _require(self, token: str) -> int:
        idx = self._tok.token_to_id(token)
        if idx is None:
            raise ModelSourceError(f"{self.path} has no {token} token", "use a Whisper tokenizer.json")
        return idx

    def _languages(self) -> dict[str, int]:
        """Language tokens sit between <|startoftranscript|> and <|translate|>."""
        if self.translate is None:
            return {}
        out = {}
        for idx in range(self.sot + 1, self.translate):
            token = self._tok.id_to_token(idx)
            if token and token.startswith("<|") and token.endswith("|>"):
                out[token[2:-2]] = idx
        return out

    @property
    def is_multilingual(self) -> bool:
        # The multilingual BPE has one more base token than GPT-2's, so its
        # <|endoftext|> sits at 50257 instead of 50256 (as in openai-whisper).
        return self.eot > 50256

    def prompt(self, language: str | None = "en", task: str = "transcribe", timestamps: bool = False) -> list[int]:
        """Decoder prompt: sot [language task] [notimestamps]. English-only
        models take no language or task token, and refuse another language
        or translation with a clear error."""
        check_language(self, language, task)
        tail = [] if timestamps else [self.no_timestamps]
        if not self.is_multilingual:
            return [self.sot, *tail]
        task_id = self.transcribe if task == "transcribe" else self.translate
        placeholder = language in (None, "auto")  # detection writes the language token in
        return [self.sot, self.language_ids["en" if placeholder else language], task_id, *tail]

    def decode(self, ids: list[int]) -> str:
        """Text of the content tokens (special tokens, all >= eot, dropped)."""
        return self._tok.decode([i for i in ids if i < self.eot], skip_special_tokens=True).strip()

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    @property
    def n_vocab(self) -> int:
        """Rows of the logits of a model with this vocabulary: its tokens and
        the timestamp tokens after <|notimestamps|>, which many tokenizer.json
        files leave out."""
        return max(len(self), self.no_timestamps + 1 + N_TIMESTAMPS)

    def __len__(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)
