"""``training.group_loss_power``: row weights of a categorical head's loss by group size."""

import pytest
import torch
import torch.nn.functional as F

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


@pytest.mark.parametrize("power", [-0.5, 1.5, "0.5", True])
def test_a_bad_power_is_a_config_error_naming_the_key(power):
    with pytest.raises(ConfigError, match="training.group_loss_power"):
        TrainingConfig(group_loss_power=power)
