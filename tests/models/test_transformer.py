import pytest
import torch
from conftest import token_model_config

from mmgen.models.transformer import (
    ARTransformer,
    TransformerConfig,
    transformer_config_from_preset,
)
from mmgen.sequence import condition_and_groups_layout, grid_positions

T = 4  # condition rows in these tests
K = 10  # codes


def tiny(**overrides):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ARTransformer(token_model_config(50, K, **overrides))
        torch.nn.init.normal_(model.head.proj.weight, std=0.5)
    return model


def raster_layout(text_length, grid, *, flat_positions=False):
    n = grid[0] * grid[1]
    return condition_and_groups_layout(
        text_length, [1] * n, grid_positions(grid, text_length), flat_positions=flat_positions
    )


def random_rows(layout, batch=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    text = torch.randint(0, 50, (batch, layout.text_length), generator=g)
    codes = torch.randint(0, K + 1, (batch, layout.length - layout.text_length), generator=g)
    return text, codes


def test_forward_gives_hidden_states_and_the_head_gives_logits():
    model = tiny()
    layout = raster_layout(T, (3, 3))
    text, codes = random_rows(layout, 2)
    hidden = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
    assert hidden.shape == (2, 13, 32)
    assert model.head(hidden[:, T:]).shape == (2, 9, K)
    targets = torch.randint(0, K, (2, 9))
    loss = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes,
                 targets=targets)  # fmt: skip
    expected = torch.nn.functional.cross_entropy(
        model.head(hidden[:, T:]).flatten(0, 1), targets.flatten()
    )
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("rope", ["1d", "2d", "3d"])
def test_future_groups_do_not_change_earlier_outputs(rope):
    """Group-causality: editing rows of group g leaves rows of groups < g unchanged."""
    model = tiny(rope=rope)
    layout = raster_layout(T, (3, 3), flat_positions=rope == "1d")
    text, codes = random_rows(layout)
    edited = codes.clone()
    edited[0, 4:] = (edited[0, 4:] + 1) % K
    a = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
    b = model(layout.positions, layout.kv_end, condition_ids=text, inputs=edited)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_text_prefix_is_bidirectional():
    model = tiny()
    layout = raster_layout(T, (2, 2))
    text, codes = random_rows(layout)
    edited = text.clone()
    edited[0, 3] = (edited[0, 3] + 1) % 50
    a = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
    b = model(layout.positions, layout.kv_end, condition_ids=edited, inputs=codes)
    assert not torch.allclose(a[:, 0], b[:, 0])  # first text token sees the last one


def chunked(model, layout, text, codes, bounds, caches):
    out = []
    for start, end in bounds:
        kwargs = {"inputs": codes[:, start - T : end - T]} if start >= T else {
            "condition_ids": text}  # fmt: skip
        out.append(model(layout.positions[start:end], layout.kv_end[start:end], caches=caches,
                         start=start, **kwargs))  # fmt: skip
    return torch.cat(out, 1)


def test_cached_chunks_equal_full_forward():
    model = tiny(num_kv_heads=1)
    layout = raster_layout(T, (2, 3))
    text, codes = random_rows(layout, 2)
    full = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
    caches = model.make_caches(2, layout.length)
    got = chunked(model, layout, text, codes, [(0, 4), (4, 5), (5, 8), (8, 10)], caches)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)


def test_cache_overflow_is_an_error():
    model = tiny()
    layout = raster_layout(T, (2, 2))
    caches = model.make_caches(1, 4)
    text, codes = random_rows(layout)
    with pytest.raises(ValueError, match="KV cache overflow"):
        model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes, caches=caches)


def test_config_validation_names_the_field():
    io = dict(condition_vocab_size=10, input={"kind": "token", "num_codes": 4},
              head={"kind": "categorical", "num_codes": 4})  # fmt: skip
    with pytest.raises(ValueError, match="num_heads"):
        TransformerConfig(**io, dim=30, num_heads=4)
    with pytest.raises(ValueError, match="rope"):
        TransformerConfig(**io, rope="5d")
    with pytest.raises(ValueError, match="num_kv_heads"):
        TransformerConfig(**io, num_heads=8, num_kv_heads=3)
    with pytest.raises(RuntimeError, match="xformers"):
        TransformerConfig(**io, attention_backend="xformers")
    with pytest.raises(ValueError, match="unknown preset"):
        transformer_config_from_preset("huge", **io)
    with pytest.raises(ValueError, match="head.kind: unknown 'softmax'"):
        ARTransformer(TransformerConfig(**{**io, "head": {"kind": "softmax", "num_codes": 4}}))
    with pytest.raises(ValueError, match="input .token.*num_code"):
        ARTransformer(TransformerConfig(**{**io, "input": {"kind": "token", "num_code": 4}}))


def test_set_attention_backend_explicit_failure():
    model = tiny()
    with pytest.raises(RuntimeError, match="xformers"):
        model.set_attention_backend("xformers")
    assert model.config.attention_backend == "sdpa"
    model.set_attention_backend("flex")
    assert model.config.attention_backend == "flex"


@pytest.mark.parametrize("backend", ["triton", "flex"])
def test_attention_backends_give_the_sdpa_model_outputs(backend):
    """The whole model, full forward and cached chunks (decode rows against the cache), with
    each backend; head dim 16 so that the Triton kernel (interpreter on CPU) takes it."""
    model = tiny(dim=64, num_heads=4, num_kv_heads=2)
    layout = raster_layout(T, (4, 4))
    text, codes = random_rows(layout, 2)
    with torch.no_grad():
        reference = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
        model.set_attention_backend(backend)
        full = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
        caches = model.make_caches(2, layout.length)
        got = chunked(model, layout, text, codes, [(0, 4), (4, 5), (5, 13), (13, 20)], caches)
    torch.testing.assert_close(full, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got, reference, atol=1e-5, rtol=1e-5)


def test_qk_norm_keeps_the_fused_kernel_under_autocast():
    # q and k arrive in bf16 under autocast while norm weights stay float32: without the cast
    # torch warns "Mismatch dtype between input and weight" and runs an unfused kernel
    import warnings

    model = ARTransformer(token_model_config(32, 32, dim=32, num_layers=1, num_heads=2,
                                             rope="1d", qk_norm=True))  # fmt: skip
    ids = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(8)[:, None].expand(8, 3).contiguous()
    with warnings.catch_warnings(record=True) as caught, torch.autocast("cpu", torch.bfloat16):
        warnings.simplefilter("always")
        out = model(positions, None, inputs=ids)
    assert not [w for w in caught if "Mismatch dtype" in str(w.message)]
    assert torch.isfinite(out).all()
    assert "blocks.0.attn.q_norm.weight" in model.state_dict()  # same keys as nn.RMSNorm


def test_a_flexrope_bias_reaches_every_layer_and_works_against_the_cache():
    """FlexRoPE's frame-distance decay as ``attention_bias``: slope 0 is plain RoPE, a slope
    changes later rows only, and cached chunks with the bias's rows [start, end) x keys
    [0, end) equal the full forward."""
    from mmgen.models.rope import flexrope_bias

    model = tiny()
    layout = raster_layout(T, (2, 3))
    text, codes = random_rows(layout, 2)
    frames = layout.group_ids  # one "frame" per group here
    plain = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes)
    zero = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes,
                 attention_bias=flexrope_bias(frames, frames, 0.0))  # fmt: skip
    torch.testing.assert_close(zero, plain, atol=1e-6, rtol=0)
    bias = flexrope_bias(frames, frames, 0.7)  # (L, L)
    decayed = model(layout.positions, layout.kv_end, condition_ids=text, inputs=codes,
                    attention_bias=bias)  # fmt: skip
    assert torch.allclose(decayed[:, :T], plain[:, :T], atol=1e-6)  # one group: no distance
    assert not torch.allclose(decayed[:, T:], plain[:, T:], atol=1e-3)
    caches = model.make_caches(2, layout.length)
    rows = []
    for a, b in [(0, T), (T, T + 1), (T + 1, T + 4), (T + 4, layout.length)]:
        chunk = dict(condition_ids=text) if a == 0 else dict(inputs=codes[:, a - T : b - T])
        if a == 0:
            chunk["inputs"] = None
        rows.append(model(layout.positions[a:b], layout.kv_end[a:b], caches=caches, start=a,
                          attention_bias=bias[a:b, :b], **chunk))  # fmt: skip
    torch.testing.assert_close(torch.cat(rows, 1), decayed, atol=1e-5, rtol=1e-5)
