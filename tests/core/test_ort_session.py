"""The ONNX Runtime session factory: providers, clear errors, optimized-graph cache."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from liteasr_export.core.runtime.ort_session import create_session, resolve_providers
from liteasr_export.core.errors import ArtifactError, EngineUnavailableError


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


def test_cache_is_keyed_by_content_not_path_or_mtime(graph, tmp_path):
    """A rewritten graph with the same size and mtime must not meet the old copy."""
    import os

    cache = tmp_path / "cache"
    x = np.ones((2, 4), np.float32)
    first = create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0]
    stat = graph.stat()
    model = onnx.load(str(graph))
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.array([9.0, 9.0, 9.0], np.float32), "b"))
    onnx.save(model, str(graph))
    os.utime(graph, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert graph.stat().st_size == stat.st_size
    second = create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0]
    assert not np.allclose(first, second) and len(list(cache.glob("g-*.onnx"))) == 2


def test_unreadable_cache_file_is_replaced(graph, tmp_path):
    """A cache file truncated by a killed run is discarded and rebuilt."""
    cache = tmp_path / "cache"
    x = np.ones((2, 4), np.float32)
    expected = create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0]
    (cached,) = cache.glob("g-*.onnx")
    good = cached.read_bytes()
    cached.write_bytes(good[: len(good) // 3])
    np.testing.assert_allclose(create_session(graph, threads=1, cache_dir=cache).run(None, {"x": x})[0], expected)
    assert cached.read_bytes() == good
    assert sorted(p.name for p in cache.iterdir()) == [cached.name]  # no temporary file left


def test_parallel_first_runs_share_the_cache(graph, tmp_path):
    """Four processes start at once on an empty cache: all load, one complete copy remains."""
    import subprocess
    import sys

    cache = tmp_path / "cache"
    code = ("import sys, numpy as np; from liteasr_export.core.runtime.ort_session import create_session; "
            "s = create_session(sys.argv[1], threads=1, cache_dir=sys.argv[2]); "
            "print(s.run(None, {'x': np.ones((2, 4), np.float32)})[0].sum())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(graph), str(cache)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    assert [p.suffix for p in cache.iterdir()] == [".onnx"]
    create_session(graph, threads=1, cache_dir=cache)  # and the copy they left loads


def test_cache_folder_that_cannot_be_written(graph, tmp_path):
    from liteasr_export.core.errors import OutputError

    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cache_dir") as error:  # the library's parameter; the CLI says --ort-cache
        create_session(graph, cache_dir=tmp_path / "file")
    assert error.value.field == "cache_dir" and "--" not in str(error.value)


@pytest.mark.parametrize("debug", [False, True])
def test_onnx_runtime_warnings_show_only_with_debug(random_artifacts, speech_clip_path, tmp_path, debug):
    """Its first --ort-cache run warns over several lines about saving an
    optimized graph: nothing a user acts on, so only with --debug."""
    import subprocess
    import sys

    code = "import sys; from liteasr_export.app.cli import transcribe_main as m; sys.exit(m(sys.argv[1:]))"
    result = subprocess.run([sys.executable, "-c", code, "--engine", "onnx", "--artifacts", str(random_artifacts),
                             "--ort-cache", str(tmp_path / "cache"), speech_clip_path, *(["--debug"] * debug)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert ("onnxruntime" in result.stderr) == debug, result.stderr
    if not debug:
        assert result.stderr == ""
