"""Engines built from the exported graphs, and their validation, in three
subpackages that import one way:

* :mod:`engines.build`: TensorRT engines from an artifacts folder (builder,
  trtexec script, readiness check, optimization profiles);
* :mod:`engines.runtime`: TensorRT runners and the TensorRT transcriber
  (the ONNX Runtime transcriber is in the runtime core,
  :mod:`liteasr_export.core.runtime`);
* :mod:`engines.validation`: parity against a float64 PyTorch reference and
  the quality gate.

:mod:`engines.trt_availability` (is TensorRT usable here) serves build and
runtime. Import submodules explicitly; this package stays free of heavy imports.
"""
