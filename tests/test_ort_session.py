"""The ONNX Runtime session factory: providers, clear errors, optimized-graph cache."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engines.ort_session import create_session, resolve_providers
from liteasr_export.errors import ArtifactError, EngineUnavailableError


@pytest.fixture()
def graph(tmp_path):
    """y = (x @ W) + b followed by Relu: something the optimizer fuses."""
    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "w")
    b = numpy_helper.from_array(np.array([0.1, -5.0, 0.3], dtype=np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"), helper.make_node("Add", ["m", "b"], ["a"], name="add"),
             helper.make_node("Relu", ["a"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])], [w, b])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_provider_aliases():
    assert resolve_providers("tensorrt,cuda,cpu") == ["TensorrtExecutionProvider", "CUDAExecutionProvider",
                                                      "CPUExecutionProvider"]
    assert resolve_providers(None) == ["CPUExecutionProvider"]


def test_missing_provider_and_missing_graph(graph, tmp_path):
    with pytest.raises(EngineUnavailableError, match="not available"):
        create_session(graph, providers="tensorrt")
    with pytest.raises(ArtifactError, match="not found"):
        create_session(tmp_path / "none.onnx")


def test_optimized_graph_is_cached_and_reused(graph, tmp_path):
    cache = tmp_path / "cache"
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    first = create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0]
    cached = list(cache.glob("g-*.onnx"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    second = create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0]
    assert cached[0].stat().st_mtime_ns == stamp  # loaded, not rewritten
    np.testing.assert_allclose(second, first, rtol=1e-6)
    np.testing.assert_allclose(first, np.maximum(x @ (np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
                                                  + np.array([0.1, -5.0, 0.3], np.float32), 0), rtol=1e-5)
