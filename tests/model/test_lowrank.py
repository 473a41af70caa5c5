"""LowRankLinear, low_rank_config handling and the lite-whisper layout on disk."""

from __future__ import annotations

import json

import pytest
import torch

from liteasr_export.core.errors import ModelSourceError, RankError
from liteasr_export.model.lite_whisper import is_lite_whisper_dir, load_lite_whisper, save_lite_whisper
from liteasr_export.model.lowrank import (
    LowRankLinear,
    install_low_rank_modules,
    iter_encoder_linears,
    low_rank_config_of,
    validate_low_rank_config,
)


def fill_random_low_rank(model, low_rank_config) -> None:
    """Give every installed LowRankLinear random factors (stand-ins for real ones)."""
    generator = torch.Generator().manual_seed(1)
    for _, _, module in iter_encoder_linears(model):
        if isinstance(module, LowRankLinear):
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(torch.randn(p.shape, generator=generator) * 0.1)


def test_low_rank_linear_computes_two_matmuls_plus_bias():
    w1, w2, b = torch.randn(8, 3), torch.randn(3, 5), torch.randn(5)
    module = LowRankLinear.from_factors(w1, w2, b)
    x = torch.randn(2, 7, 8)
    assert (module.in_features, module.out_features, module.rank) == (8, 5, 3)
    assert module.weight1.shape == (8, 3) and module.weight2.shape == (3, 5)
    torch.testing.assert_close(module(x), (x @ w1) @ w2 + b)
    no_bias = LowRankLinear.from_factors(w1, w2, None)
    assert no_bias.bias is None
    torch.testing.assert_close(no_bias(x), (x @ w1) @ w2)


@pytest.mark.parametrize("rank", [0, 6])
def test_low_rank_linear_rejects_ranks_outside_the_matrix(rank):
    with pytest.raises(RankError, match="outside"):
        LowRankLinear(8, 5, rank)


def test_validate_low_rank_config_errors(tiny_whisper):
    config = tiny_whisper().config
    assert validate_low_rank_config([{"fc1": 32, "q_proj": 16}, {}], config) == [{"q_proj": 16, "fc1": 32}, {}]
    with pytest.raises(RankError, match="2"):
        validate_low_rank_config([{"q_proj": 16}], config)  # a layer missing
    with pytest.raises(RankError, match="outside 1..64"):
        validate_low_rank_config([{"fc2": 65}, {}], config)
    with pytest.raises(RankError, match="unknown matrix"):
        validate_low_rank_config([{"gate": 8}, {}], config)
    with pytest.raises(RankError):
        validate_low_rank_config({"q_proj": 16}, config)


def test_install_low_rank_modules_records_ranks(tiny_whisper):
    model = tiny_whisper()
    ranks = [{"q_proj": 16, "k_proj": 8, "fc1": 32}, {"out_proj": 24, "fc2": 48}]
    install_low_rank_modules(model, ranks)
    assert low_rank_config_of(model) == ranks
    assert model.config.low_rank_config == ranks
    fc2 = model.model.encoder.layers[1].fc2
    assert isinstance(fc2, LowRankLinear) and (fc2.in_features, fc2.out_features) == (256, 64)


def test_lite_whisper_round_trip_gives_identical_outputs(tmp_path, tiny_whisper, random_features):
    model = tiny_whisper()
    ranks = [{"q_proj": 16, "k_proj": 16, "v_proj": 32, "out_proj": 16, "fc1": 32, "fc2": 48}, {"fc1": 16}]
    install_low_rank_modules(model, ranks)
    fill_random_low_rank(model, ranks)
    tokenizer = tmp_path / "src_tokenizer.json"
    tokenizer.write_text("{}")
    out = save_lite_whisper(model, tmp_path / "lite", tokenizer_path=tokenizer)

    assert is_lite_whisper_dir(out)
    config = json.loads((out / "config.json").read_text())
    assert config["low_rank_config"] == ranks and config["model_type"] == "lite-whisper"
    assert (out / "tokenizer.json").read_text() == "{}"
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), framework="pt") as handle:
        assert tuple(handle.get_slice("model.encoder.layers.0.fc1.weight1").get_shape()) == (64, 32)
        assert tuple(handle.get_slice("model.encoder.layers.0.fc1.weight2").get_shape()) == (32, 256)
        assert "model.encoder.layers.1.fc1.weight1" in handle.keys()
        assert "model.encoder.layers.1.fc2.weight" in handle.keys()

    loaded = load_lite_whisper(out)
    assert low_rank_config_of(loaded) == ranks
    features = random_features()
    ids = torch.tensor([[3, 5, 7, 9]])
    with torch.inference_mode():
        a = model(input_features=features, decoder_input_ids=ids)
        b = loaded(input_features=features, decoder_input_ids=ids)
    assert torch.equal(a.encoder_last_hidden_state, b.encoder_last_hidden_state)
    assert torch.equal(a.logits, b.logits)
    assert loaded.proj_out.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr()


def test_is_lite_whisper_dir_rejects_plain_folders(tmp_path):
    assert not is_lite_whisper_dir(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert not is_lite_whisper_dir(tmp_path)
    with pytest.raises(ModelSourceError, match="not a lite-whisper folder"):
        load_lite_whisper(tmp_path)


def test_load_rejects_weights_that_do_not_match_the_ranks(tmp_path, tiny_whisper):
    model = tiny_whisper()
    install_low_rank_modules(model, [{"fc1": 16}, {}])
    out = save_lite_whisper(model, tmp_path / "lite")
    config = json.loads((out / "config.json").read_text())
    config["low_rank_config"] = [{"fc1": 32}, {}]
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelSourceError, match="do not match"):
        load_lite_whisper(out)
