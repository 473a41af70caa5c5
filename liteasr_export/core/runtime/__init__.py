"""Run an artifacts folder with ONNX Runtime: sessions and the transcriber."""
