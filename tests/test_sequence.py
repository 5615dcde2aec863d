import torch

from mmgen.sequence import condition_and_groups_layout, drop_condition, grid_positions


def raster(text_length, grid, **kwargs):
    n = grid[0] * grid[1]
    return condition_and_groups_layout(
        text_length, [1] * n, grid_positions(grid, text_length), **kwargs
    )


def test_raster_layout_groups_positions_and_kv_end():
    layout = raster(3, (2, 2))
    assert layout.group_ids.tolist() == [0, 0, 0, 1, 2, 3, 4]
    assert layout.kv_end.tolist() == [3, 3, 3, 4, 5, 6, 7]
    # text at (j, j, j); image token (r, c) at (T, T + r, T + c)
    assert layout.positions.tolist() == [
        [0, 0, 0],
        [1, 1, 1],
        [2, 2, 2],
        [3, 3, 3],
        [3, 3, 4],
        [3, 4, 3],
        [3, 4, 4],
    ]
    assert layout.image_groups == [(3, 4), (4, 5), (5, 6), (6, 7)]


def test_multi_row_groups_attend_their_whole_group():
    layout = condition_and_groups_layout(2, [1, 4], grid_positions((1, 5), 2))
    assert layout.group_ids.tolist() == [0, 0, 1, 2, 2, 2, 2]
    assert layout.kv_end.tolist() == [2, 2, 3, 7, 7, 7, 7]
    assert layout.image_groups == [(2, 3), (3, 7)]


def test_flat_positions_for_1d_rope():
    layout = raster(2, (1, 3), flat_positions=True)
    assert layout.positions.tolist() == [[i, i, i] for i in range(5)]


def test_condition_dropout_rate_and_reproducibility():
    text = torch.arange(4).repeat(4000, 1)
    null = torch.full((4,), 9)
    dropped = drop_condition(text, null, 0.1, torch.Generator().manual_seed(0))
    rows_dropped = (dropped == 9).all(dim=1)
    assert 0.08 < rows_dropped.float().mean().item() < 0.12
    assert torch.equal(dropped[~rows_dropped], text[~rows_dropped])
    again = drop_condition(text, null, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(dropped, again)
    assert torch.equal(drop_condition(text, null, 0.0, torch.Generator()), text)


def test_layout_is_causal_only_when_every_group_is_one_token():
    assert raster(1, (3, 3)).is_causal  # class-to-image: one class token first
    assert not raster(5, (3, 3)).is_causal  # a 5-token text group sees itself
