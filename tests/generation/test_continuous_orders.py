"""Generation over continuous latents (the tiny KL tokenizer): per-token flow head in raster
order and FlowAR's continuous next-scale with the group flow head, through the one loop."""

import pytest
import torch
from conftest import CONTINUOUS_ORDER_SPECS, make_tiny_pipeline

from mmgen.generation.loop import SamplingConfig, generate_codes

ORDERS = sorted(CONTINUOUS_ORDER_SPECS)


def pipeline(order: str):
    return make_tiny_pipeline(order=CONTINUOUS_ORDER_SPECS[order], continuous=True)


def latents(pipe, prompts, seed=0, use_cache=True, callback=None, **sampling):
    sampling.setdefault("num_inference_steps", 2)
    return generate_codes(
        pipe.transformer,
        pipe.order,
        pipe.text_tokenizer(prompts),
        pipe.text_tokenizer([""] * len(prompts)),
        SamplingConfig(**sampling),
        generator=torch.Generator().manual_seed(seed),
        use_cache=use_cache,
        callback=callback,
    )


@pytest.mark.parametrize("order", ORDERS)
def test_cached_generation_matches_full_recompute(order):
    pipe = pipeline(order)
    cached = latents(pipe, ["a red circle", "two blue squares"], guidance_scale=3.0)
    recomputed = latents(pipe, ["a red circle", "two blue squares"], guidance_scale=3.0,
                         use_cache=False)  # fmt: skip
    assert cached.shape == (2, 64, 4) and cached.std() > 0.1
    torch.testing.assert_close(cached, recomputed, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("order", ORDERS)
def test_one_backbone_call_per_group_and_seeds_reproduce(order):
    pipe = pipeline(order)
    rows = []  # rows of every backbone call
    pipe.transformer.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[-2]))
    steps = []
    a = latents(pipe, ["a red circle"], seed=1, guidance_scale=2.0,
                callback=lambda step, total, state: steps.append(step))  # fmt: skip
    groups = pipe.layout.image_groups
    assert rows == [pipe.layout.text_length] + [end - start for start, end in groups]
    counts = {"continuous_next_token": 64, "continuous_next_scale": 4}
    assert len(groups) == counts.get(order, 4)
    assert steps == list(range(len(groups)))
    assert torch.equal(a, latents(pipe, ["a red circle"], seed=1, guidance_scale=2.0))
    assert not torch.equal(a, latents(pipe, ["a red circle"], seed=2, guidance_scale=2.0))


def test_guidance_that_is_one_at_every_group_equals_the_unguided_path():
    pipe = pipeline("continuous_next_scale")
    prompts = ["a red circle", "a blue square"]
    batch_rows = []  # the backbone's batch at every call

    def record_batch(module, args, kwargs):
        rows = kwargs["condition_ids"] if kwargs.get("inputs") is None else kwargs["inputs"]
        batch_rows.append(rows.shape[0])

    pipe.transformer.register_forward_pre_hook(record_batch, with_kwargs=True)
    unguided = latents(pipe, prompts, guidance_scale=1.0)
    cut_at_zero = latents(pipe, prompts, guidance_scale=4.0, guidance_schedule="cutoff",
                          guidance_cutoff=0)  # fmt: skip
    assert torch.equal(unguided, cut_at_zero)
    assert set(batch_rows) == {2}  # no unconditional rows run when no group mixes them
    assert not torch.allclose(unguided, latents(pipe, prompts, guidance_scale=4.0))
    assert set(batch_rows[-5:]) == {4}


@pytest.mark.parametrize("order", ORDERS)
def test_a_flow_head_at_guidance_one_samples_from_the_conditional_rows_alone(order):
    model = pipeline(order).transformer
    head = model.head
    cond = torch.randn(2, 4, model.config.dim)  # (B, n, D) hidden states of one group
    uncond = torch.randn_like(cond)
    sampling = SamplingConfig(num_inference_steps=3)

    def sample(outputs, scale):
        return head.sample(outputs, 2, scale, sampling, torch.Generator().manual_seed(0))

    doubled = torch.cat([cond, uncond])  # (2B, n, D): conditional rows first
    assert torch.equal(sample(doubled, 1.0), sample(cond, 1.0))
    assert not torch.allclose(sample(doubled, 3.0), sample(cond, 1.0))


def test_more_euler_steps_change_the_sample_and_temperature_zero_is_deterministic():
    pipe = pipeline("continuous_next_scale")
    two = latents(pipe, ["a red circle"], num_inference_steps=2)
    eight = latents(pipe, ["a red circle"], num_inference_steps=8)
    assert not torch.allclose(two, eight)
    cold = [latents(pipe, ["a red circle"], seed=s, temperature=0.0) for s in (1, 2)]
    assert torch.equal(cold[0], cold[1])  # no starting noise: the seed no longer matters


def test_the_pipeline_returns_latents_or_decodes_them():
    pipe = pipeline("continuous_next_scale")
    kwargs = dict(num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    out = pipe(["a red circle", "a blue square"], output_type="latent", **kwargs)
    assert out.images.shape == (2, 64, 4)  # (B, N, C) latents, raster order
    kwargs["generator"] = torch.Generator().manual_seed(0)
    images = pipe(["a red circle", "a blue square"], output_type="pt", **kwargs).images
    assert images.shape == (2, 3, 16, 16)
    grid = out.images.transpose(1, 2).reshape(2, 4, 8, 8)  # (B, C, h, w): what decode takes
    expected = (pipe.vq.decode(grid) + 1) / 2
    torch.testing.assert_close(images, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe("a red circle", num_inference_steps=0)


def test_each_scale_is_fed_the_scale_generated_before_it_brought_to_its_side():
    import torch.nn.functional as F

    pipe = pipeline("continuous_next_scale")
    fed, generated = [], []
    pipe.transformer.register_forward_pre_hook(
        lambda m, args, kwargs: fed.append(kwargs.get("inputs")), with_kwargs=True
    )
    latents(pipe, ["a red circle"], callback=lambda step, total, state: generated.append(
        state.extra["previous"].clone()))  # fmt: skip
    fed = [x for x in fed if x is not None]  # the prefill feeds the prompt only
    assert [x.shape[1] for x in fed] == [1, 4, 16, 64]
    for g in range(1, 4):
        side = pipe.order.scales[g]
        up = F.interpolate(generated[g - 1], size=(side, side), mode="bilinear")
        torch.testing.assert_close(fed[g][..., :4], up.flatten(2).transpose(1, 2))
    final = latents(pipe, ["a red circle"])
    torch.testing.assert_close(final, generated[-1].flatten(2).transpose(1, 2))
