"""The export driver: writes ``frontend.onnx``, ``encoder.onnx``,
``decoder.onnx`` and ``tokenizer.json`` into a folder, then its
``manifest.json`` (the format is :mod:`liteasr_export.manifest`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from liteasr_export.graphs import GRAPH_FILES
from liteasr_export.integrity import sha256_file
from liteasr_export.manifest import TOKENIZER_NAME, Manifest, build_manifest, load_manifest, write_manifest

from .decoder import export_decoder
from .encoder import export_encoder
from .frontend import export_frontend


def export_artifacts(
    loaded: "LoadedModel",  # noqa: F821
    out_dir: str | Path,
    *,
    attention: str = "auto",
    fp16: bool = False,
    int8: bool = False,
    frontend: bool = True,
    encoder_options: dict[str, Any] | None = None,
) -> Manifest:
    """Export every graph of ``loaded`` into ``out_dir`` and write the manifest
    (with the sha256 of every file written here; ``liteasr-export`` later
    replaces that section with one covering the whole folder).

    ``attention``, ``fp16`` and ``int8`` go to the encoder exporter; ``int8``
    also quantizes the decoder's MatMuls (dynamic int8). ``frontend=False``
    leaves out ``frontend.onnx`` (runtimes then use the numpy frontend).
    ``encoder_options``: more keywords for ``export_encoder`` (e.g.
    ``calibration_features`` for the fp16 overflow check).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = loaded.model
    graphs: dict[str, str] = {}
    if frontend:
        export_frontend(model.config.num_mel_bins, out_dir / GRAPH_FILES["frontend"])
        graphs["frontend"] = GRAPH_FILES["frontend"]
    info = export_encoder(model, out_dir / GRAPH_FILES["encoder"], attention=attention, fp16=fp16, int8=int8,
                          **(encoder_options or {}))
    graphs["encoder"] = GRAPH_FILES["encoder"]
    export_info = {"encoder": _summary(info)}
    export_decoder(model, out_dir / GRAPH_FILES["decoder"], int8=int8)
    graphs["decoder"] = GRAPH_FILES["decoder"]
    export_info["decoder"] = {"precision": "int8" if int8 else "fp32"}
    shutil.copyfile(loaded.tokenizer_path, out_dir / TOKENIZER_NAME)
    manifest = build_manifest(loaded.name, model.config, loaded.decoding, out_dir, graphs, export_info)
    written = [f for entry in manifest["graphs"].values() for f in (entry["file"], entry.get("data")) if f]
    manifest["sha256"] = {f: sha256_file(out_dir / f) for f in sorted([*written, TOKENIZER_NAME])}
    write_manifest(out_dir, manifest)
    return load_manifest(out_dir)


def _summary(info: Any) -> dict[str, Any]:
    """The encoder exporter's report, without its per-layer detail; for fp16
    and int8 it keeps which nodes stayed float32 and why."""
    data = info.to_dict() if hasattr(info, "to_dict") else {}
    keys = ("precision", "opset", "attention", "fused_op", "reduced_layers", "notes", "fp16", "int8")
    return {k: data[k] for k in keys if data.get(k) is not None}
