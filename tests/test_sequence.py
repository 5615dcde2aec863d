import torch

from mmgen.sequence import (
    IGNORE_INDEX,
    TokenSpace,
    build_training_batch,
    drop_condition,
    text_image_layout,
)


def test_text_image_layout_groups_positions_and_kv_end():
    layout = text_image_layout(3, (2, 2))
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


def test_flat_positions_for_1d_rope():
    layout = text_image_layout(2, (1, 3), flat_positions=True)
    assert layout.positions.tolist() == [[i, i, i] for i in range(5)]


def test_training_batch_shifts_codes_and_ignores_text():
    space = TokenSpace(text_vocab_size=10, num_codes=5)
    text = torch.tensor([[1, 2]])
    codes = torch.tensor([[[4, 0], [3, 1]]])
    input_ids, targets = build_training_batch(text, codes, space)
    # slot i's input is code i-1 (offset by the text vocabulary), slot 0 gets the start token
    assert input_ids.tolist() == [[1, 2, space.start_id, 14, 10, 13]]
    assert targets.tolist() == [[IGNORE_INDEX, IGNORE_INDEX, 4, 0, 3, 1]]
    assert space.vocab_size == 16


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
    from mmgen.sequence import text_image_layout

    assert text_image_layout(1, (3, 3)).is_causal  # class-to-image: one class token first
    assert not text_image_layout(5, (3, 3)).is_causal  # a 5-token text group sees itself
