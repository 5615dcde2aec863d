"""``init_from``: a run starts from the matching tensors of another model's folder."""

import pytest
import torch
from mmgen.tokenizers.vq import VQConfig, VQModel
from training_recipes import run, vq_recipe

from mmgen.utils.serialization import (
    CheckpointError,
    load_component,
    load_matching_weights,
    save_module,
)


def test_a_multiscale_tokenizer_starts_from_a_single_scale_vq(trained_vq, tmp_path, capsys):
    vq_folder = trained_vq[0] / "final"
    # learning rate 0: the exported weights are the copied ones wherever the VQ had them
    run(vq_recipe(tmp_path, learning_rate=0.0), model_class="MultiScaleVQModel",
        model={"block_out_channels": [8, 8], "norm_num_groups": 4, "latent_channels": 8,
               "codebook_size": 16, "scales": [1, 2, 4, 8, 16, 32]},
        init_from=str(vq_folder))  # fmt: skip
    printed = capsys.readouterr().out
    assert f"init_from {vq_folder}:" in printed and "kept fresh (phis.0.bias" in printed
    source = load_component(vq_folder).state_dict()
    trained = load_component(tmp_path / "vq" / "final").state_dict()
    for key in ("encoder.conv_in.weight", "decoder.conv_out.weight", "post_quant_conv.weight"):
        assert torch.equal(trained[key], source[key]), key
    assert "phis.0.weight" in trained and "phis.0.weight" not in source


def test_only_matching_names_and_shapes_are_copied(tmp_path):
    small = VQModel(VQConfig(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=8,
                             codebook_size=16))  # fmt: skip
    save_module(small, tmp_path / "small")
    torch.manual_seed(1)
    other = VQModel(VQConfig(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=8,
                             codebook_size=32))  # fmt: skip
    before = {k: v.clone() for k, v in other.state_dict().items()}
    report = load_matching_weights(other, tmp_path / "small")
    assert "quantize.embedding.weight" in report["kept"]  # 32 codes vs 16: not copied
    assert "quantize.embedding.weight" in report["ignored"]
    assert torch.equal(other.state_dict()["quantize.embedding.weight"],
                       before["quantize.embedding.weight"])  # fmt: skip
    assert torch.equal(other.encoder.conv_in.weight, small.encoder.conv_in.weight)
    assert not torch.equal(before["encoder.conv_in.weight"], small.encoder.conv_in.weight)


def test_a_folder_without_weights_or_without_a_match_is_a_clear_error(tmp_path):
    model = VQModel(VQConfig(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=8,
                             codebook_size=16))  # fmt: skip
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_matching_weights(model, tmp_path)
    unrelated = torch.nn.Linear(3, 3)
    lin_folder = tmp_path / "lin"
    lin_folder.mkdir()
    from safetensors.torch import save_file

    save_file(unrelated.state_dict(), str(lin_folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="no tensor matches"):
        load_matching_weights(model, lin_folder)
