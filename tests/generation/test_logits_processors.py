import pytest
import torch

from mmgen.generation.logits_processors import (
    check_sampling_args,
    logits_to_probs,
    sample,
    top_k_filter,
    top_p_filter,
)


def test_top_k_keeps_k_largest():
    logits = torch.tensor([[1.0, 5.0, 3.0, 4.0]])
    kept = torch.isfinite(top_k_filter(logits, 2))
    assert kept.tolist() == [[False, True, False, True]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def test_top_p_keeps_smallest_set_reaching_mass():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    kept = torch.isfinite(top_p_filter(probs.log(), 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    kept = torch.isfinite(top_p_filter(probs.log(), 0.5))
    assert kept.tolist() == [[True, False, False, False]]  # the top token always stays


def test_a_top_p_below_float32_resolution_keeps_the_most_likely_token():
    # 1e-300 is a valid top_p that rounds to 0.0 against float32 probabilities
    logits = torch.tensor([[0.1, 2.0, -1.0, 0.5], [3.0, 3.0, 0.0, -2.0]])
    kept = top_p_filter(logits, 1e-300)
    assert torch.equal(torch.isfinite(kept).sum(-1), torch.tensor([1, 1]))
    assert torch.isfinite(kept[0, 1]) and torch.isfinite(kept[1, :2]).any()
    tokens = sample(logits, top_p=1e-300, generator=torch.Generator().manual_seed(0))
    assert tokens[0] == 1 and tokens[1] in (0, 1)


def test_temperature_zero_is_greedy_and_low_temperature_sharpens():
    logits = torch.tensor([[0.1, 2.0, 1.0]])
    assert sample(logits, temperature=0).tolist() == [1]
    assert logits_to_probs(logits, 0.1)[0, 1] > logits_to_probs(logits, 1.0)[0, 1]


def test_sampling_uses_only_the_generator():
    logits = torch.randn(64, 100)
    a = sample(logits, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(123)  # global state must not matter
    b = sample(logits, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_samples_respect_top_k():
    logits = torch.randn(1, 50).expand(2000, 50)
    tokens = sample(logits, top_k=3, generator=torch.Generator().manual_seed(0))
    assert set(tokens.tolist()) <= set(torch.topk(logits[0], 3).indices.tolist())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(temperature=-1.0, top_k=0, top_p=1.0), "temperature"),
        (dict(temperature=1.0, top_k=-2, top_p=1.0), "top_k"),
        (dict(temperature=1.0, top_k=0, top_p=0.0), "top_p"),
        (dict(temperature=1.0, top_k=0, top_p=1.5), "top_p"),
        (dict(temperature=float("nan"), top_k=0, top_p=1.0), "temperature"),
    ],
)
def test_bad_sampling_args_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        check_sampling_args(**kwargs)
