"""Fixtures of the TensorRT tests: tiny random-weight artifacts folders,
exported once per test session (an export takes ~15 s on 2 cores), and
small hand-made ONNX graphs."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper


@pytest.fixture(scope="session")
def exported_folder(tmp_path_factory, tiny_en_tokenizer_json, random_loaded):
    """Factory: ``exported_folder(attention="unfused", low_rank=False, seed=3)``,
    an artifacts folder of a random 2-layer Whisper (d_model 64) with
    tiny.en's tokenizer; ``attention`` as for ``export_artifacts``;
    ``low_rank`` factorizes the encoder (random factors) first. Each folder is
    exported once per session and shared: copy it before changing it."""
    from exporters.artifacts import export_artifacts

    folders: dict[tuple[str, bool, int], Path] = {}

    def make(attention: str = "unfused", low_rank: bool = False, seed: int = 3) -> Path:
        key = (attention, low_rank, seed)
        if key not in folders:
            out = tmp_path_factory.mktemp(f"trt-{attention}{'-lowrank' if low_rank else ''}")
            export_artifacts(random_loaded(tiny_en_tokenizer_json, low_rank, seed), out, attention=attention)
            folders[key] = out
        return folders[key]

    return make


def _model_of(nodes, inputs, outputs, initializers=(), opset: int = 18, extra_opsets=()):
    graph = helper.make_graph(list(nodes), "test", list(inputs), list(outputs), list(initializers))
    opsets = [helper.make_opsetid("", opset), *[helper.make_opsetid(d, v) for d, v in extra_opsets]]
    return helper.make_model(graph, opset_imports=opsets)


@pytest.fixture(scope="session")
def model_of():
    """Factory: ``model_of(nodes, inputs, outputs, initializers=(), opset=18,
    extra_opsets=())``, a ModelProto from helper-made parts."""
    return _model_of


def _tensor(name: str, shape, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, shape)


@pytest.fixture(scope="session")
def tensor():
    """Factory: ``tensor(name, shape, elem=FLOAT)``, a graph input or output."""
    return _tensor
