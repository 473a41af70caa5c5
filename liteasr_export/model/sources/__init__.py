"""Model sources: every ``--model`` spec becomes a :class:`LoadedModel`.

Specs: a bundled name (``tiny.en``, ``base``), a Hugging Face Whisper folder,
a CTranslate2 / faster-whisper folder (``model.bin`` or ``model.bin.part*``),
or a LiteASR / lite-whisper folder (``low_rank_config`` in config.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from liteasr_export.core.decoding import DecodingOptions, build_options
from liteasr_export.core.errors import ModelSourceError
from liteasr_export.core.tokenizer import WhisperTokenizer
from liteasr_export.model.sources import ct2
from liteasr_export.model.sources.bundled import BUNDLED


@dataclass
class LoadedModel:
    """A Whisper model ready for the PyTorch reference and for export."""

    name: str
    model: "WhisperForConditionalGeneration"  # noqa: F821
    tokenizer: WhisperTokenizer
    tokenizer_path: Path
    decoding: DecodingOptions
    source_kind: str  # "bundled", "ctranslate2", "huggingface", "lite-whisper"

    @property
    def is_low_rank(self) -> bool:
        return bool(getattr(self.model.config, "low_rank_config", None))


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}", "check the model folder is complete") from None
    if not isinstance(data, dict):
        raise ModelSourceError(f"{path} holds a JSON {type(data).__name__}, not an object",
                               "restore the model's original file")
    return data


def _whisper_config(dims: dict[str, int], tokenizer: WhisperTokenizer, suppress: list[int], begin: list[int]):
    from transformers import WhisperConfig  # transformers: only when a model is loaded

    return WhisperConfig(
        **dims,
        pad_token_id=tokenizer.eot,
        bos_token_id=tokenizer.eot,
        eos_token_id=tokenizer.eot,
        decoder_start_token_id=tokenizer.sot,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin,
    )


def _model_from_state_dict(config, state_dict: dict):
    """Build the HF model without random initialisation, then load the weights."""
    import torch  # only when a model is loaded (the ONNX path never does)
    from transformers import WhisperForConditionalGeneration  # transformers: only when a model is loaded

    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    tensors = {k: torch.from_numpy(v) for k, v in state_dict.items()}
    tensors["proj_out.weight"] = tensors["model.decoder.embed_tokens.weight"]
    missing, unexpected = model.load_state_dict(tensors, strict=False, assign=True)
    if missing or unexpected:
        raise ModelSourceError(
            f"weights do not fit the Whisper layout (missing {missing[:3]}, unexpected {unexpected[:3]})",
            "the model.bin is not a standard Whisper conversion",
        )
    model.tie_weights()
    return model.float().eval()


def load_ctranslate2(directory: Path, model_bins: list[Path] | None = None, name: str | None = None,
                     language: str | None = "en", kind: str = "ctranslate2") -> LoadedModel:
    """A CTranslate2 Whisper folder (config.json with suppress ids, tokenizer.json)."""
    bins = model_bins or ct2.model_bin_parts(directory)
    if not bins:
        raise ModelSourceError(f"no model.bin in {directory}", "pass a CTranslate2 Whisper folder")
    tokenizer_path = directory / "tokenizer.json"
    tokenizer = WhisperTokenizer(tokenizer_path)
    cfg = _read_json(directory / "config.json") if (directory / "config.json").is_file() else {}
    variables = ct2.read_model_bin(bins)
    dims = ct2.whisper_dims(variables)
    suppress, begin = cfg.get("suppress_ids") or [], cfg.get("suppress_ids_begin") or []
    model = _model_from_state_dict(_whisper_config(dims, tokenizer, suppress, begin),
                                   ct2.to_hf_state_dict(variables, dims))
    return LoadedModel(name or directory.name, model, tokenizer, tokenizer_path,
                       build_options(tokenizer, dims["vocab_size"], suppress, begin, language), kind)


def _tokenizer_json(directory: Path) -> Path:
    """tokenizer.json of an HF folder; slow-tokenizer folders are converted once."""
    path = directory / "tokenizer.json"
    if path.is_file():
        return path
    if (directory / "vocab.json").is_file():
        from transformers import WhisperTokenizerFast  # transformers: only when a model is loaded

        WhisperTokenizerFast.from_pretrained(str(directory)).save_pretrained(str(directory))
        if path.is_file():
            return path
    raise ModelSourceError(f"no tokenizer.json or vocab.json in {directory}", "copy the model's tokenizer files into the folder")


def load_huggingface(directory: Path, language: str | None = "en") -> LoadedModel:
    """A transformers Whisper folder (config.json + safetensors / bin weights)."""
    from transformers import WhisperForConditionalGeneration  # transformers: only when a model is loaded

    tokenizer_path = _tokenizer_json(directory)
    tokenizer = WhisperTokenizer(tokenizer_path)
    try:
        model = WhisperForConditionalGeneration.from_pretrained(str(directory), local_files_only=True).float().eval()
    except Exception as exc:  # transformers raises several error types here
        raise ModelSourceError(f"cannot load the Hugging Face model in {directory}: {exc}",
                               "check config.json and the weight files") from None
    gen = _read_json(directory / "generation_config.json") if (directory / "generation_config.json").is_file() else {}
    suppress = gen.get("suppress_tokens") or model.config.suppress_tokens or []
    begin = gen.get("begin_suppress_tokens") or model.config.begin_suppress_tokens or []
    return LoadedModel(directory.name, model, tokenizer, tokenizer_path,
                       build_options(tokenizer, model.config.vocab_size, suppress, begin, language), "huggingface")


def load_lite_whisper_source(directory: Path, language: str | None = "en") -> LoadedModel:
    """A LiteASR / lite-whisper folder, loaded into our low-rank modules."""
    from liteasr_export.model.lite_whisper import load_lite_whisper  # torch: only when a lite-whisper folder is loaded

    tokenizer_path = _tokenizer_json(directory)
    tokenizer = WhisperTokenizer(tokenizer_path)
    model = load_lite_whisper(directory)
    cfg = model.config
    return LoadedModel(directory.name, model, tokenizer, tokenizer_path,
                       build_options(tokenizer, cfg.vocab_size, cfg.suppress_tokens or [],
                                     cfg.begin_suppress_tokens or [], language), "lite-whisper")


def detect_kind(directory: Path) -> str:
    """Which loader a folder needs, from the files it holds."""
    config = directory / "config.json"
    if config.is_file() and "low_rank_config" in _read_json(config):
        return "lite-whisper"
    if ct2.model_bin_parts(directory):
        return "ctranslate2"
    if config.is_file() and _read_json(config).get("model_type") == "whisper":
        return "huggingface"
    raise ModelSourceError(
        f"{directory} is not a Whisper model folder I know (no model.bin, no config.json with "
        "model_type 'whisper' or 'low_rank_config')",
        "pass a Hugging Face, CTranslate2 or lite-whisper folder, or a bundled name: " + ", ".join(BUNDLED),
    )


def model_kind(spec: str | Path) -> str:
    """Which loader ``spec`` needs ("bundled", "lite-whisper", "ctranslate2",
    "huggingface"), from names and files only; raises ModelSourceError for a
    spec that cannot be a model. Cheap: used to check options up front."""
    spec_str = str(spec)
    if spec_str in BUNDLED:
        BUNDLED[spec_str].files()  # the package is installed and complete
        return "bundled"
    directory = Path(spec_str).expanduser()
    if not directory.exists():
        raise ModelSourceError(
            f"unknown model {spec_str!r}: not a bundled name and no such folder",
            "use one of " + ", ".join(BUNDLED) + " or a path to a model folder",
        )
    if not directory.is_dir():
        raise ModelSourceError(f"{directory} is a file; a model is a folder", "pass the folder that holds it")
    return detect_kind(directory)


def load_model(spec: str | Path, language: str | None = "en") -> LoadedModel:
    """Load ``spec``: a bundled name or a model folder."""
    kind = model_kind(spec)
    if kind == "bundled":
        folder, bins = BUNDLED[str(spec)].files()
        return load_ctranslate2(folder, bins, name=str(spec), language=language, kind="bundled")
    directory = Path(str(spec)).expanduser()
    loaders = {"lite-whisper": load_lite_whisper_source, "ctranslate2": load_ctranslate2, "huggingface": load_huggingface}
    return loaders[kind](directory, language=language)
