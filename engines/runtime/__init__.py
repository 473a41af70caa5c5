"""Run TensorRT engines: the runner and the transcriber on top of it."""
