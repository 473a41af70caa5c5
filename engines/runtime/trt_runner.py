"""Run a serialized TensorRT engine on torch CUDA tensors (``execute_async_v3``).

:class:`TrtEngine` binds inputs and freshly allocated outputs by tensor name
and enqueues the engine on torch's current CUDA stream, so the results are
ordinary torch tensors ordered with any torch work on that stream. Input
shapes are checked against the engine's optimization profile first, which
turns TensorRT's terse shape errors into a message naming the tensor and
the range the engine was built for. tensorrt and torch are imported when an
engine is opened, not when this module is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from liteasr_export.core.errors import ArtifactError, ShapeError

from ..trt_availability import require_tensorrt

Shape = tuple[int, ...]


def _torch_dtypes(trt, torch) -> dict:
    pairs = [("float32", "float32"), ("float16", "float16"), ("bfloat16", "bfloat16"), ("int32", "int32"),
             ("int64", "int64"), ("bool", "bool"), ("int8", "int8"), ("uint8", "uint8")]
    return {getattr(trt, t): getattr(torch, p) for t, p in pairs if hasattr(trt, t)}


def shape_problem(name: str, shape: Shape, profile: tuple[Shape, Shape, Shape]) -> str | None:
    """Why ``shape`` is outside an input's (min, opt, max) profile, or None."""
    low, _, high = profile
    if len(shape) != len(low):
        return f"{name} has rank {len(shape)}, the engine expects {len(low)} ({'x'.join(map(str, low))}...)"
    if any(not lo <= d <= hi for d, lo, hi in zip(shape, low, high)):
        return (f"{name} shape {'x'.join(map(str, shape))} is outside the engine's profile "
                f"{'x'.join(map(str, low))} .. {'x'.join(map(str, high))}")
    return None


class TrtEngine:
    """One deserialized engine with one execution context (not thread-safe:
    use one instance per thread)."""

    def __init__(self, plan_path: str | Path, device: int = 0) -> None:
        import torch  # torch and tensorrt only when an engine is opened: importing this module stays light

        trt = require_tensorrt()
        self.path = Path(plan_path)
        if not self.path.is_file():
            raise ArtifactError(f"TensorRT engine not found: {self.path}",
                                "build the engines: liteasr-export --engine trt, or build_engines.sh on this machine")
        self.device = torch.device("cuda", device)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self.device):
            self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self.engine is None:
                raise ArtifactError(f"TensorRT {trt.__version__} cannot load {self.path.name} on "
                                    f"{torch.cuda.get_device_name(self.device)}",
                                    "engines are specific to a GPU model and TensorRT version: rebuild them here "
                                    "(liteasr-export --engine trt, or the folder's build_engines.sh)")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        dtypes = _torch_dtypes(trt, torch)
        self.dtypes = {n: dtypes[self.engine.get_tensor_dtype(n)] for n in names}
        self.profile = {n: tuple(tuple(int(d) for d in dims) for dims in self.engine.get_tensor_profile_shape(n, 0))
                        for n in self.inputs}
        # TensorRT wants a valid address even for an input with no elements (an empty KV cache)
        self._placeholder = torch.empty(64, dtype=torch.uint8, device=self.device)

    def max_dim(self, name: str, axis: int) -> int:
        """Largest size of ``axis`` of input ``name`` the engine accepts."""
        return self.profile[name][2][axis]

    def run(self, feeds: Mapping[str, "torch.Tensor"]) -> dict[str, "torch.Tensor"]:  # noqa: F821
        """Outputs for ``feeds`` (every input by name; moved to the engine's
        device and dtype if needed), enqueued on the current CUDA stream."""
        import torch  # CUDA tensors: imported where an engine runs

        missing, extra = sorted(set(self.inputs) - set(feeds)), sorted(set(feeds) - set(self.inputs))
        if missing or extra:
            raise ArtifactError(f"{self.path.name}: missing inputs {missing[:4]}, unexpected {extra[:4]}",
                                "the engine does not match this artifacts folder: rebuild it")
        held = []
        for name in self.inputs:
            tensor = feeds[name].to(self.device, self.dtypes[name]).contiguous()
            problem = shape_problem(name, tuple(tensor.shape), self.profile[name])
            if problem:
                raise ShapeError(f"{self.path.name}: {problem}",
                                 "split the batch, or rebuild the engines with a larger batch profile (liteasr-export --max-batch)")
            self.context.set_input_shape(name, tuple(tensor.shape))
            self.context.set_tensor_address(name, tensor.data_ptr() if tensor.numel() else self._placeholder.data_ptr())
            held.append(tensor)
        outputs = {}
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise ShapeError(f"{self.path.name}: TensorRT cannot infer the shape of {name} ({shape})",
                                 "check the input shapes against the engine's profile")
            out = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, out.data_ptr() if out.numel() else self._placeholder.data_ptr())
            outputs[name] = out
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise ArtifactError(f"TensorRT failed to run {self.path.name} (see its log above)",
                                "check the GPU's free memory and rebuild the engine on this machine")
        del held  # safe: the caching allocator orders any reuse of this memory after the enqueued work
        return outputs
