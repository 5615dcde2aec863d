"""``training.group_loss_power``: row weights of a head's loss by group size (categorical heads
by codes, flow heads by rows of latents)."""

import pytest
import torch
import torch.nn.functional as F

from mmgen.generation.flow import flow_matching_loss
from mmgen.models.flow_heads import FlowMLPHead, GroupFlowHead
from mmgen.models.heads import (
    IGNORE_INDEX,
    CategoricalHead,
    MultiCategoricalHead,
    group_loss_weights,
)
from mmgen.training.config import TrainingConfig
from mmgen.utils.config import ConfigError


def window_targets(generator):
    """Next-scale targets in 2x2 windows for scales 1, 2, 4: a 1 x 1 row holding one code,
    one window row of 4 codes, then 4 window rows of 4: groups of 1, 4 and 16 codes."""
    targets = torch.randint(0, 7, (3, 6, 4), generator=generator)
    targets[:, 0, 1:] = IGNORE_INDEX
    return targets, [1, 1, 4]


def test_each_code_of_a_group_of_n_weighs_n_to_the_minus_power():
    targets, groups = window_targets(torch.Generator().manual_seed(0))
    weights = group_loss_weights(targets, groups, 0.5)
    assert torch.allclose(weights, torch.tensor([1.0, 0.5, 0.25, 0.25, 0.25, 0.25]))
    assert torch.equal(group_loss_weights(targets, groups, 0.0), torch.ones(6))
    with pytest.raises(ValueError, match="groups of 5 rows"):
        group_loss_weights(targets, [1, 4], 0.5)


def test_power_zero_is_the_plain_mean_and_power_one_gives_every_group_one_share():
    gen = torch.Generator().manual_seed(1)
    targets, groups = window_targets(gen)
    head = MultiCategoricalHead(16, 7, window=2)
    hidden = torch.randn(3, 6, 16, generator=gen)
    plain = head.loss(hidden, targets)
    assert torch.allclose(head.loss(hidden, targets, row_weights=torch.ones(6)), plain)
    weighted = head.loss(hidden, targets, row_weights=group_loss_weights(targets, groups, 1.0))
    logits = head(hidden).float()  # (B, 6, 4, K)
    per_code = F.cross_entropy(logits.flatten(0, 2), targets.flatten(), reduction="none",
                               ignore_index=IGNORE_INDEX).view_as(targets)  # fmt: skip
    group_means = [per_code[:, 0, 0].mean(), per_code[:, 1].mean(), per_code[:, 2:].mean()]
    assert torch.allclose(weighted, torch.stack(group_means).mean())
    assert not torch.allclose(weighted, plain)


def test_one_code_per_row_weights_rows():
    gen = torch.Generator().manual_seed(2)
    head = CategoricalHead(8, 5)
    hidden, targets = (
        torch.randn(2, 5, 8, generator=gen),
        torch.randint(0, 5, (2, 5), generator=gen),
    )
    weights = group_loss_weights(targets, [1, 4], 1.0)  # one row alone, then four
    per_row = F.cross_entropy(head(hidden).flatten(0, 1), targets.flatten(), reduction="none")
    per_row = per_row.view(2, 5)
    expected = (per_row[:, 0].mean() + per_row[:, 1:].mean()) / 2
    assert torch.allclose(head.loss(hidden, targets, row_weights=weights), expected)


def randomized(head, seed):
    """The head with every parameter drawn at random (flow heads start at zero velocity)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in head.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return head


def test_latent_rows_are_one_target_each():
    latents = torch.randn(2, 5, 3)
    weights = group_loss_weights(latents, [1, 4], 1.0)
    assert torch.allclose(weights, torch.tensor([1.0] + [0.25] * 4))


def test_first_group_weight_scales_only_the_first_groups_rows():
    """``training.first_group_weight``: a next-frame clip of 3 frames of 2 rows, frame 0 x4;
    with a power the factor multiplies the group's n^-power."""
    latents = torch.randn(2, 6, 3)
    weights = group_loss_weights(latents, [2, 2, 2], 0.0, first_group_weight=4.0)
    assert torch.equal(weights, torch.tensor([4.0, 4.0, 1.0, 1.0, 1.0, 1.0]))
    weights = group_loss_weights(latents, [2, 4], 1.0, first_group_weight=3.0)
    assert torch.allclose(weights, torch.tensor([1.5, 1.5, 0.25, 0.25, 0.25, 0.25]))


def test_a_group_flow_head_weighs_each_group_by_its_rows_weights():
    """Scales 1 and 2 (groups of 1 and 4 rows): power 1 gives each group's mean loss the same
    share, power 0 (weights of 1) is the plain loss over rows."""
    gen = torch.Generator().manual_seed(3)
    head = randomized(GroupFlowHead(8, 3, width=16, depth=1, num_heads=2,
                                    group_shapes=[[1, 1], [2, 2]]), seed=4)  # fmt: skip
    hidden, targets = torch.randn(2, 5, 8, generator=gen), torch.randn(2, 5, 3, generator=gen)
    draws = head.training_draws(targets, gen)
    plain = head.loss(hidden, targets, draws)
    assert torch.allclose(head.loss(hidden, targets, draws, row_weights=torch.ones(5)), plain)
    group_means = [
        flow_matching_loss(lambda x_t, t, z=hidden[:, a:b]: head.velocity(x_t, t, z),
                           targets[:, a:b], draws["noise"][:, a:b], draws["t"][:, g])
        for g, (a, b) in enumerate([(0, 1), (1, 5)])
    ]  # fmt: skip
    weights = group_loss_weights(targets, [1, 4], 1.0)
    weighted = head.loss(hidden, targets, draws, row_weights=weights)
    assert torch.allclose(weighted, torch.stack(group_means).mean())
    assert torch.allclose(plain, (group_means[0] + 4 * group_means[1]) / 5)
    assert not torch.allclose(weighted, plain)


def test_a_per_row_flow_head_weighs_each_row():
    gen = torch.Generator().manual_seed(5)
    head = randomized(FlowMLPHead(8, 3, width=16, depth=1, num_draws=2), seed=6)
    hidden, targets = torch.randn(2, 5, 8, generator=gen), torch.randn(2, 5, 3, generator=gen)
    draws = head.training_draws(targets, gen)
    weights = group_loss_weights(targets, [1, 4], 1.0)
    z, x = head.repeat_draws(head.units(hidden)), head.repeat_draws(head.units(targets))
    x_t = (1 - draws["t"][:, None]) * draws["noise"] + draws["t"][:, None] * x
    error = (head.velocity(x_t, draws["t"], z) - (x - draws["noise"])).pow(2).mean(-1)
    per_row = error.view(2 * 2, 5)  # (draws * B, n): units are rows, batch-major
    expected = (per_row[:, 0].mean() + per_row[:, 1:].mean()) / 2
    assert torch.allclose(head.loss(hidden, targets, draws, row_weights=weights), expected)
    assert torch.allclose(head.loss(hidden, targets, draws, row_weights=torch.ones(5)),
                          head.loss(hidden, targets, draws))  # fmt: skip


@pytest.mark.parametrize("power", [-0.5, 1.5, "0.5", True])
def test_a_bad_power_is_a_config_error_naming_the_key(power):
    with pytest.raises(ConfigError, match="training.group_loss_power"):
        TrainingConfig(group_loss_power=power)


@pytest.mark.parametrize("weight", [0, -1.0, "4", True])
def test_a_bad_first_group_weight_is_a_config_error_naming_the_key(weight):
    with pytest.raises(ConfigError, match="training.first_group_weight"):
        TrainingConfig(first_group_weight=weight)
