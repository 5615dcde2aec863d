"""The per-row flow head (MAR / CLEAR): learns a conditional distribution with flow matching
and samples it by Euler steps, guidance on the velocity."""

import pytest
import torch

from mmgen.generation.loop import SamplingConfig
from mmgen.models.flow_heads import FlowMLPHead


def conditioning(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, 1, 8) hidden states of two kinds and the +-1 centres of their latents (n, 1, 2)."""
    sign = torch.tensor([1.0, -1.0]).repeat(n // 2)  # (n,)
    hidden = torch.zeros(n, 1, 8)
    hidden[:, 0, 0] = sign
    return hidden, sign[:, None, None].expand(n, 1, 2)


@pytest.mark.parametrize("kind", ["flow_mlp", "group_flow"])
def test_it_learns_a_conditional_distribution_and_samples_it(kind):
    """Both heads follow their conditioning (the group head through its spatial adaLN)."""
    from mmgen.models.flow_heads import GroupFlowHead

    torch.manual_seed(0)
    if kind == "flow_mlp":
        head = FlowMLPHead(8, latent_channels=2, width=64, depth=2, num_draws=4)
    else:
        head = GroupFlowHead(8, latent_channels=2, width=64, depth=2, num_draws=4)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    data = torch.Generator().manual_seed(1)
    draws = torch.Generator().manual_seed(2)
    for _ in range(300):
        hidden, centres = conditioning(64)
        targets = centres + 0.1 * torch.randn(centres.shape, generator=data)
        loss = head.loss(hidden, targets, head.training_draws(targets, draws))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hidden, centres = conditioning(200)
    sampling = SamplingConfig(num_inference_steps=16)
    with torch.no_grad():
        out = head.sample(hidden, 200, 1.0, sampling, torch.Generator().manual_seed(3))
    assert out.shape == (200, 1, 2)
    assert (out[0::2].mean() - 1).abs() < 0.15 and (out[1::2].mean() + 1).abs() < 0.15
    assert out[0::2].std() < 0.4  # concentrated around its centre, not the two-mode mixture


@pytest.mark.parametrize("kind", ["flow_mlp", "group_flow"])
def test_a_fresh_head_predicts_zero_velocity_and_guidance_one_uses_the_conditional_rows(kind):
    from mmgen.models.flow_heads import GroupFlowHead

    torch.manual_seed(0)
    if kind == "flow_mlp":
        head = FlowMLPHead(8, latent_channels=3, width=16, depth=1)
    else:
        head = GroupFlowHead(8, latent_channels=3, width=16, depth=1)
    hidden = torch.randn(2, 5, 8)
    sampling = SamplingConfig(num_inference_steps=4, temperature=0.5)
    out = head.sample(hidden, 2, 1.0, sampling, torch.Generator().manual_seed(0))
    noise = torch.randn((10, 3), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, 0.5 * noise.reshape(2, 5, 3))  # zero-initialised output layer
    for weight in head.parameters():  # a trained head: every layer (the gates too) non-zero
        torch.nn.init.normal_(weight, std=0.3)
    doubled = torch.cat([hidden, torch.randn(2, 5, 8)])  # conditional rows first
    alone = head.sample(hidden, 2, 1.0, sampling, torch.Generator().manual_seed(0))
    with_uncond = head.sample(doubled, 2, 1.0, sampling, torch.Generator().manual_seed(0))
    assert torch.equal(alone, with_uncond)
    guided = head.sample(doubled, 2, 3.0, sampling, torch.Generator().manual_seed(0))
    assert not torch.allclose(guided, alone)


def shared_sign_groups(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 4, 1) groups whose 4 rows share one random sign (plus a little noise)."""
    sign = torch.randint(0, 2, (n, 1, 1), generator=gen).float() * 2 - 1
    return sign.expand(n, 4, 1) + 0.05 * torch.randn(n, 4, 1, generator=gen)


def agreement(head, n: int = 200) -> float:
    """Fraction of sampled groups whose 4 rows all have the same sign."""
    sampling = SamplingConfig(num_inference_steps=16)
    with torch.no_grad():
        out = head.sample(torch.zeros(n, 4, 8), n, 1.0, sampling, torch.Generator().manual_seed(9))
    signs = out.sign()
    return (signs == signs[:, :1]).all(dim=1).float().mean().item()


def train(head, steps: int = 250) -> None:
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    data, draws = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    for _ in range(steps):
        targets = shared_sign_groups(64, data)
        loss = head.loss(torch.zeros(64, 4, 8), targets, head.training_draws(targets, draws))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_the_group_head_denoises_a_group_jointly_where_a_per_row_head_cannot():
    from mmgen.models.flow_heads import GroupFlowHead

    torch.manual_seed(0)
    group = GroupFlowHead(8, latent_channels=1, width=32, depth=2, num_heads=4)
    per_row = FlowMLPHead(8, latent_channels=1, width=32, depth=2, num_draws=1)
    train(group)
    train(per_row)
    # the rows of a group agree in sign: the group head learns it, a per-row head draws each
    # row's sign alone (all four agree about 2 / 2^4 = 1/8 of the time)
    assert agreement(group) > 0.85
    assert agreement(per_row) < 0.4


def test_group_bounds_cover_the_whole_shapes_a_multiple_or_their_first_groups():
    """A clip's groups (two first-frame scales, then 3 frames of 4 x 4 rows), repeated for
    two clips, or only frame 0's groups (``training.first_frame_batch``'s one-frame
    sequences); any other row count is an error that names the counts it takes."""
    from mmgen.models.flow_heads import GroupFlowHead

    head = GroupFlowHead(16, 4, width=16, depth=1, num_heads=2,
                         group_shapes=[[1, 1], [2, 2], [4, 4], [4, 4], [4, 4]])  # fmt: skip
    clip = [(0, 1), (1, 5), (5, 21), (21, 37), (37, 53)]
    assert head.group_bounds(53) == clip
    assert head.group_bounds(106) == clip + [(a + 53, b + 53) for a, b in clip]
    assert head.group_bounds(21) == clip[:3]
    assert head.group_bounds(1) == clip[:1]
    with pytest.raises(ValueError, match=r"hold 53 rows .*\[1, 5, 21, 37\].*got 20"):
        head.group_bounds(20)
