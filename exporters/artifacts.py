"""The export driver: writes ``frontend.onnx``, ``encoder.onnx``,
``decoder.onnx`` and ``tokenizer.json`` into a folder, then its
``manifest.json`` (the format is :mod:`liteasr_export.core.manifest`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx

from liteasr_export.core.graphs import GRAPH_FILES, graph_precision
from liteasr_export.core.integrity import sha256_file
from liteasr_export.core.manifest import (TOKENIZER_NAME, Manifest, build_manifest, graph_metadata, load_manifest,
                                     write_manifest)

from .decoder import export_decoder
from .encoder import export_encoder
from .frontend import export_frontend


def export_artifacts(
    loaded: "LoadedModel",  # noqa: F821
    out_dir: str | Path,
    *,
    attention: str = "auto",
    precision: str = "fp32",
    frontend: bool = True,
    encoder_options: dict[str, Any] | None = None,
) -> Manifest:
    """Export every graph of ``loaded`` into ``out_dir`` and write the manifest
    (with the sha256 of every file written here; ``liteasr-export`` later
    replaces that section with one covering the whole folder).

    ``attention`` goes to the encoder exporter; ``precision`` (``fp32``,
    ``fp16``, ``bf16``, ``int8``) to every exporter, which makes of it what
    :data:`liteasr_export.core.graphs.GRAPH_PRECISION` says. ``frontend=False``
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
    info = export_encoder(model, out_dir / GRAPH_FILES["encoder"], attention=attention, precision=precision,
                          **(encoder_options or {}))
    graphs["encoder"] = GRAPH_FILES["encoder"]
    export_info = {"encoder": _summary(info)}
    export_decoder(model, out_dir / GRAPH_FILES["decoder"], precision=precision)
    graphs["decoder"] = GRAPH_FILES["decoder"]
    export_info["decoder"] = {"precision": graph_precision(precision, "decoder")}
    for graph, file in graphs.items():  # each graph describes itself too
        props = graph_metadata(loaded.name, model.config, graph, graph_precision(precision, graph))
        describe_graph(out_dir / file, props)
    shutil.copyfile(loaded.tokenizer_path, out_dir / TOKENIZER_NAME)
    manifest = build_manifest(loaded.name, model.config, loaded.decoding, out_dir, graphs, export_info)
    written = [f for entry in manifest["graphs"].values() for f in (entry["file"], entry.get("data")) if f]
    manifest["sha256"] = {f: sha256_file(out_dir / f) for f in sorted([*written, TOKENIZER_NAME])}
    write_manifest(out_dir, manifest)
    return load_manifest(out_dir)


def describe_graph(path: Path, props: dict[str, str]) -> None:
    """Set ``props`` in the ONNX file's ``metadata_props`` (other entries stay;
    external weights are neither read nor rewritten)."""
    model = onnx.load(str(path), load_external_data=False)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for key, value in [*kept, *props.items()]:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def _summary(info: Any) -> dict[str, Any]:
    """The encoder exporter's report, without its per-layer detail; for fp16
    and int8 it keeps which nodes stayed float32 and why."""
    data = info.to_dict() if hasattr(info, "to_dict") else {}
    keys = ("precision", "opset", "attention", "fused_op", "reduced_layers", "notes", "fp16", "int8")
    return {k: data[k] for k in keys if data.get(k) is not None}
