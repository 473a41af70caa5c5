"""The artifacts folder's format: ``frontend.onnx``, ``encoder.onnx``,
``decoder.onnx``, ``tokenizer.json``, ``manifest.json`` (which describes the
rest so that Python, C++ and serving stacks can load the folder without this
toolchain) and TensorRT plans under ``trt/``.

Reading (:func:`load_manifest`) needs only the standard library, so the
torch-free ONNX Runtime path uses it. The export driver that writes a folder
is :mod:`exporters.artifacts`.
"""

from __future__ import annotations

import json
import os
import tempfile
import types
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from liteasr_export.core.decoding import DecodingOptions
from liteasr_export.core.errors import ArtifactError
from liteasr_export.core.frontend import FrontendParams
from liteasr_export.core.graphs import GRAPH_FILES, REQUIRED_GRAPHS, shares_cross
from liteasr_export.core.integrity import verify_files

MANIFEST_NAME = "manifest.json"
TOKENIZER_NAME = "tokenizer.json"
MANIFEST_FORMAT = "liteasr-export/1"
#: TensorRT engines and their timing cache live here inside the artifacts folder
ENGINE_DIR = "trt"
TIMING_CACHE_NAME = "timing.cache"


def engine_path(artifacts_dir: str | Path, graph: str) -> Path:
    """Where the TensorRT plan of ``graph`` lies in an artifacts folder."""
    return Path(artifacts_dir) / ENGINE_DIR / f"{graph}.plan"


def timing_cache_path(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir) / ENGINE_DIR / TIMING_CACHE_NAME


# ---------------------------------------------------------------- reading

@dataclass(frozen=True)
class Manifest:
    """A loaded, checked ``manifest.json``."""

    root: Path
    data: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        return self.data["model"]

    @property
    def decoding(self) -> DecodingOptions:
        return DecodingOptions.from_dict(self.data["decoding"])

    @property
    def frontend(self) -> FrontendParams:
        section = self.data["frontend"]
        return FrontendParams(**{k: section[k] for k in FrontendParams.__dataclass_fields__ if k in section})

    @property
    def tokenizer_path(self) -> Path:
        return self.root / self.data["tokenizer"]

    @property
    def default_audio_context(self) -> str:
        """``auto`` for an export tuned for trimmed audio contexts
        (``--context-tune``), else ``full`` (the ``audio_context`` section)."""
        return (self.data.get("audio_context") or {}).get("default", "full")

    def has_graph(self, name: str) -> bool:
        return name in self.data["graphs"]

    def graph_files(self, name: str) -> list[str]:
        """The files of one graph, relative to the folder: the graph, and its
        external weights when it has them."""
        info = self.data["graphs"][name]
        return [info[key] for key in ("file", "data") if key in info]

    def verify(self, graphs: Iterable[str], extra: Iterable[str] = ()) -> dict[str, str]:
        """Check the sha256 of these graphs' files, the tokenizer and ``extra``
        files against the manifest (:func:`liteasr_export.core.integrity.verify_files`);
        returns ``{file: sha256}``. Raises IntegrityError on a difference."""
        files = [f for g in graphs for f in self.graph_files(g)] + [self.data["tokenizer"], *extra]
        expected = self.data.get("sha256")
        return verify_files(self.root, expected if isinstance(expected, dict) else {}, files)

    @property
    def decoder_shares_cross(self) -> bool:
        """Whether the decoder graph lets a window's rows share its cross K/V
        (exports before that take one copy per row)."""
        inputs = self.data["graphs"].get("decoder", {}).get("inputs", [])
        return any(t["name"] == "cross_key.0" and shares_cross(t["shape"]) for t in inputs)

    def graph_spec(self, name: str) -> dict[str, list[dict[str, Any]]]:
        """The inputs and outputs the manifest records for one graph (name,
        shape, dtype; empty lists in manifests that record none)."""
        info = self.data["graphs"][name]
        return {kind: info.get(kind, []) for kind in ("inputs", "outputs")}

    def precision(self, name: str) -> str:
        """The precision ``name`` was exported in (``fp32`` when the manifest
        does not record it)."""
        return str((self.data["graphs"].get(name, {}).get("export") or {}).get("precision", "fp32"))

    @property
    def logits_size(self) -> int:
        """Rows of the decoder's logits: the last axis of its ``logits``
        output in the graph spec, else the model's ``vocab_size``."""
        for tensor in self.graph_spec("decoder")["outputs"]:
            if tensor["name"] == "logits" and tensor["shape"] and isinstance(tensor["shape"][-1], int):
                return tensor["shape"][-1]
        return int(self.model["vocab_size"])

    def check_tokenizer(self, tokenizer) -> None:
        """The tokenizer (a :class:`~liteasr_export.core.tokenizer.WhisperTokenizer`)
        has the vocabulary the decoder scores: a tokenizer.json copied from
        another model would turn every id into the wrong text."""
        if tokenizer.n_vocab != self.logits_size:
            raise ArtifactError(f"{tokenizer.path} does not belong to this model: its vocabulary has "
                                f"{tokenizer.n_vocab} tokens, the decoder scores {self.logits_size}",
                                "copy the tokenizer.json that was exported with the folder back, or re-export it")

    def verify_all(self) -> dict[str, str]:
        """:meth:`verify` every graph the manifest lists (a service checks the
        whole folder before it starts its replicas)."""
        return self.verify(list(self.data["graphs"]))

    def graph_path(self, name: str) -> Path:
        if not self.has_graph(name):
            raise ArtifactError(f"{self.root} has no {name} graph in its manifest",
                                f"re-export the folder with liteasr-export (it writes {GRAPH_FILES.get(name, name)})")
        return self.root / self.data["graphs"][name]["file"]


def load_manifest(out_dir: str | Path) -> Manifest:
    """Read ``manifest.json``, check the type of every field a runtime reads
    (:func:`check_manifest_layout`) and that every file it names exists."""
    root = Path(out_dir)
    if not root.is_dir():
        raise ArtifactError(f"artifacts folder not found: {root}", "export one with liteasr-export --output DIR")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST_NAME}",
                            "it is not an artifacts folder: re-export it with liteasr-export")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"cannot read {path}: it is not UTF-8 text (byte {exc.start})",
                            _REEXPORT) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}", _REEXPORT) from None
    check_manifest_layout(data, path)
    for name, info in data["graphs"].items():
        for key, what in (("file", "graph"), ("data", "graph weights")):
            if key in info and not (root / info[key]).is_file():
                raise ArtifactError(f"{root} is missing the {name} {what} {info[key]}",
                                    "copy the whole folder or re-export it with liteasr-export")
    if not (root / data["tokenizer"]).is_file():
        raise ArtifactError(f"{root} is missing {data['tokenizer']}", "copy the whole folder or re-export it")
    return Manifest(root, data)


_REEXPORT = "re-export the artifacts folder with liteasr-export"
#: the model dimensions a runtime reads (each a whole number > 0)
MODEL_DIMS = ("n_mels", "decoder_layers", "decoder_heads", "head_dim", "vocab_size")
#: the fields of one input or output in a graph's entry
_TENSOR_FIELDS = {"name": str, "shape": list[int | str], "dtype": str}
_GRAPH_FIELDS = {"file": str, "data": str, "inputs": list, "outputs": list, "export": dict}


def check_manifest_layout(data: Any, path: Path) -> None:
    """Every section a runtime reads has the JSON type it must have, so that
    a hand-edited or foreign ``manifest.json`` is refused here, with the field
    named, instead of failing somewhere in a runtime. The types are those of
    :class:`DecodingOptions` and :class:`FrontendParams` (their annotations)
    and of the model dimensions, graph entries and checksums."""
    def refuse(field: str, value: Any, expected: str) -> None:
        raise ArtifactError(f"{path}: {field} is {_json_kind(value)}, expected {expected}", _REEXPORT)

    if not isinstance(data, dict):
        refuse("the manifest", data, "a JSON object")
    missing = [k for k in ("model", "graphs", "tokenizer", "decoding", "frontend") if k not in data]
    if missing:
        raise ArtifactError(f"{path} lacks the section(s) {missing}", _REEXPORT)
    for section in ("model", "graphs", "decoding", "frontend"):
        if not isinstance(data[section], dict):
            refuse(f'"{section}"', data[section], "a JSON object")
    for key in MODEL_DIMS:
        value = data["model"].get(key)
        if not (_fits(value, int) and value > 0):
            refuse(f'"model"."{key}"', value, "a whole number > 0")
    for name in REQUIRED_GRAPHS:
        if name not in data["graphs"]:
            raise ArtifactError(f"{path} lists no {name} graph ({GRAPH_FILES[name]})", _REEXPORT)
    for name, info in data["graphs"].items():
        where = f'"graphs"."{name}"'
        if not isinstance(info, dict):
            refuse(where, info, "a JSON object")
        if "file" not in info:
            raise ArtifactError(f'{path}: {where} names no "file"', _REEXPORT)
        _check_fields(info, _GRAPH_FIELDS, where, refuse)
        for kind in ("inputs", "outputs"):
            for i, tensor in enumerate(info.get(kind, [])):
                if not isinstance(tensor, dict):
                    refuse(f'{where}."{kind}"[{i}]', tensor, "a JSON object")
                _check_fields(tensor, _TENSOR_FIELDS, f'{where}."{kind}"[{i}]', refuse)
    if not isinstance(data["tokenizer"], str):
        refuse('"tokenizer"', data["tokenizer"], "a file name")
    for section, cls, required in (("decoding", DecodingOptions, ("prompt", "eot")), ("frontend", FrontendParams, ("n_mels",))):
        for key in required:
            if key not in data[section]:
                raise ArtifactError(f'{path}: "{section}" lacks "{key}"', _REEXPORT)
        _check_fields(data[section], typing.get_type_hints(cls), f'"{section}"', refuse)
    context = data.get("audio_context")
    if context is not None and not (isinstance(context, dict) and context.get("default", "full") in ("full", "auto")):
        refuse('"audio_context"', context, 'a JSON object whose "default" is "full" or "auto"')
    checks = data.get("sha256", {})
    if not (isinstance(checks, dict) and all(isinstance(v, str) for v in checks.values())):
        refuse('"sha256"', checks, "a JSON object of file names and hex digests")


def _check_fields(section: dict, hints: dict[str, Any], where: str, refuse) -> None:
    for key, hint in hints.items():
        if key in section and not _fits(section[key], hint):
            refuse(f'{where}."{key}"', section[key], _hint_name(hint))


def _fits(value: Any, hint: Any) -> bool:
    """``value`` (parsed JSON) has the type ``hint`` names: int, float, str,
    bool, None, dict, list, list[X] or a union of them."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, hint)


def _hint_name(hint: Any, plural: bool = False) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_hint_name(a, plural) for a in args)
    if origin is list:
        return f"a list of {_hint_name(args[0], plural=True)}"
    names = {int: ("a whole number", "whole numbers"), float: ("a number", "numbers"), str: ("a string", "strings"),
             bool: ("true or false", "booleans"), type(None): ("null", "nulls"), dict: ("a JSON object", "objects"),
             list: ("a list", "lists")}
    return names[hint][plural] if hint in names else getattr(hint, "__name__", str(hint))


def _json_kind(value: Any) -> str:
    """How a parsed JSON value reads in a message: its type and a short excerpt."""
    kind = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    text = json.dumps(value)
    return f"{kind} ({text if len(text) <= 40 else text[:37] + '...'})"


# ---------------------------------------------------------------- writing

def graph_io(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """Inputs and outputs of an ONNX graph: name, shape (ints and axis names), dtype."""
    import onnx  # only when writing a manifest: reading one needs the standard library alone

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value) -> dict[str, Any]:
        tensor = value.type.tensor_type
        shape = [d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        return {"name": value.name, "shape": shape, "dtype": dtype}

    initializers = {init.name for init in graph.initializer}
    return {
        "inputs": [describe(v) for v in graph.input if v.name not in initializers],
        "outputs": [describe(v) for v in graph.output],
    }


def model_dims(config) -> dict[str, Any]:
    """The dimensions a runtime needs, from a transformers ``WhisperConfig``."""
    dims = {
        "n_mels": config.num_mel_bins,
        "d_model": config.d_model,
        "encoder_layers": config.encoder_layers,
        "encoder_heads": config.encoder_attention_heads,
        "decoder_layers": config.decoder_layers,
        "decoder_heads": config.decoder_attention_heads,
        "head_dim": config.d_model // config.decoder_attention_heads,
        "vocab_size": config.vocab_size,
        "n_audio_ctx": config.max_source_positions,
        "n_text_ctx": config.max_target_positions,
    }
    low_rank = getattr(config, "low_rank_config", None)
    if low_rank:
        dims["low_rank_config"] = low_rank
    return dims


def graph_metadata(name: str, config, graph: str, precision: str) -> dict[str, str]:
    """The manifest fields one graph carries in its own ``metadata_props``
    (ONNX stores strings), so that a single .onnx file says what it is."""
    return {
        "liteasr.format": MANIFEST_FORMAT,
        "liteasr.name": name,
        "liteasr.graph": graph,
        "liteasr.precision": precision,
        "liteasr.model": json.dumps(model_dims(config), sort_keys=True),
    }


def build_manifest(name: str, config, decoding: DecodingOptions, out_dir: str | Path,
                   graphs: dict[str, str], export_info: dict[str, dict] | None = None) -> dict[str, Any]:
    """The manifest of a folder whose graphs (``{"encoder": "encoder.onnx", ...}``)
    are written; ``export_info`` adds how each graph was made (precision...)."""
    out_dir = Path(out_dir)
    export_info = export_info or {}
    return {
        "format": MANIFEST_FORMAT,
        "name": name,
        "model": model_dims(config),
        "graphs": {g: _graph_entry(out_dir, f, export_info.get(g)) for g, f in graphs.items()},
        "tokenizer": TOKENIZER_NAME,
        "decoding": asdict(decoding),
        "frontend": asdict(FrontendParams(n_mels=config.num_mel_bins)),
    }


def _graph_entry(out_dir: Path, file: str, export: dict | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": file}
    data = out_dir / (file + ".data")  # external weights of graphs over 2 GB (exporters.precision.save_onnx)
    if data.is_file():
        entry["data"] = data.name
    entry.update(graph_io(out_dir / file))
    if export:
        entry["export"] = export
    return entry


def write_manifest(out_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """The one writer of ``manifest.json`` (atomic: a reader never sees half a file)."""
    out_dir = Path(out_dir)
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".manifest.", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; the folder is meant to be shared
    path = out_dir / MANIFEST_NAME
    os.replace(tmp, path)
    return path


def update_manifest(out_dir: str | Path, **sections: Any) -> Path:
    """Add or replace top-level sections (checksums, parity, WER...) of a written manifest."""
    manifest = load_manifest(out_dir)
    return write_manifest(out_dir, {**manifest.data, **sections})
