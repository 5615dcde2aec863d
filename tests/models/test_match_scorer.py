"""The match scorer reads both the prompt and every window of codes; word swaps stay in form."""

import pytest
import torch

from mmgen.models.match_scorer import MatchScorer, MatchScorerConfig, corrupt_condition_ids


def tiny_scorer(seed=0, **fields):
    torch.manual_seed(seed)
    sizes = {"grid": (4, 4), "dim": 16, "depth": 1, "num_heads": 2, **fields}
    config = MatchScorerConfig(condition_vocab_size=20, condition_length=6, num_codes=32, **sizes)
    scorer = MatchScorer(config).eval()
    with torch.no_grad():  # learned rows start at zero-ish: give the logit something to read
        for p in scorer.parameters():
            p.normal_(0, 0.5)
    return scorer


def test_logits_read_flat_or_grid_codes_alike():
    scorer = tiny_scorer()
    ids = torch.randint(4, 20, (3, 6), generator=torch.Generator().manual_seed(1))
    codes = torch.randint(0, 32, (3, 4, 4), generator=torch.Generator().manual_seed(2))
    logits = scorer(ids, codes)
    assert logits.shape == (3,)
    assert torch.equal(logits, scorer(ids, codes.flatten(1)))


def test_every_code_window_and_every_prompt_row_moves_the_logit():
    scorer = tiny_scorer()
    ids = torch.randint(4, 20, (1, 6), generator=torch.Generator().manual_seed(1))
    codes = torch.randint(0, 32, (1, 4, 4), generator=torch.Generator().manual_seed(2))
    base = scorer(ids, codes)
    for y in range(4):
        for x in range(4):
            changed = codes.clone()
            changed[0, y, x] = (changed[0, y, x] + 1) % 32
            assert not torch.allclose(scorer(ids, changed), base), (y, x)
    for t in range(6):
        changed = ids.clone()
        changed[0, t] = 4 + (changed[0, t] - 3) % 16
        assert not torch.allclose(scorer(changed, codes), base), t


@pytest.mark.parametrize("fixed_positions", [False, True])
def test_only_fixed_positions_tell_a_scene_from_its_mirror_image_or_words_from_their_reorder(
    fixed_positions,
):
    """Learned rows at zero (where training left them, near enough): full attention is blind
    to where a window or a word sits; fixed place features are not."""
    scorer = tiny_scorer(window=1, dim=24, fixed_positions=fixed_positions)
    with torch.no_grad():
        scorer.position.zero_()
    ids = torch.randint(4, 20, (1, 6), generator=torch.Generator().manual_seed(1))
    codes = torch.randint(0, 32, (1, 4, 4), generator=torch.Generator().manual_seed(2))
    base = scorer(ids, codes)
    moved = [scorer(ids, codes.flip(2)), scorer(ids, codes.flip(1)), scorer(ids.flip(1), codes)]
    for logit in moved:  # left-right, top-bottom, the words in the other order
        assert torch.allclose(logit, base, atol=1e-5) != fixed_positions


def test_fixed_positions_are_computed_not_saved():
    scorer = tiny_scorer(dim=24, fixed_positions=True)
    assert "fixed_position" not in scorer.state_dict()
    assert set(scorer.state_dict()) == set(tiny_scorer(dim=24).state_dict())
    with pytest.raises(ValueError, match="divisible by 6 for fixed_positions"):
        MatchScorerConfig(20, 6, 32, grid=(4, 4), dim=16, num_heads=2, fixed_positions=True)


def test_wrong_sizes_are_refused():
    scorer = tiny_scorer()
    with pytest.raises(ValueError, match="conditions of 6 ids and codes of"):
        scorer(torch.zeros(1, 5, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="codes of"):
        scorer(torch.zeros(1, 6, dtype=torch.long), torch.zeros(1, 2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible by window"):
        MatchScorerConfig(20, 6, 32, grid=(5, 4))


def test_word_swap_changes_one_word_to_one_seen_there_in_a_prompt_of_the_same_form():
    PAD, BOS, EOS = 0, 1, 2
    rows = [
        [BOS, 10, 11, 12, EOS, PAD],  # three words
        [BOS, 10, 13, 14, EOS, PAD],
        [BOS, 15, 11, 12, EOS, PAD],
        [BOS, 16, 17, EOS, PAD, PAD],  # two words, and the only such prompt
    ]
    ids = torch.tensor(rows)
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        swapped = corrupt_condition_ids(ids, {PAD, BOS, EOS, 3}, g)
        for b in range(4):
            changed = (swapped[b] != ids[b]).nonzero().flatten().tolist()
            assert len(changed) == 1, (seed, b)
            t = changed[0]
            assert ids[b, t] not in (PAD, BOS, EOS) and swapped[b, t] not in (PAD, BOS, EOS, 3)
            if b < 3:  # a word seen at place t in another three-word prompt
                assert swapped[b, t] in ids[:3, t].tolist()
    again = corrupt_condition_ids(ids, {PAD, BOS, EOS, 3}, torch.Generator().manual_seed(5))
    assert torch.equal(again, corrupt_condition_ids(ids, {PAD, BOS, EOS, 3},
                                                    torch.Generator().manual_seed(5)))  # fmt: skip
