"""TensorRT optimization profiles as data: a (min, opt, max) shape for every
input of ``frontend.onnx``, ``encoder.onnx`` and ``decoder.onnx``.

Input names and shapes are read from the graphs (the manifest's ``graph_io``
record, or the ONNX file itself); only the meaning of each named dynamic axis
is declared here (:func:`axis_ranges`). The Python builder, the ``trtexec``
script and the readiness check all use these profiles, so an engine built
either way accepts the same shapes. Standard library only (no tensorrt, no
torch): profiles are computed and tested on CPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from liteasr_export.core.errors import ExportError
from liteasr_export.core.frontend import N_SAMPLES
from liteasr_export.core.graphs import ENCODER_FRAMES_AXIS, MEL_FRAMES_AXIS, MEL_FRAMES_PER_ENCODER_FRAME
from liteasr_export.core.manifest import graph_io

Shape = tuple[int, ...]

#: Whisper's decoder context (positions) when the manifest does not say
DEFAULT_MAX_DECODER_TOKENS = 448
#: Whisper's encoder output length when the manifest does not say
DEFAULT_AUDIO_CTX = 1500
#: the shortest audio context an engine accepts by default, in mel frames (2 s)
DEFAULT_MIN_MEL_FRAMES = 200


@dataclass(frozen=True)
class ProfileOptions:
    """What the engines must accept (the CLI sets ``max_batch`` with ``--max-batch``).

    ``max_batch``: windows encoded and decoded together (the runner splits
    larger batches). ``opt_batch``: the batch TensorRT tunes its kernels for
    (1: a single clip shorter than 30 s, the common case).
    ``max_decoder_tokens``: prompt plus generated tokens per window, capped by
    the model's decoder context (448 in every Whisper). ``opt_past``: the
    self-attention cache length tuned for (a mid-utterance step).
    ``min_mel_frames``: the shortest audio context (mel frames, even) the
    encoder accepts; the decoder's cross K/V then hold half as many frames.
    ``opt_mel_frames``: the length tuned for (None: 30 s, whose windows are
    the common case of long audio). The longest is always 30 s.
    """

    max_batch: int = 8
    opt_batch: int = 1
    max_decoder_tokens: int = DEFAULT_MAX_DECODER_TOKENS
    opt_past: int = 64
    min_mel_frames: int = DEFAULT_MIN_MEL_FRAMES
    opt_mel_frames: int | None = None

    def __post_init__(self) -> None:
        if self.max_batch < 1 or not 1 <= self.opt_batch <= self.max_batch:
            raise ExportError(f"TensorRT batch sizes need 1 <= opt ({self.opt_batch}) <= max ({self.max_batch})",
                              "pass a `max_batch` of 1 or more (`opt_batch` must lie between 1 and it)",
                              field="max_batch")
        if self.max_decoder_tokens < 2:
            raise ExportError(f"ProfileOptions.max_decoder_tokens must be >= 2, got {self.max_decoder_tokens}",
                              f"use the model's decoder context ({DEFAULT_MAX_DECODER_TOKENS} for Whisper)")
        if self.opt_past < 0:
            raise ExportError(f"opt_past must be >= 0, got {self.opt_past}", "pass a cache length of 0 or more")
        for name in ("min_mel_frames", "opt_mel_frames"):
            value = getattr(self, name)
            if value is not None and (value < MEL_FRAMES_PER_ENCODER_FRAME or value % MEL_FRAMES_PER_ENCODER_FRAME):
                raise ExportError(f"`{name}` must be an even number of mel frames >= 2, got {value}",
                                  f"pass an even `{name}` (mel frames: 100 per second)", field=name)
        if self.opt_mel_frames is not None and self.opt_mel_frames < self.min_mel_frames:
            raise ExportError(f"`opt_mel_frames` {self.opt_mel_frames} is below `min_mel_frames` "
                              f"{self.min_mel_frames}", "pass an `opt_mel_frames` between them and 30 s",
                              field="opt_mel_frames")


@dataclass(frozen=True)
class DimRange:
    """One axis: smallest, tuned-for and largest size."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not 0 <= self.min <= self.opt <= self.max:
            raise ExportError(f"invalid profile range min={self.min} opt={self.opt} max={self.max}",
                              "a profile needs 0 <= min <= opt <= max")


@dataclass(frozen=True)
class ShapeRange:
    """One input's profile entry."""

    min: Shape
    opt: Shape
    max: Shape

    @property
    def dynamic(self) -> bool:
        return not self.min == self.opt == self.max


@dataclass(frozen=True)
class GraphProfile:
    """The optimization profile of one graph: input name -> shape range."""

    graph: str
    shapes: dict[str, ShapeRange]

    def trtexec_args(self) -> list[str]:
        """``--minShapes/--optShapes/--maxShapes`` arguments (``name:1x80x3000,...``)."""
        def spec(kind: str) -> str:
            return ",".join(f"{name}:{'x'.join(str(d) for d in getattr(r, kind))}" for name, r in self.shapes.items())

        return [f"--{kind}Shapes={spec(kind)}" for kind in ("min", "opt", "max")]

    def to_dict(self) -> dict[str, Any]:
        return {name: {k: list(v) for k, v in asdict(r).items()} for name, r in self.shapes.items()}


def axis_ranges(model_dims: Mapping[str, Any], options: ProfileOptions = ProfileOptions()) -> dict[str, DimRange]:
    """Range of every named dynamic axis the exporters write
    (:data:`liteasr_export.core.graphs.GRAPH_SPECS` names them).

    ``windows`` (the decoder's cross K/V, shared by a window's rows) never
    exceeds ``batch`` (the decoder's rows). ``tokens`` (fed per step: the prompt first, then one) and ``past`` (the
    self-attention cache, 0 at the first step) together never exceed the
    decoder context; ``mel_frames`` (the encoder's input length) runs from
    ``min_mel_frames`` to 30 s, and ``frames`` (its output length, the
    decoder's cross K/V) is half of it; ``samples`` is one 30 s window at
    most. A folder exported before the encoder's length was dynamic has a
    fixed 3000 there, which no range touches."""
    n_text_ctx = int(model_dims.get("n_text_ctx", DEFAULT_MAX_DECODER_TOKENS))
    n_audio_ctx = int(model_dims.get("n_audio_ctx", DEFAULT_AUDIO_CTX))
    if options.max_decoder_tokens > n_text_ctx:
        raise ExportError(f"ProfileOptions.max_decoder_tokens {options.max_decoder_tokens} exceeds the model's decoder "
                          f"context of {n_text_ctx} positions", f"pass at most {n_text_ctx}")
    max_tokens = options.max_decoder_tokens
    full = n_audio_ctx * MEL_FRAMES_PER_ENCODER_FRAME
    opt = full if options.opt_mel_frames is None else options.opt_mel_frames
    if opt > full:
        raise ExportError(f"ProfileOptions.opt_mel_frames {opt} exceeds the model's {full} mel frames (30 s)",
                          f"pass at most {full}", field="opt_mel_frames")
    mel = DimRange(min(options.min_mel_frames, full), opt, full)
    return {
        "batch": DimRange(1, options.opt_batch, options.max_batch),
        "windows": DimRange(1, options.opt_batch, options.max_batch),  # decoder cross K/V: at most one per row
        "tokens": DimRange(1, 1, max_tokens),
        "past": DimRange(0, min(options.opt_past, max_tokens - 1), max_tokens - 1),
        MEL_FRAMES_AXIS: mel,
        ENCODER_FRAMES_AXIS: DimRange(*(n // MEL_FRAMES_PER_ENCODER_FRAME for n in (mel.min, mel.opt, mel.max))),
        "samples": DimRange(1, N_SAMPLES, N_SAMPLES),
    }


def uncovered_dims(inputs: Iterable[Mapping[str, Any]], ranges: Mapping[str, DimRange]) -> list[str]:
    """``input[axis]=name`` for every dynamic dimension no range covers
    (unnamed dynamic dims read as ``?``)."""
    missing = []
    for tensor in inputs:
        for axis, dim in enumerate(tensor["shape"]):
            if isinstance(dim, str) and dim not in ranges or dim in (0, None, "", "?"):
                missing.append(f"{tensor['name']}[{axis}]={dim or '?'}")
    return missing


def graph_profile(graph: str, inputs: Iterable[Mapping[str, Any]], ranges: Mapping[str, DimRange]) -> GraphProfile:
    """The profile of one graph from its inputs (``graph_io`` records: name,
    shape of ints and axis names)."""
    inputs = list(inputs)
    missing = uncovered_dims(inputs, ranges)
    if missing:
        raise ExportError(f"{graph}.onnx has dynamic dimensions no TensorRT profile covers: {', '.join(missing)}",
                          f"name them with one of the known axes ({', '.join(ranges)}) when exporting")
    shapes = {}
    for tensor in inputs:
        dims = [ranges[d] if isinstance(d, str) else DimRange(d, d, d) for d in tensor["shape"]]
        shapes[tensor["name"]] = ShapeRange(*(tuple(getattr(r, k) for r in dims) for k in ("min", "opt", "max")))
    return GraphProfile(graph, shapes)


def manifest_profiles(manifest: "Manifest", options: ProfileOptions = ProfileOptions(),  # noqa: F821
                      graphs: Iterable[str] | None = None) -> dict[str, GraphProfile]:
    """Profiles of the graphs of a loaded artifacts folder (all by default),
    from the input records in its manifest."""
    ranges = axis_ranges(manifest.model, options)
    names = list(graphs) if graphs is not None else list(manifest.data["graphs"])
    return {g: graph_profile(g, manifest.data["graphs"][g]["inputs"], ranges) for g in names}


def onnx_profile(path: str | Path, model_dims: Mapping[str, Any], options: ProfileOptions = ProfileOptions(),
                 graph: str | None = None) -> GraphProfile:
    """Profile of one ONNX file read directly (graphs outside an artifacts folder)."""

    path = Path(path)
    return graph_profile(graph or path.stem, graph_io(path)["inputs"], axis_ranges(model_dims, options))
