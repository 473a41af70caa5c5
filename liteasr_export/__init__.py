"""liteasr-export: LiteASR low-rank compression and ONNX / TensorRT export of Whisper.

The package is three layers, each importing only the ones below it (checked
by import-linter; ``docs/DESIGN.md`` has the whole picture):

* :mod:`liteasr_export.app`: the commands (CLI, the export pipeline and its
  stages, serving, Ray jobs). It sits above the sibling packages
  ``calibration``, ``exporters`` and ``engines``, which it drives;
* :mod:`liteasr_export.model`: the PyTorch model domain (model sources,
  low-rank modules, compression, rank policies, refine, compensation);
* :mod:`liteasr_export.core`: the runtime, free of torch and transformers
  (audio, frontend, tokenizer, decoding, output formats, manifest, integrity,
  errors, the ONNX Runtime transcriber). ``pip install liteasr-export``
  installs what the core needs and nothing more.

Keep this module free of imports.
"""

__version__ = "0.1.0"
