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


def test_a_caption_scorer_predicts_each_id_from_the_image_and_the_ids_before_it():
    scorer = tiny_scorer(objective="caption", pad_id=0, depth=2)  # two: leaks need two blocks
    ids = torch.tensor([[1, 5, 9, 7, 2, 0], [1, 6, 8, 2, 0, 0]])
    codes = torch.randint(0, 32, (2, 4, 4), generator=torch.Generator().manual_seed(2))
    log_probs = scorer.caption_log_probs(ids, codes)  # (2, 5): ids 1..5
    assert log_probs.shape == (2, 5) and (log_probs[:, :3] < 0).all()
    assert (log_probs[0, 4:] == 0).all() and (log_probs[1, 3:] == 0).all()  # padding unscored
    torch.testing.assert_close(scorer(ids, codes), log_probs.sum(1))
    # by hand: row t's distribution over the vocabulary, at id t + 1
    x = scorer.hidden(ids, codes)
    by_hand = scorer.out(scorer.norm(x[:, scorer.num_windows : -1])).log_softmax(-1)
    torch.testing.assert_close(log_probs[0, :4], by_hand[0, torch.arange(4), ids[0, 1:5]])
    for k in range(1, 5):  # changing id k changes nothing before its own prediction (k - 1)
        changed = ids.clone()
        changed[:, k] = 4 + (changed[:, k] - 3) % 16
        moved = scorer.caption_log_probs(changed, codes)
        torch.testing.assert_close(moved[0, : k - 1], log_probs[0, : k - 1])
        assert not torch.allclose(moved[0, k - 1 :], log_probs[0, k - 1 :])
    for y, x in [(0, 0), (3, 1)]:  # every prediction reads the image
        changed = codes.clone()
        changed[0, y, x] = (changed[0, y, x] + 1) % 32
        moved = scorer.caption_log_probs(ids, changed)
        assert not torch.isclose(moved[0, :4], log_probs[0, :4]).any()
    with pytest.raises(ValueError, match="needs the condition tokenizer's pad_id"):
        MatchScorerConfig(20, 6, 32, grid=(4, 4), objective="caption")
    with pytest.raises(ValueError, match="objective 'rank'"):
        MatchScorerConfig(20, 6, 32, grid=(4, 4), objective="rank")


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
