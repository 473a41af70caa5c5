"""liteasr-export: LiteASR low-rank compression and ONNX / TensorRT export of Whisper.

Keep this module free of heavy imports: the ONNX Runtime path must run
without torch or transformers.
"""

__version__ = "0.1.0"
