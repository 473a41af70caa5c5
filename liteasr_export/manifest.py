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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from .decoding import DecodingOptions
from .errors import ArtifactError
from .frontend import FrontendParams
from .graphs import GRAPH_FILES, REQUIRED_GRAPHS, shares_cross
from .integrity import verify_files

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
        return FrontendParams(**self.data["frontend"])

    @property
    def tokenizer_path(self) -> Path:
        return self.root / self.data["tokenizer"]

    def has_graph(self, name: str) -> bool:
        return name in self.data["graphs"]

    def graph_files(self, name: str) -> list[str]:
        """The files of one graph, relative to the folder: the graph, and its
        external weights when it has them."""
        info = self.data["graphs"][name]
        return [info[key] for key in ("file", "data") if key in info]

    def verify(self, graphs: Iterable[str], extra: Iterable[str] = ()) -> dict[str, str]:
        """Check the sha256 of these graphs' files, the tokenizer and ``extra``
        files against the manifest (:func:`liteasr_export.integrity.verify_files`);
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
    """Read ``manifest.json`` and check every file it names exists."""
    root = Path(out_dir)
    if not root.is_dir():
        raise ArtifactError(f"artifacts folder not found: {root}", "export one with liteasr-export --output DIR")
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise ArtifactError(f"{root} has no {MANIFEST_NAME}",
                            "it is not an artifacts folder: re-export it with liteasr-export")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}", "re-export the artifacts folder") from None
    missing_keys = [k for k in ("model", "graphs", "tokenizer", "decoding", "frontend") if k not in data]
    if missing_keys:
        raise ArtifactError(f"{path} lacks the section(s) {missing_keys}", "re-export the artifacts folder")
    for name in REQUIRED_GRAPHS:
        if name not in data["graphs"]:
            raise ArtifactError(f"{path} lists no {name} graph ({GRAPH_FILES[name]})", "re-export the artifacts folder")
    for name, info in data["graphs"].items():
        for key, what in (("file", "graph"), ("data", "graph weights")):
            if key in info and not (root / info[key]).is_file():
                raise ArtifactError(f"{root} is missing the {name} {what} {info[key]}",
                                    "copy the whole folder or re-export it with liteasr-export")
    if not (root / data["tokenizer"]).is_file():
        raise ArtifactError(f"{root} is missing {data['tokenizer']}", "copy the whole folder or re-export it")
    return Manifest(root, data)


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
