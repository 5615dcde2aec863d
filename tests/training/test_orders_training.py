"""Training every order: resume, an order defined outside mmgen, generation from the saved run."""

import pytest
import torch
from training_recipes import losses, reset_accelerate, resumed_step, run, t2i_recipe

from mmgen import TextToImagePipeline


def tokenizer_and_order(order, request):
    if order == "next_scale":
        return request.getfixturevalue("trained_msvq"), {"name": "next_scale"}
    if order == "next_scale_window":
        return request.getfixturevalue("trained_msvq"), {"name": "next_scale", "window": 2}
    if order == "token_shuffle":
        return request.getfixturevalue("trained_vq")[0] / "final", {"name": "token_shuffle",
                                                                    "window": 2}  # fmt: skip
    kl = request.getfixturevalue("trained_kl")
    if order == "continuous_next_token":
        return kl, {"name": "next_token"}
    if order == "continuous_next_scale_window":
        return kl, {"name": "continuous_next_scale", "scales": [1, 2, 4, 8],
                    "upsample": "bilinear", "window": 2}  # fmt: skip
    return kl, {"name": "continuous_next_scale", "scales": [1, 2, 4, 8], "upsample": "bilinear"}


@pytest.mark.parametrize(
    "order",
    [
        "next_scale",
        "next_scale_window",
        "token_shuffle",
        "continuous_next_token",
        "continuous_next_scale",
        "continuous_next_scale_window",
    ],  # fmt: skip
)
def test_resume_reproduces_uninterrupted_losses_for_every_order(order, request, tmp_path, capsys):
    """Continuous orders too: their flow heads' noise comes from the run's generator."""
    tokenizer, spec = tokenizer_and_order(order, request)
    run(t2i_recipe(tmp_path, tokenizer, name="full", lr_schedule="constant"), order=spec)
    reset_accelerate()
    recipe = t2i_recipe(tmp_path, tokenizer, name="split", lr_schedule="constant")
    run(recipe, order=spec, **{"training.max_steps": 2})
    reset_accelerate()
    capsys.readouterr()
    run(recipe, resume="latest", order=spec)
    assert resumed_step(capsys.readouterr().out) == 2
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "split" / "final")
    assert pipe.order.config() == spec
    images = pipe("a red circle", output_type="np", num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert images.images.shape == (1, 64, 64, 3)


def test_an_order_defined_outside_mmgen_trains_and_generates(trained_vq, tmp_path):
    """``order.name: module:Class`` names a user's order; the run saves it in model_index.json
    and from_pretrained rebuilds it: no edit inside mmgen."""
    spec = {"name": "example_orders:BlockOrder", "block": 2}
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="blocks", max_steps=3)
    run(recipe, order=spec)
    trained = losses(tmp_path / "blocks")
    assert sorted(trained) == [1, 2, 3] and trained[3] < trained[1]
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "blocks" / "final")
    assert type(pipe.order).__name__ == "BlockOrder" and pipe.order.config() == spec
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[-2]))
    out = pipe(["a red circle", "a blue square"], guidance_scale=2.0, output_type="pt",
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.images.shape == (2, 3, 64, 64)
    grid = pipe.order.token_layout.grid
    assert calls == [24] + [4] * (grid[0] * grid[1] // 4)  # prefill, then one call per block


def test_group_loss_power_reweights_a_next_scale_loss_categorical_and_flow(
    trained_msvq, trained_kl, tmp_path
):
    """The run trains on the weighted loss: the categorical head starts uniform, so step 1's
    losses agree, and step 2's differ (the weights themselves are checked against the group
    means in tests/models/test_group_loss_weights.py). FlowAR's group flow head starts at zero
    velocity, where each scale's loss is its latents' spread, so the weighted mean differs
    from step 1."""
    spec = {"name": "next_scale", "window": 2}
    run(t2i_recipe(tmp_path, trained_msvq, name="plain", max_steps=2), order=spec)
    reset_accelerate()
    recipe = t2i_recipe(tmp_path, trained_msvq, name="coarse", max_steps=2, group_loss_power=0.5)
    run(recipe, order=spec)
    plain, coarse = losses(tmp_path / "plain"), losses(tmp_path / "coarse")
    assert coarse[1] == pytest.approx(plain[1]) and coarse[2] != pytest.approx(plain[2], rel=1e-4)
    flow_spec = {"name": "continuous_next_scale", "scales": [1, 2, 4, 8]}
    for name, power in (("flow", 0.0), ("flow_coarse", 1.0)):
        reset_accelerate()
        run(t2i_recipe(tmp_path, trained_kl, name=name, max_steps=1, group_loss_power=power),
            order=flow_spec)  # fmt: skip
    flow, flow_coarse = losses(tmp_path / "flow"), losses(tmp_path / "flow_coarse")
    assert flow_coarse[1] != pytest.approx(flow[1], rel=1e-3)


def test_a_shuffle_head_without_its_residual_mlp_trains_saves_and_reloads(trained_vq, tmp_path):
    """``model.head: {residual_mlp: false}`` over the order's multi-categorical head: the
    saved pipeline rebuilds the slimmer head from its config and generates."""
    spec = {"name": "token_shuffle", "window": 2}
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="slim", max_steps=2)
    run(recipe, order=spec, **{"model.head": {"residual_mlp": False}})
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "slim" / "final")
    assert pipe.transformer.config.head["residual_mlp"] is False
    assert isinstance(pipe.transformer.head.mix, torch.nn.Identity)
    assert not [k for k in pipe.transformer.state_dict() if k.startswith("head.mix")]
    out = pipe("a red circle", output_type="np", generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 64, 64, 3)
