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
