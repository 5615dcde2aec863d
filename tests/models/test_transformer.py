import pytest
import torch

from mmgen.models.transformer import (
    ARTransformer,
    TransformerConfig,
    transformer_config_from_preset,
)
from mmgen.sequence import text_image_layout


def tiny(**overrides):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        config = transformer_config_from_preset("debug", vocab_size=50, num_codes=10, **overrides)
        model = ARTransformer(config)
        torch.nn.init.normal_(model.head.weight, std=0.5)
    return model


def test_forward_shapes_and_logits_from():
    model = tiny()
    layout = text_image_layout(4, (3, 3))
    ids = torch.randint(0, 50, (2, layout.length))
    hidden = model(ids, layout.positions, layout.kv_end)
    assert hidden.shape == (2, 13, 32)
    logits = model(ids, layout.positions, layout.kv_end, logits_from=4)
    assert logits.shape == (2, 9, 10)
    torch.testing.assert_close(logits, model.head(hidden[:, 4:]))


@pytest.mark.parametrize("rope", ["1d", "2d", "3d"])
def test_future_groups_do_not_change_earlier_outputs(rope):
    """Group-causality: editing tokens of group g leaves rows of groups < g unchanged."""
    model = tiny(rope=rope)
    layout = text_image_layout(4, (3, 3), flat_positions=rope == "1d")
    ids = torch.randint(0, 50, (1, layout.length))
    edited = ids.clone()
    edited[0, 8:] = (edited[0, 8:] + 1) % 50
    a = model(ids, layout.positions, layout.kv_end)
    b = model(edited, layout.positions, layout.kv_end)
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])


def test_text_prefix_is_bidirectional():
    model = tiny()
    layout = text_image_layout(4, (2, 2))
    ids = torch.randint(0, 50, (1, layout.length))
    edited = ids.clone()
    edited[0, 3] = (edited[0, 3] + 1) % 50
    a = model(ids, layout.positions, layout.kv_end)
    b = model(edited, layout.positions, layout.kv_end)
    assert not torch.allclose(a[:, 0], b[:, 0])  # first text token sees the last one


def test_cached_chunks_equal_full_forward():
    model = tiny(num_kv_heads=1)
    layout = text_image_layout(4, (2, 3))
    ids = torch.randint(0, 50, (2, layout.length))
    full = model(ids, layout.positions, layout.kv_end)
    caches = model.make_caches(2, layout.length)
    chunks = []
    for start, end in [(0, 4), (4, 5), (5, 8), (8, 10)]:
        chunks.append(
            model(
                ids[:, start:end],
                layout.positions[start:end],
                layout.kv_end[start:end],
                caches=caches,
                start=start,
            )
        )
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=1e-5)


def test_cache_overflow_is_an_error():
    model = tiny()
    layout = text_image_layout(4, (2, 2))
    caches = model.make_caches(1, 4)
    ids = torch.zeros(1, layout.length, dtype=torch.long)
    with pytest.raises(ValueError, match="KV cache overflow"):
        model(ids, layout.positions, layout.kv_end, caches=caches)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_heads"):
        TransformerConfig(vocab_size=10, num_codes=4, dim=30, num_heads=4)
    with pytest.raises(ValueError, match="rope"):
        TransformerConfig(vocab_size=10, num_codes=4, rope="5d")
    with pytest.raises(ValueError, match="num_kv_heads"):
        TransformerConfig(vocab_size=10, num_codes=4, num_heads=8, num_kv_heads=3)
    with pytest.raises(RuntimeError, match="xformers"):
        TransformerConfig(vocab_size=10, num_codes=4, attention_backend="xformers")
    with pytest.raises(ValueError, match="unknown preset"):
        transformer_config_from_preset("huge", vocab_size=10, num_codes=4)


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
    layout = text_image_layout(5, (4, 4))
    ids = torch.randint(0, 50, (2, layout.length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(ids, layout.positions, layout.kv_end)
        model.set_attention_backend(backend)
        full = model(ids, layout.positions, layout.kv_end)
        caches = model.make_caches(2, layout.length)
        chunks = [
            model(ids[:, a:b], layout.positions[a:b], layout.kv_end[a:b], caches=caches, start=a)
            for a, b in [(0, 5), (5, 6), (6, 13), (13, 21)]
        ]
    torch.testing.assert_close(full, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat(chunks, 1), reference, atol=1e-5, rtol=1e-5)


def test_qk_norm_keeps_the_fused_kernel_under_autocast():
    # q and k arrive in bf16 under autocast while norm weights stay float32: without the cast
    # torch warns "Mismatch dtype between input and weight" and runs an unfused kernel
    import warnings

    from mmgen.models.transformer import ARTransformer, TransformerConfig

    model = ARTransformer(TransformerConfig(vocab_size=32, num_codes=32, dim=32, num_layers=1,
                                            num_heads=2, rope="1d", qk_norm=True))  # fmt: skip
    ids = torch.randint(0, 32, (2, 8), generator=torch.Generator().manual_seed(0))
    positions = torch.arange(8)[:, None].expand(8, 3).contiguous()
    with warnings.catch_warnings(record=True) as caught, torch.autocast("cpu", torch.bfloat16):
        warnings.simplefilter("always")
        out = model(ids, positions, None)
    assert not [w for w in caught if "Mismatch dtype" in str(w.message)]
    assert torch.isfinite(out).all()
    assert "blocks.0.attn.q_norm.weight" in model.state_dict()  # same keys as nn.RMSNorm
