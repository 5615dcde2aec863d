"""pipe.enable_compile(): a static-shape compiled decode step gives the eager loop's images,
compiles once per batch shape and reuses its caches."""

import torch
from conftest import make_tiny_pipeline
from torch._dynamo.utils import counters

from mmgen.models.kv_cache import KVCache

PROMPTS = ["a red circle", "two blue squares"]


def generate(pipe, prompts=PROMPTS, seed=0):
    return pipe(prompts, num_images_per_prompt=2, guidance_scale=2.0, output_type="pt",
                generator=torch.Generator().manual_seed(seed)).images  # fmt: skip


def test_compiled_decoding_matches_eager_and_compiles_once():
    torch._dynamo.reset()
    counters.clear()
    pipe = make_tiny_pipeline()
    eager = generate(pipe)
    assert pipe.enable_compile() is pipe
    compiled = generate(pipe)
    torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    again = generate(pipe, ["a green triangle", ""], seed=1)  # same shapes: no new graph
    torch.testing.assert_close(again, generate(pipe.disable_compile(), ["a green triangle", ""], 1),
                               atol=1e-5, rtol=0)  # fmt: skip
    assert counters["stats"]["unique_graphs"] == 1
    pipe.enable_compile()
    caches = pipe.decoder.caches_for(8, pipe.layout.length)
    assert pipe.decoder.caches_for(8, pipe.layout.length) is caches  # kept across calls
    assert pipe.decoder.caches_for(4, pipe.layout.length) is not caches  # new batch shape


def test_static_cache_update_writes_in_place_and_returns_whole_buffers():
    cache = KVCache(1, 2, 6, 4)
    k = torch.randn(1, 2, 1, 4)
    full_k, full_v = cache.update(torch.tensor(3), k, -k)
    assert full_k.shape == (1, 2, 6, 4) and full_k.data_ptr() == cache.k.data_ptr()
    assert torch.equal(cache.k[:, :, 3:4], k) and torch.equal(cache.v[:, :, 3:4], -k)
    assert cache.k[:, :, :3].abs().sum() == 0 and cache.k[:, :, 4:].abs().sum() == 0


def test_compiled_decoding_through_the_triton_custom_ops():
    # the Triton kernels (interpreter on CPU) are custom ops: torch.compile calls them opaquely
    torch._dynamo.reset()
    pipe = make_tiny_pipeline()

    def one_image():  # the interpreter is slow: one prompt, one image (two rows with CFG)
        return pipe(["a red circle"], guidance_scale=2.0, output_type="pt",
                    generator=torch.Generator().manual_seed(0)).images  # fmt: skip

    eager_sdpa = one_image()
    pipe.transformer.set_attention_backend("triton")
    eager_triton = one_image()
    pipe.enable_compile()
    compiled_triton = one_image()
    torch.testing.assert_close(eager_triton, eager_sdpa, atol=1e-4, rtol=0)
    torch.testing.assert_close(compiled_triton, eager_triton, atol=1e-5, rtol=0)


def test_compiled_forward_and_backward_through_the_triton_custom_ops():
    from mmgen.kernels import group_causal_attention

    torch._dynamo.reset()
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 40, 16, generator=g) for _ in range(3))
    kv_end = torch.arange(40, dtype=torch.int32) // 8 * 8 + 8  # frame-causal, frames of 8
    grad = torch.randn(2, 4, 40, 16, generator=g)

    def loss_and_grads(attention):
        leaves = [x.clone().requires_grad_() for x in (q, k[:, :2], v[:, :2])]  # GQA 4:2
        (attention(*leaves, kv_end) * grad).sum().backward()
        return [x.grad for x in leaves]

    eager = loss_and_grads(group_causal_attention)
    compiled = loss_and_grads(torch.compile(group_causal_attention, fullgraph=True))
    for mine, theirs in zip(compiled, eager):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=0)


def test_compiled_decoding_matches_eager_for_multi_row_groups():
    """Next-scale (groups of 1, 4, 16, 64 rows: one graph per group size; windowed: 1, 1, 4, 16
    rows of 4 codes) and token-shuffle (one row of s^2 codes per group) through the compiled
    step."""
    from conftest import ORDER_SPECS

    for order in ("next_scale", "next_scale_window", "token_shuffle"):
        torch._dynamo.reset()
        counters.clear()
        pipe = make_tiny_pipeline(order=ORDER_SPECS[order])
        eager = generate(pipe)
        compiled = generate(pipe.enable_compile())
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
        sizes = {end - start for start, end in pipe.layout.image_groups}
        assert counters["stats"]["unique_graphs"] == len(sizes), order
