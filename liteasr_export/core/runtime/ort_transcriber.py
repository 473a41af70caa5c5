"""Transcription with ONNX Runtime from an artifacts folder.

numpy, onnxruntime and the tokenizer only: importing torch or transformers
here is a defect (tested in a subprocess). Decoding is the shared
:mod:`liteasr_export.core.decoding`; this module only supplies the frontend, the
encoder call and a decoder step that holds (and reorders) the KV cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from liteasr_export.core.decoding import RowOwners
from liteasr_export.core.errors import ArtifactError
from liteasr_export.core.graphs import cross_names, decoder_input_names, decoder_output_names
from liteasr_export.core.manifest import MANIFEST_NAME, Manifest, load_manifest
from liteasr_export.core.tokenizer import WhisperTokenizer
from liteasr_export.core.frontend import N_FRAMES
from liteasr_export.core.windowed import FULL_CONTEXT, TranscribeOptions, WindowedTranscriber

from .ort_session import create_session

FRONTENDS = ("auto", "graph", "numpy")

_ORT_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def _check_names(session, graph: str, inputs: list[str], outputs: list[str], exact: bool = True) -> None:
    """The graph has these inputs and outputs (``exact``: and no others)."""
    have_in = {i.name for i in session.get_inputs()}
    have_out = {o.name for o in session.get_outputs()}
    for kind, want, have in (("inputs", set(inputs), have_in), ("outputs", set(outputs), have_out)):
        missing, extra = sorted(want - have), sorted(have - want) if exact else []
        if missing or extra:
            raise ArtifactError(f"{graph} has unexpected {kind} (missing {missing[:4]}, unexpected {extra[:4]})",
                                "the graph does not match the manifest's model: re-export the artifacts folder")


def _describe(dtype: str, shape) -> str:
    return f"{dtype}[{', '.join(str(d) for d in shape)}]"


def _check_against_manifest(session, manifest: Manifest, graph: str) -> None:
    """The graph has the inputs and outputs (names, dtypes, fixed axes) that
    the manifest records for it: a graph from another export (another model's
    dimensions) is refused here instead of failing inside a decode."""
    file = manifest.graph_files(graph)[0]
    spec = manifest.graph_spec(graph)
    for kind, have in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        if not spec[kind]:
            continue  # a manifest from before graph specs were recorded
        want = {t["name"]: t for t in spec[kind]}
        got = {t.name: t for t in have}
        for name in sorted(set(want) ^ set(got)):
            where = "the graph" if name in got else "the manifest"
            raise ArtifactError(f"{file} does not match {MANIFEST_NAME}: only {where} has the {kind[:-1]} {name}",
                                _FOREIGN_GRAPH)
        for name, t in want.items():
            dtype = _ORT_DTYPE_NAMES.get(got[name].type, got[name].type)
            shape = list(got[name].shape)
            fixed_differ = len(shape) != len(t["shape"]) or any(
                isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, t["shape"]))
            if dtype != t["dtype"] or fixed_differ:
                raise ArtifactError(f"{file} does not match {MANIFEST_NAME}: its {kind[:-1]} {name} is "
                                    f"{_describe(dtype, shape)}, the manifest records {_describe(t['dtype'], t['shape'])}",
                                    _FOREIGN_GRAPH)


_FOREIGN_GRAPH = "the graph comes from another export: copy the folder's own graph back, or re-export the folder"
_ORT_DTYPE_NAMES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
                    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8",
                    "tensor(uint8)": "uint8", "tensor(bool)": "bool"}


class OnnxTranscriber(WindowedTranscriber):
    """Transcribe 16 kHz audio with ``frontend.onnx`` (or the numpy frontend),
    ``encoder.onnx`` and ``decoder.onnx``.

    ``threads``: intra-op threads per session (None: ONNX Runtime's default).
    ``frontend``: ``graph`` runs frontend.onnx, ``numpy`` the shared Python
    frontend, ``auto`` the graph when the folder has one.
    ``batch_size``: windows of long audio encoded and decoded together.
    ``verify``: check the sha256 of every file loaded against the manifest
    (fast after the first check: see :mod:`liteasr_export.core.integrity`).
    ``settings``: decoding choices (beam, fallback, timestamps, language).
    """

    def __init__(
        self,
        artifacts_dir: str | Path,
        threads: int | None = None,
        providers: Sequence[str] | str | None = None,
        *,
        frontend: str = "auto",
        batch_size: int = 8,
        optimization: str = "all",
        cache_dir: str | Path | None = None,
        verify: bool = True,
        settings: TranscribeOptions | None = None,
    ) -> None:
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
        self.manifest: Manifest = load_manifest(artifacts_dir)
        dims = self.manifest.model
        self.n_mels = int(dims["n_mels"])
        self.n_layers = int(dims["decoder_layers"])
        self.heads = int(dims["decoder_heads"])
        self.head_dim = int(dims["head_dim"])
        self.batch_size = batch_size
        use_graph = frontend == "graph" or (frontend == "auto" and self.manifest.has_graph("frontend"))
        graphs = ["encoder", "decoder", *(["frontend"] if use_graph else [])]
        digests = self.manifest.verify(graphs) if verify else {}
        self.tokenizer = WhisperTokenizer(self.manifest.tokenizer_path)  # before the slower sessions
        self.manifest.check_tokenizer(self.tokenizer)  # the decoder's logits: the manifest's spec, checked below
        session = lambda name: create_session(self.manifest.graph_path(name), threads=threads,  # noqa: E731
                                              providers=providers, optimization=optimization,
                                              cache_dir=cache_dir, sha256=digests.get(self.manifest.graph_files(name)[0]))
        self.encoder = session("encoder")
        self.decoder = session("decoder")
        self.frontend = session("frontend") if use_graph else None
        for name in graphs:
            _check_against_manifest(getattr(self, name), self.manifest, name)
        self._cross = cross_names(self.n_layers)  # the only encoder outputs decoding needs
        _check_names(self.encoder, "encoder.onnx", ["input_features"], self._cross, exact=False)
        _check_names(self.decoder, "decoder.onnx", decoder_input_names(self.n_layers),
                     decoder_output_names(self.n_layers))
        self._encoder_input = self.encoder.get_inputs()[0]
        types = {i.name: _ORT_DTYPES.get(i.type, np.float32) for i in self.decoder.get_inputs()}
        self._kv_dtype = types["past_key.0"]
        self.options = self.manifest.decoding
        self.vocab_size = int(dims["vocab_size"])
        self.name = f"onnxruntime {self.manifest.precision('encoder')}"
        self.default_audio_context = self.manifest.default_audio_context
        if settings is not None:
            self.configure(settings)

    # ------------------------------------------------------------ stages

    def _run_frontend(self, window: np.ndarray) -> np.ndarray:
        return self.frontend.run(None, {"audio": window[None]})[0][0]

    def _encoder_feed(self, features: np.ndarray) -> dict[str, np.ndarray]:
        dtype = _ORT_DTYPES.get(self._encoder_input.type, np.float32)
        return {"input_features": np.ascontiguousarray(features, dtype=dtype)}

    def _check_audio_context(self, frames: int) -> None:
        """An audio context under 30 s needs an encoder.onnx whose length is
        dynamic (exports from before it take 3000 mel frames only)."""
        length = self._encoder_input.shape[-1]
        if frames != N_FRAMES and isinstance(length, int):
            raise ArtifactError(f"{self.artifact('encoder')} takes {length} mel frames only, not "
                                f"`audio_context={frames}`: it was exported before the encoder's length was dynamic",
                                f"re-export the folder with this liteasr-export, or leave `audio_context` at "
                                f"\"{FULL_CONTEXT}\"", field="audio_context")

    def encode(self, features: np.ndarray) -> list[np.ndarray]:
        """Cross K/V of every decoder layer for ``features`` (B, n_mels, 3000,
        or fewer mel frames under an audio context)."""
        return self.encoder.run(self._cross, self._encoder_feed(features))

    def encode_outputs(self, features: np.ndarray) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """:meth:`encode`'s cross K/V and every output of encoder.onnx by name."""
        names = [o.name for o in self.encoder.get_outputs()]
        outputs = dict(zip(names, self.encoder.run(names, self._encoder_feed(features))))
        return [outputs[name] for name in self._cross], outputs

    def artifact(self, graph: str) -> str:
        return self.manifest.graph_files(graph)[0]

    def decoder_step(self, cross: list[np.ndarray]) -> "OrtDecoderStep":
        """A decoder step over one batch's cross K/V, holding the self-attention cache."""
        return OrtDecoderStep(self.decoder, decoder_input_names(self.n_layers), cross, self.heads, self.head_dim,
                              self._kv_dtype, self.manifest.decoder_shares_cross)


class OrtDecoderStep:
    """decoder.onnx over one batch: present K/V become the next call's past."""

    def __init__(self, session, names: list[str], cross: list[np.ndarray], heads: int, head_dim: int,
                 kv_dtype, shared_cross: bool = False) -> None:
        self.session, self.names = session, names
        self.cross = [np.ascontiguousarray(c, dtype=kv_dtype) for c in cross]
        batch = self.cross[0].shape[0]
        self.past = [np.zeros((batch, heads, 0, head_dim), kv_dtype)] * (len(self.cross))
        self.rows = RowOwners(batch, shared_cross)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.names, [np.ascontiguousarray(tokens, dtype=np.int64), *self.past, *self.cross]))
        logits, *self.past = self.session.run(None, feeds)
        return logits[:, -1]

    def reorder(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.past = [p[rows] for p in self.past]
        gather = self.rows.reorder(rows)
        if gather is not None:
            self.cross = self.rows.gather(self.cross, gather, lambda c, index: c[index])
