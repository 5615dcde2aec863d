import pytest
import torch
from conftest import ORDER_SPECS, make_tiny_pipeline

from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.models.heads import IGNORE_INDEX


def codes(pipe, prompts, seed=0, use_cache=True, callback=None, **sampling):
    text = pipe.text_tokenizer(prompts)
    uncond = pipe.text_tokenizer([""] * len(prompts))
    return generate_codes(
        pipe.transformer,
        pipe.order,
        text,
        uncond,
        SamplingConfig(**sampling),
        generator=torch.Generator().manual_seed(seed),
        use_cache=use_cache,
        callback=callback,
    )


@pytest.mark.parametrize("rope", ["1d", "2d"])
@pytest.mark.parametrize(
    "sampling",
    [dict(), dict(guidance_scale=3.0), dict(temperature=0.7, top_k=5, top_p=0.9)],
)
def test_cached_generation_matches_full_recompute(rope, sampling):
    pipe = make_tiny_pipeline(rope=rope)
    prompts = ["a red circle", "two blue squares"]
    cached = codes(pipe, prompts, use_cache=True, **sampling)
    recomputed = codes(pipe, prompts, use_cache=False, **sampling)
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize(
    "order",
    ["next_scale", "next_scale_window", "token_shuffle", "next_frequency", "next_frequency_window"],
)
@pytest.mark.parametrize("sampling", [dict(), dict(guidance_scale=3.0, top_k=5)])
def test_cached_generation_matches_full_recompute_with_multi_token_groups(order, sampling):
    pipe = make_tiny_pipeline(order=ORDER_SPECS[order])
    prompts = ["a red circle", "two blue squares"]
    cached = codes(pipe, prompts, use_cache=True, **sampling)
    recomputed = codes(pipe, prompts, use_cache=False, **sampling)
    assert torch.equal(cached, recomputed)


def test_same_seed_same_tokens_and_different_seed_differs(tiny_pipeline):
    a = codes(tiny_pipeline, ["a red circle"] * 2, seed=1)
    b = codes(tiny_pipeline, ["a red circle"] * 2, seed=1)
    c = codes(tiny_pipeline, ["a red circle"] * 2, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_guidance_scale_one_equals_the_unguided_path(tiny_pipeline):
    """Guidance with a schedule that is 1 at every group (the doubled batch is still run)
    gives exactly the tokens of the plain unguided call."""
    unguided = codes(tiny_pipeline, ["a red circle", "a blue square"], guidance_scale=1.0)
    doubled = codes(
        tiny_pipeline,
        ["a red circle", "a blue square"],
        guidance_scale=4.0,
        guidance_schedule="cutoff",
        guidance_cutoff=0,
    )
    assert torch.equal(unguided, doubled)
    guided = codes(tiny_pipeline, ["a red circle", "a blue square"], guidance_scale=4.0)
    assert not torch.equal(unguided, guided)


@pytest.mark.parametrize("order", sorted(ORDER_SPECS))
def test_greedy_generation_matches_teacher_forcing_argmax(order):
    """With temperature 0 each sampled code is the argmax of a teacher-forced forward pass
    over the generated codes (the order's training inputs), for one- and many-row groups."""
    pipe = make_tiny_pipeline(order=ORDER_SPECS[order])
    generated = codes(pipe, ["a green triangle", "one red square"], temperature=0)
    text = pipe.text_tokenizer(["a green triangle", "one red square"])
    inputs, targets = pipe.order.training_inputs(generated)
    layout = pipe.layout
    with torch.no_grad():
        hidden = pipe.transformer(layout.positions, layout.kv_end, condition_ids=text,
                                  inputs=inputs)  # fmt: skip
        logits = pipe.transformer.head(hidden[:, layout.text_length :])
    scored = targets != IGNORE_INDEX  # windowed next-scale pads rows holding one code
    assert torch.equal(logits.argmax(-1)[scored], targets[scored])
    assert targets[scored].unique().numel() > 1  # not a constant image


@pytest.mark.parametrize("order", sorted(ORDER_SPECS))
def test_one_backbone_call_per_group_after_the_prefill(order):
    pipe = make_tiny_pipeline(order=ORDER_SPECS[order])
    rows = []  # rows of every backbone call
    pipe.transformer.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[-2]))
    steps = []
    codes(pipe, ["a red circle"], guidance_scale=2.0,
          callback=lambda step, total, state: steps.append((step, total, state.done)))  # fmt: skip
    groups = pipe.layout.image_groups
    assert rows == [pipe.layout.text_length] + [end - start for start, end in groups]
    expected_groups = {"next_token": 64, "next_scale": 4, "next_scale_window": 4,
                       "token_shuffle": 16, "next_frequency": 4,
                       "next_frequency_window": 4}[order]  # fmt: skip
    assert len(groups) == expected_groups
    assert steps == [(g, len(groups), g + 1) for g in range(len(groups))]


def test_pipeline_use_cache_false_recomputes_the_prefix_and_matches_the_cached_images():
    pipe = make_tiny_pipeline()
    lengths = []  # the sequence length of every backbone call
    pipe.transformer.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[-2]))

    def images(use_cache):
        lengths.clear()
        out = pipe(["a red circle", "two blue squares"], guidance_scale=2.0, top_k=8,
                   use_cache=use_cache, output_type="pt",
                   generator=torch.Generator().manual_seed(3))  # fmt: skip
        return out.images, list(lengths)

    cached, cached_lengths = images(True)
    recomputed, recomputed_lengths = images(False)
    groups = pipe.layout.image_groups
    T = pipe.layout.text_length
    # cached: one prefill of the text, then one call per group on that group's rows only
    assert cached_lengths == [T] + [end - start for start, end in groups]
    # reference path: every group re-runs the whole prefix [0, end) with no prefill
    assert recomputed_lengths == [end for _, end in groups]
    assert torch.equal(cached, recomputed)


@pytest.mark.parametrize("order", ["next_scale", "token_shuffle"])
@pytest.mark.parametrize("backend", ["flex", "triton"])
def test_every_attention_backend_generates_the_sdpa_codes_for_multi_row_groups(order, backend):
    """Greedy codes with the flex and Triton (interpreter on CPU) backends equal SDPA's."""
    pipe = make_tiny_pipeline(order=ORDER_SPECS[order])
    reference = codes(pipe, ["a red circle"], guidance_scale=2.0, temperature=0)
    pipe.transformer.set_attention_backend(backend)
    assert torch.equal(codes(pipe, ["a red circle"], guidance_scale=2.0, temperature=0), reference)
