"""TensorRT engines from an artifacts folder: optimization profiles, the
readiness check, the Python API builder and the trtexec build script."""
