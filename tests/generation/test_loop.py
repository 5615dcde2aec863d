import pytest
import torch

from mmgen.generation.loop import SamplingConfig, generate_codes
from tests.conftest import make_tiny_pipeline


def codes(pipe, prompts, seed=0, use_cache=True, **sampling):
    text = pipe.text_tokenizer(prompts)
    uncond = pipe.text_tokenizer([""] * len(prompts))
    return generate_codes(
        pipe.transformer,
        pipe.layout,
        pipe.space,
        text,
        uncond,
        SamplingConfig(**sampling),
        generator=torch.Generator().manual_seed(seed),
        use_cache=use_cache,
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


def test_greedy_generation_matches_teacher_forcing_argmax(tiny_pipeline):
    """With temperature 0 each sampled code is the argmax of a teacher-forced forward pass."""
    from mmgen.sequence import build_training_batch

    pipe = tiny_pipeline
    generated = codes(pipe, ["a green triangle"], temperature=0)
    text = pipe.text_tokenizer(["a green triangle"])
    input_ids, _ = build_training_batch(text, generated, pipe.space)
    T = pipe.layout.text_length
    logits = pipe.transformer(input_ids, pipe.layout.positions, pipe.layout.kv_end, logits_from=T)
    assert torch.equal(logits.argmax(-1), generated)


def test_pipeline_use_cache_false_recomputes_the_prefix_and_matches_the_cached_images():
    pipe = make_tiny_pipeline()
    lengths = []  # the sequence length of every backbone call
    pipe.transformer.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))

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
