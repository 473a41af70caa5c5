"""Transcription with TensorRT engines from an artifacts folder
(``liteasr-transcribe --engine trt``, ``liteasr-eval --engine trt``).

The folder is the ONNX Runtime one plus ``trt/<graph>.plan`` (built by
:func:`engines.build.trt_builder.build_engines` or the folder's
``build_engines.sh``). Windowing, batching and decoding are
the shared :class:`liteasr_export.core.windowed.WindowedTranscriber`; this class supplies the stages that differ: features (the
frontend engine or the numpy frontend), the encoder call and a decoder step
whose KV cache stays on the GPU (and is reordered there for beam search).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liteasr_export.core.decoding import RowOwners
from liteasr_export.core.errors import ArtifactError
from liteasr_export.core.graphs import cross_names, decoder_input_names, decoder_output_names
from liteasr_export.core.manifest import ENGINE_DIR, Manifest, engine_path, load_manifest
from liteasr_export.core.tokenizer import WhisperTokenizer
from liteasr_export.core.windowed import INPUT_STRIDE, TranscribeOptions, WindowedTranscriber

from ..trt_availability import require_tensorrt
from .trt_runner import TrtEngine

FRONTENDS = ("auto", "engine", "numpy")


def _check_io(engine, graph: str, inputs: list[str], outputs: list[str], exact: bool = True) -> None:
    for kind, want, have in (("inputs", inputs, engine.inputs), ("outputs", outputs, engine.outputs)):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want)) if exact else []
        if missing or extra:
            raise ArtifactError(f"{graph} engine has unexpected {kind} (missing {missing[:4]}, unexpected {extra[:4]})",
                                "the engine was built from other graphs: rebuild the folder's engines")


class TrtTranscriber(WindowedTranscriber):
    """Transcribe 16 kHz audio with the folder's TensorRT engines on one GPU.

    ``frontend``: ``engine`` runs ``trt/frontend.plan``, ``numpy`` the shared
    Python frontend, ``auto`` the engine when the folder has one.
    ``batch_size``: windows per batch, capped by the engines' profiles: the
    decoder runs ``beam_size`` (or ``best_of``) rows per window.
    Raises :class:`EngineUnavailableError` without TensorRT or CUDA.
    """

    def __init__(self, artifacts_dir: str | Path, *, device: int = 0, frontend: str = "auto",
                 batch_size: int = 8, verify: bool = True, settings: TranscribeOptions | None = None) -> None:
        if frontend not in FRONTENDS:
            raise ValueError(f"frontend must be one of {FRONTENDS}, got {frontend!r}")
        require_tensorrt()  # before anything else: the clearest message when TensorRT cannot run
        self.manifest: Manifest = load_manifest(artifacts_dir)
        root = self.manifest.root
        for graph in ("encoder", "decoder"):
            if not engine_path(root, graph).is_file():
                raise ArtifactError(f"{root} has no TensorRT engine {ENGINE_DIR}/{graph}.plan",
                                    "build the engines on this machine: liteasr-export --engine trt, "
                                    "or run the folder's build_engines.sh")
        if verify:  # the tokenizer, and the plans the manifest lists (build_engines.sh's are not)
            listed = self.manifest.data.get("sha256") or {}
            plans = [f"{ENGINE_DIR}/{g}.plan" for g in ("frontend", "encoder", "decoder")]
            self.manifest.verify([], extra=[p for p in plans if p in listed])
        self.tokenizer = WhisperTokenizer(self.manifest.tokenizer_path)
        self.manifest.check_tokenizer(self.tokenizer)  # before the engines load
        dims = self.manifest.model
        self.n_mels = int(dims["n_mels"])
        self.n_layers = int(dims["decoder_layers"])
        self.encoder = TrtEngine(engine_path(root, "encoder"), device)
        self.decoder = TrtEngine(engine_path(root, "decoder"), device)
        use_engine = frontend == "engine" or (frontend == "auto" and engine_path(root, "frontend").is_file())
        self.frontend = TrtEngine(engine_path(root, "frontend"), device) if use_engine else None
        self._cross = cross_names(self.n_layers)
        _check_io(self.encoder, "encoder", ["input_features"], self._cross, exact=False)
        _check_io(self.decoder, "decoder", decoder_input_names(self.n_layers), decoder_output_names(self.n_layers))
        self.options = self.manifest.decoding
        self.vocab_size = int(dims["vocab_size"])
        built = ((self.manifest.data.get("tensorrt") or {}).get("engines") or {}).get("encoder") or {}
        self.name = f"tensorrt {built.get('precision', 'fp32')}"  # what the build asked for (engines/build)
        self.default_audio_context = self.manifest.default_audio_context
        self.requested_batch = batch_size
        self.configure(settings or self.settings)
        # step 0 feeds the prompt with an empty cache; step k one token after prompt + k - 1
        prompt, past_needed = len(self.options.prompt), len(self.options.prompt) + self.options.max_new_tokens - 2
        if prompt > self.decoder.max_dim("input_ids", 1) or past_needed > self.decoder.max_dim("past_key.0", 2):
            raise ArtifactError(f"the decoder engine's profile ({self.decoder.max_dim('past_key.0', 2)} cached "
                                f"tokens) is too small for a {prompt}-token prompt plus "
                                f"{self.options.max_new_tokens} new tokens",
                                "rebuild the engines with liteasr-export --engine trt (its decoder profile covers "
                                "the model's whole context)")

    # ------------------------------------------------------------ stages

    def _run_frontend(self, window: np.ndarray) -> np.ndarray:
        import torch  # CUDA tensors: imported where an engine runs

        out = self.frontend.run({"audio": torch.from_numpy(window[None])})
        return out["input_features"][0].float().cpu().numpy()

    def encode(self, features: np.ndarray) -> list["torch.Tensor"]:  # noqa: F821
        """Cross K/V of every decoder layer (GPU tensors) for ``features``
        (B, n_mels, 3000, or fewer mel frames under an audio context)."""
        import torch  # CUDA tensors: imported where an engine runs

        out = self.encoder.run({"input_features": torch.from_numpy(np.ascontiguousarray(features, np.float32))})
        return [out[name] for name in self._cross]

    def encode_outputs(self, features: np.ndarray) -> tuple[list["torch.Tensor"], dict[str, np.ndarray]]:  # noqa: F821
        """:meth:`encode`'s cross K/V and every output of the encoder engine by name, as numpy."""
        import torch  # CUDA tensors: imported where an engine runs

        out = self.encoder.run({"input_features": torch.from_numpy(np.ascontiguousarray(features, np.float32))})
        return [out[name] for name in self._cross], {name: t.float().cpu().numpy() for name, t in out.items()}

    def configure(self, settings: TranscribeOptions) -> "TrtTranscriber":
        """Use ``settings``; the windows per batch shrink so that their beams
        (or samples) fit the decoder engine's batch profile."""
        rows = settings.search.max_rows
        decoder_batch = self.decoder.max_dim("input_ids", 0)
        if rows > decoder_batch:
            raise ArtifactError(f"the decoder engine takes at most {decoder_batch} rows, beam search or sampling "
                                f"needs {rows} per window",
                                f"pass `beam_size`/`best_of` <= {decoder_batch}, or rebuild the engines with a "
                                f"larger batch profile (liteasr-export --max-batch {rows * 8})", field="settings")
        super().configure(settings)
        self.batch_size = max(1, min(self.requested_batch, self.encoder.max_dim("input_features", 0),
                                     decoder_batch // rows))
        return self

    def _check_audio_context(self, frames: int) -> None:
        """The engines' profiles take ``frames`` mel frames (the encoder's
        input) and half as many cross K/V frames (the decoder's); engines
        built for 30 s only (before audio contexts) take 3000."""
        accepted = audio_context_range(self.encoder.profile["input_features"], self.decoder.profile["cross_key.0"])
        if not accepted[0] <= frames <= accepted[1]:
            raise ArtifactError(f"the TensorRT engines take {accepted[0]} to {accepted[1]} mel frames, not "
                                f"`audio_context={frames}`",
                                "pass an `audio_context` in that range, or rebuild the engines with liteasr-export "
                                "--engine trt (its profiles cover 2 s to 30 s)", field="audio_context")

    def artifact(self, graph: str) -> str:
        return f"{ENGINE_DIR}/{graph}.plan"

    def decoder_step(self, cross: list["torch.Tensor"]) -> "TrtDecoderStep":  # noqa: F821
        """A decoder step over one batch's cross K/V, holding the self-attention cache on the GPU."""
        return TrtDecoderStep(self.decoder, self.n_layers, cross, self.manifest.decoder_shares_cross)


def audio_context_range(encoder_input: tuple[tuple[int, ...], ...], cross_key: tuple[tuple[int, ...], ...]
                        ) -> tuple[int, int]:
    """The shortest and longest audio context (mel frames) engines accept,
    from the (min, opt, max) profiles of the encoder's ``input_features``
    (B, n_mels, mel frames) and the decoder's ``cross_key.0`` (W, heads,
    frames, head_dim)."""
    (_, _, low), _, (_, _, high) = encoder_input
    (_, _, cross_low, _), _, (_, _, cross_high, _) = cross_key
    return max(low, cross_low * INPUT_STRIDE), min(high, cross_high * INPUT_STRIDE)


class TrtDecoderStep:
    """decoder.plan over one batch; past and present K/V stay torch CUDA tensors."""

    def __init__(self, engine, n_layers: int, cross: list["torch.Tensor"],  # noqa: F821
                 shared_cross: bool = False) -> None:
        import torch  # CUDA tensors: imported where an engine runs

        self.engine = engine
        self.names = decoder_input_names(n_layers)
        self.outputs = decoder_output_names(n_layers)
        self.cross = cross
        batch, heads, _, head_dim = cross[0].shape
        kv_dtype = engine.dtypes["past_key.0"]
        self.past = [torch.zeros((batch, heads, 0, head_dim), dtype=kv_dtype, device=engine.device)] * (2 * n_layers)
        self.rows = RowOwners(batch, shared_cross)

    def __call__(self, tokens: np.ndarray) -> np.ndarray:
        import torch  # CUDA tensors: imported where an engine runs

        ids = torch.from_numpy(np.ascontiguousarray(tokens, dtype=np.int64))
        out = self.engine.run(dict(zip(self.names, [ids, *self.past, *self.cross])))
        self.past = [out[name] for name in self.outputs[1:]]
        return out["logits"][:, -1].float().cpu().numpy()

    def reorder(self, rows: np.ndarray) -> None:
        import torch  # CUDA tensors: imported where an engine runs

        index = torch.as_tensor(np.asarray(rows, dtype=np.int64), device=self.engine.device)
        self.past = [p.index_select(0, index) for p in self.past]
        gather = self.rows.reorder(rows)
        if gather is not None:
            device = self.engine.device
            self.cross = self.rows.gather(self.cross, gather,
                                          lambda c, index: c.index_select(0, torch.as_tensor(index, device=device)))
