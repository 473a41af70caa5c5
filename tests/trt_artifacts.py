"""Shared by the TensorRT tests: tiny random-weight artifacts folders, exported
once per test process (an export takes ~15 s on 2 cores), and small ONNX graphs."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from onnx import TensorProto, helper

#: random weights never say <|endoftext|>: keep their decodes short
MAX_NEW_TOKENS = 8


#: ranks of a low-rank variant: layer 0 runs attention in the reduced dimension
LOW_RANK = [{"q_proj": 8, "k_proj": 8, "v_proj": 16, "out_proj": 16, "fc1": 24}, {"fc2": 16, "v_proj": 8}]


@lru_cache(maxsize=None)
def exported_folder(attention: str = "unfused", low_rank: bool = False, seed: int = 3) -> Path:
    """An artifacts folder of a random 2-layer Whisper (d_model 64) with
    tiny.en's tokenizer; ``attention`` as for ``export_artifacts``;
    ``low_rank`` factorizes the encoder (random factors) first."""
    import torch
    from conftest import random_whisper

    from liteasr_export.lowrank import LowRankLinear, install_low_rank_modules

    from exporters.artifacts import export_artifacts
    from liteasr_export.decoding import build_options
    from liteasr_export.sources import BUNDLED, LoadedModel
    from liteasr_export.tokenizer import WhisperTokenizer

    folder, _ = BUNDLED["tiny.en"].files()
    tokenizer_json = folder / "tokenizer.json"
    model = random_whisper(seed=seed)
    if low_rank:
        install_low_rank_modules(model, LOW_RANK)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, LowRankLinear):
                    for p in (module.weight1, module.weight2, module.bias):
                        p.copy_(0.2 * torch.randn(p.shape, generator=generator))
    tokenizer = WhisperTokenizer(tokenizer_json)
    options = build_options(tokenizer, model.config.vocab_size, [], [], max_new_tokens=MAX_NEW_TOKENS)
    loaded = LoadedModel("random", model, tokenizer, tokenizer_json, options, "test")
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
