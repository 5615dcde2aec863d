"""The rectified-flow core: Euler on the exact velocity field of a Gaussian reaches it, guidance
1 is the unguided path, seeds reproduce, and the loss is the velocity regression it claims."""

import pytest
import torch

from mmgen.generation.flow import draw_training_noise, euler_sample, flow_matching_loss

MU, SIGMA = 2.0, 0.5  # data ~ N(MU, SIGMA^2) per coordinate


def gaussian_velocity(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """E[x - e | x_t] for x ~ N(MU, SIGMA^2), e ~ N(0, 1), x_t = (1 - t) e + t x."""
    t = t.reshape(-1, *([1] * (x_t.ndim - 1)))
    var = (1 - t) ** 2 + t**2 * SIGMA**2  # Var(x_t)
    centred = x_t - t * MU
    return MU + (t * SIGMA**2 - (1 - t)) * centred / var


def moments_error(num_steps: int) -> float:
    gen = torch.Generator().manual_seed(0)
    x = euler_sample(gaussian_velocity, (20000, 2), num_steps=num_steps, generator=gen)
    return abs(x.mean().item() - MU) + abs(x.std().item() - SIGMA)


def test_euler_on_the_exact_gaussian_velocity_reaches_the_gaussian_as_steps_grow():
    errors = {steps: moments_error(steps) for steps in (2, 8, 64)}
    assert errors[64] < 0.03  # mean 2.0 and std 0.5 within sampling noise of 20k draws
    assert errors[64] < errors[8] < errors[2]


def test_guidance_one_is_the_unguided_path_and_seeds_reproduce():
    calls = []

    def velocity(x, t):
        calls.append(x.shape[0])
        return gaussian_velocity(x, t)

    def run(scale, seed=3):
        gen = torch.Generator().manual_seed(seed)
        return euler_sample(velocity, (4, 3), num_steps=5, generator=gen, guidance_scale=scale)

    assert torch.equal(run(1.0), run(1.0))
    assert calls == [4] * 10  # unguided: the batch alone, once per step
    calls.clear()
    guided = run(3.0)
    assert calls == [8] * 5  # guided: the doubled batch
    # identical conditional and unconditional halves: guidance changes nothing
    assert torch.allclose(guided, run(1.0), atol=1e-6)
    assert not torch.equal(run(1.0, seed=3), run(1.0, seed=4))


def test_guidance_mixes_the_velocities():
    def velocity(x, t):  # conditional half pushes +1, unconditional 0
        return torch.cat([torch.ones_like(x[: len(x) // 2]), torch.zeros_like(x[len(x) // 2 :])])

    gen = torch.Generator().manual_seed(0)
    start = torch.randn((2, 2), generator=torch.Generator().manual_seed(0))
    out = euler_sample(velocity, (2, 2), num_steps=4, generator=gen, guidance_scale=2.5)
    assert torch.allclose(out, start + 2.5)  # v = 1 + 1.5 * (1 - 0) over t in [0, 1]


def test_temperature_scales_the_starting_noise_and_bad_steps_are_refused():
    def still(x, t):
        return torch.zeros_like(x)

    a = euler_sample(still, (3, 2), num_steps=1, generator=torch.Generator().manual_seed(1))
    b = euler_sample(still, (3, 2), num_steps=1, generator=torch.Generator().manual_seed(1),
                     temperature=0.5)  # fmt: skip
    assert torch.allclose(b, 0.5 * a)
    with pytest.raises(ValueError, match="num_inference_steps"):
        euler_sample(still, (1, 1), num_steps=0)


def test_the_loss_regresses_the_velocity_target_at_the_drawn_times():
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    seen = {}

    def velocity(x_t, t):
        seen["x_t"], seen["t"] = x_t, t
        return torch.zeros_like(x_t)

    noise, t = draw_training_noise(x.shape, torch.Generator().manual_seed(7), "cpu")
    gen = torch.Generator().manual_seed(7)  # the same draws, in the same order
    assert torch.equal(noise, torch.randn(x.shape, generator=gen))
    assert torch.equal(t, torch.rand(6, generator=gen))
    loss = flow_matching_loss(velocity, x, noise, t)
    assert torch.equal(seen["t"], t)
    assert torch.allclose(seen["x_t"], (1 - t[:, None]) * noise + t[:, None] * x)
    assert loss.item() == pytest.approx((x - noise).pow(2).mean().item())
    assert flow_matching_loss(lambda x_t, t: x - noise, x, noise, t).item() == 0.0


def test_logit_normal_times_are_the_sigmoid_of_a_normal_draw():
    """FAR's (and SD3's) times: sigmoid(n), n ~ N(0, 1), from the caller's generator; mid
    times come more often than under uniform times (P(0.25 < t < 0.75) = 0.73 against 0.5)."""
    from mmgen.generation.flow import draw_times

    t = draw_times(20000, torch.Generator().manual_seed(3), "cpu", "logit_normal")
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(t, torch.sigmoid(torch.randn(20000, generator=gen)))
    assert ((t > 0.25) & (t < 0.75)).float().mean().item() == pytest.approx(0.728, abs=0.01)
    noise, t = draw_training_noise((5, 2), torch.Generator().manual_seed(4), "cpu",
                                   "logit_normal")  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    torch.randn(5, 2, generator=gen)
    assert torch.equal(t, torch.sigmoid(torch.randn(5, generator=gen)))
    with pytest.raises(ValueError, match="logit_normal"):
        draw_times(3, None, "cpu", "normal")


@pytest.mark.parametrize("kind", ["flow_mlp", "group_flow"])
def test_flow_heads_draw_their_training_times_as_configured(kind):
    from mmgen.models.heads import build_head

    spec = {"kind": kind, "latent_channels": 3, "width": 16, "depth": 1}
    if kind == "group_flow":
        spec["num_heads"] = 2
    targets = torch.randn(4, 6, 3)
    uniform = build_head(spec, 8).training_draws(targets, torch.Generator().manual_seed(0))
    head = build_head({**spec, "times": "logit_normal"}, 8)
    draws = head.training_draws(targets, torch.Generator().manual_seed(0))
    assert torch.equal(draws["noise"], uniform["noise"]) and not torch.equal(
        draws["t"], uniform["t"]
    )
    gen = torch.Generator().manual_seed(0)
    torch.randn(draws["noise"].shape, generator=gen)
    assert torch.equal(
        draws["t"].flatten(), torch.sigmoid(torch.randn(draws["t"].numel(), generator=gen))
    )
    with pytest.raises(ValueError, match="head times"):
        build_head({**spec, "times": "beta"}, 8)


@pytest.mark.parametrize("kind", ["flow_mlp", "group_flow"])
def test_a_head_built_to_read_inputs_needs_them_and_uses_them(kind):
    """``input_channels`` (a spec's ``reads_inputs``): the rows' inputs enter the velocity, and
    a call without them is an error, not a silent unconditioned draw."""
    from mmgen.models.heads import build_head

    spec = {"kind": kind, "latent_channels": 3, "width": 16, "depth": 1, "input_channels": 5}
    if kind == "group_flow":
        spec["num_heads"] = 2
    head = build_head(spec, 8)
    torch.nn.init.normal_(head.out.weight)  # a non-zero velocity
    x, t, z = torch.randn(2, 4, 3), torch.rand(2), torch.randn(2, 4, 8)
    if head.per_row:
        x, t, z = x.reshape(8, 3), torch.rand(8), z.reshape(8, 8)
    inputs = torch.randn(*x.shape[:-1], 5)
    assert not torch.allclose(head.velocity(x, t, z, inputs), head.velocity(x, t, z, inputs + 1))
    with pytest.raises(ValueError, match="reads the rows' inputs"):
        head.velocity(x, t, z)


def test_reads_inputs_needs_an_input_adapter_with_channels():
    from mmgen.models.transformer import ARTransformer, transformer_config_from_preset
    from mmgen.utils.config import ConfigError

    config = transformer_config_from_preset(
        "debug", condition_vocab_size=8, input={"kind": "token", "num_codes": 16},
        head={"kind": "group_flow", "latent_channels": 3, "reads_inputs": True},
    )  # fmt: skip
    with pytest.raises(ConfigError, match="reads_inputs needs a latent input"):
        ARTransformer(config)
