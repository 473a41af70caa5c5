"""Shared by the TensorRT tests: tiny random-weight artifacts folders, exported
once per test process (an export takes ~15 s on 2 cores), and small ONNX graphs."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from onnx import TensorProto, helper


@lru_cache(maxsize=None)
def exported_folder(attention: str = "unfused", low_rank: bool = False, seed: int = 3) -> Path:
    """An artifacts folder of a random 2-layer Whisper (d_model 64) with
    tiny.en's tokenizer; ``attention`` as for ``export_artifacts``;
    ``low_rank`` factorizes the encoder (random factors) first."""
    from conftest import random_loaded

    from exporters.artifacts import export_artifacts
    from liteasr_export.model.sources import BUNDLED

    folder, _ = BUNDLED["tiny.en"].files()
    loaded = random_loaded(folder / "tokenizer.json", low_rank, seed)
    out = Path(tempfile.mkdtemp(prefix=f"liteasr-trt-{attention}{'-lowrank' if low_rank else ''}-"))
    atexit.register(shutil.rmtree, out, True)
    export_artifacts(loaded, out, attention=attention)
    return out


def model_of(nodes, inputs, outputs, initializers=(), opset: int = 18, extra_opsets=()):
    """A ModelProto from helper-made parts."""
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets)


def tensor(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)
