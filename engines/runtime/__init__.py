"""Run an artifacts folder: ONNX Runtime sessions and TensorRT engines, and
the transcribers on top of them."""
