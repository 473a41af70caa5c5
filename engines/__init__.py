"""Engines for the exported graphs, in three subpackages that import one way:

* :mod:`engines.build`: TensorRT engines from an artifacts folder (builder,
  trtexec script, readiness check, optimization profiles);
* :mod:`engines.runtime`: ONNX Runtime and TensorRT sessions and transcribers;
* :mod:`engines.validation.parity`: parity against PyTorch and the quality gate.

:mod:`engines.trt_availability` (is TensorRT usable here) serves build and
runtime. Import submodules explicitly; this package stays free of heavy imports.
"""
