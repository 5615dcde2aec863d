import pytest
import torch
from mmgen.kernels import group_causal_attention_sdpa, kv_end_mask

from mmgen.models.attention import (
    check_attention_backend,
    group_causal_attention,
    kv_end_from_group_ids,
)


def reference_attention(q, k, v, group_q, group_k, bias=None):
    """fp64 attention with the group rule: query sees key iff group[key] <= group[query]."""
    q, k, v = q.double(), k.double(), v.double()
    if k.shape[1] != q.shape[1]:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    allowed = group_k[None, :] <= group_q[:, None]
    if bias is not None:
        scores = scores + bias.double()
    scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(-1) @ v


def test_kv_end_from_group_ids_is_one_past_each_group():
    group_ids = torch.tensor([0, 0, 0, 1, 2, 2, 3])
    assert kv_end_from_group_ids(group_ids).tolist() == [3, 3, 3, 4, 6, 6, 7]


def test_kv_end_rejects_decreasing_group_ids():
    with pytest.raises(ValueError, match="non-decreasing"):
        kv_end_from_group_ids(torch.tensor([0, 1, 0]))


def test_kv_end_mask_matches_group_rule():
    group_ids = torch.tensor([0, 0, 1, 2, 2, 2, 3])
    mask = kv_end_mask(kv_end_from_group_ids(group_ids), 7)
    expected = group_ids[None, :] <= group_ids[:, None]
    assert torch.equal(mask, expected)


@pytest.mark.parametrize(
    "group_ids",
    [
        torch.arange(12),  # plain causal (next-token): takes the is_causal path
        torch.tensor([0] * 5 + list(range(1, 8))),  # text prefix + tokens
        torch.tensor([0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]),  # scales 1, 4, 7
        torch.arange(12) // 4,  # frames / token-shuffle groups of 4
    ],
)
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_sdpa_backend_matches_fp64_reference(group_ids, kv_heads):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 12, 8, generator=g)
    k = torch.randn(2, kv_heads, 12, 8, generator=g)
    v = torch.randn(2, kv_heads, 12, 8, generator=g)
    out = group_causal_attention(q, k, v, kv_end_from_group_ids(group_ids))
    ref = reference_attention(q, k, v, group_ids, group_ids)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_bias_is_added_on_allowed_pairs_only():
    g = torch.Generator().manual_seed(1)
    group_ids = torch.arange(8) // 2
    q, k, v = (torch.randn(1, 2, 8, 4, generator=g) for _ in range(3))
    frames = group_ids.float()
    bias = -0.5 * (frames[:, None] - frames[None, :])  # FlexRoPE-like decay
    out = group_causal_attention_sdpa(q, k, v, kv_end_from_group_ids(group_ids), bias)
    ref = reference_attention(q, k, v, group_ids, group_ids, bias)
    torch.testing.assert_close(out.double(), ref, atol=1e-5, rtol=1e-5)


def test_decode_rows_against_longer_key_prefix():
    """A chunk of queries at absolute rows [6, 8) sees its own prefix of 8 cached keys."""
    g = torch.Generator().manual_seed(2)
    group_ids = torch.tensor([0, 0, 0, 1, 2, 3, 4, 4])
    q_full, k, v = (torch.randn(1, 2, 8, 4, generator=g) for _ in range(3))
    kv_end = kv_end_from_group_ids(group_ids)
    full = group_causal_attention(q_full, k, v, kv_end)
    chunk = group_causal_attention(q_full[:, :, 6:], k, v, kv_end[6:])
    torch.testing.assert_close(chunk, full[:, :, 6:])


def test_unknown_backend_is_a_value_error_and_missing_one_is_explicit():
    with pytest.raises(ValueError, match="unknown attention_backend 'cuda'"):
        check_attention_backend("cuda")
    for name in ("sdpa", "flex", "triton"):  # installed here
        assert check_attention_backend(name) == name
    # xformers is an optional extra, not installed in CI
    with pytest.raises(RuntimeError, match=r"'xformers' needs xformers.*mmgen\[xformers\]"):
        check_attention_backend("xformers")


@pytest.mark.parametrize("backend", ["sdpa", "triton", "flex"])
def test_kv_end_none_is_plain_causal_bottom_right_aligned(backend):
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 4, 12, 16, generator=g) for _ in range(3))
    full = group_causal_attention(q, k, v, None, backend=backend)
    torch.testing.assert_close(full, reference_attention(q, k, v, torch.arange(12),
                                                         torch.arange(12)).float())  # fmt: skip
    # 3 new rows against 12 keys: the last row sees every key
    chunk = group_causal_attention(q[:, :, -3:], k, v, None, backend=backend)
    torch.testing.assert_close(chunk, full[:, :, -3:])


def test_compiled_model_has_no_graph_breaks_for_any_mask():
    # reading kv_end's values (is it plain causal?) would break the graph at every layer
    from conftest import token_model_config
    from torch._dynamo.utils import counters

    from mmgen.models.transformer import ARTransformer

    model = ARTransformer(token_model_config(64, 63, dim=32, num_layers=3, num_heads=2,
                                             rope="1d"))  # fmt: skip
    ids = torch.randint(0, 64, (2, 16), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(16)[:, None].expand(16, 3).contiguous()
    for kv_end in (None, kv_end_from_group_ids(torch.arange(16) // 4)):
        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(model)(positions, kv_end, inputs=ids)
        assert not counters["graph_break"], dict(counters["graph_break"])
        eager = model(positions, kv_end, inputs=ids)
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    causal = kv_end_from_group_ids(torch.arange(16))
    torch.testing.assert_close(model(positions, None, inputs=ids),
                               model(positions, causal, inputs=ids))  # fmt: skip
