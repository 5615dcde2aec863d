import json

import pytest
import torch
from conftest import token_model_config

from mmgen.models.transformer import ARTransformer
from mmgen.utils.serialization import (
    CheckpointError,
    load_module,
    load_state_dict,
    save_module,
    save_state_dict,
)


def tiny_model(**overrides):
    return ARTransformer(token_model_config(11, 8, **overrides))


def test_round_trip_is_bit_identical(tmp_path):
    model = tiny_model()
    save_module(model, tmp_path / "m")
    loaded = load_module(ARTransformer, tmp_path / "m")
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])


def test_pickle_files_are_refused_with_reason(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"anything")
    with pytest.raises(CheckpointError, match="refusing to load a pickle"):
        load_state_dict(path)
    save_module(tiny_model(), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    (tmp_path / "m" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="pytorch_model.bin.*only safetensors"):
        load_module(ARTransformer, tmp_path / "m")


def test_config_weights_mismatch_names_keys_and_shapes(tmp_path):
    save_module(tiny_model(), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["dim"] = 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError,
        match="model.safetensors.*wrong shapes.*file \\(32, 32\\) vs model \\(64, 64\\)",
    ):
        load_module(ARTransformer, tmp_path / "m")
    config["dim"] = 32
    config["num_layers"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="missing keys.*blocks.2"):
        load_module(ARTransformer, tmp_path / "m")
    config["num_layers"] = 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unexpected keys.*blocks.1"):
        load_module(ARTransformer, tmp_path / "m")


def test_unknown_config_key_and_missing_config(tmp_path):
    save_module(tiny_model(), tmp_path / "m")
    config_path = tmp_path / "m" / "config.json"
    config = json.loads(config_path.read_text())
    config["n_layer"] = 3
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown config key.*n_layer"):
        load_module(ARTransformer, tmp_path / "m")
    config_path.unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_module(ARTransformer, tmp_path / "m")


def test_truncated_safetensors_names_file(tmp_path):
    path = tmp_path / "w.safetensors"
    save_state_dict({"a": torch.ones(100)}, path)
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="w.safetensors.*corrupt"):
        load_state_dict(path)
