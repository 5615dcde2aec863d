"""The true-prefix eval: the first k groups are the tokenizer's codes of the prompt's rendering,
the rest is generated, and k = every group is the tokenizer's reconstruction."""

import pytest
import torch

from mmgen.data.shapes import render, sample_prompt
from mmgen.eval.prefix_eval import (
    evaluate_teacher_forced,
    evaluate_true_prefix,
    sequence_log_likelihood,
    teacher_forced_tokens,
    true_prefix_samples,
)
from mmgen.pipelines.outputs import image_to_tensor
from mmgen.pipelines.text_to_image import TextToImagePipeline, prompt_ids


@pytest.fixture(scope="module")
def scale_pipe():
    pipe = TextToImagePipeline.from_pretrained("shapes-t2i-scale")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def rendered(num: int, seed: int = 0):
    draw = torch.Generator().manual_seed(seed)
    prompts = [sample_prompt(draw) for _ in range(num)]
    images = [image_to_tensor(render(p, draw)) for p in prompts]
    return prompts, torch.stack(images)  # (B, 3, 64, 64) in [-1, 1]


def test_generation_keeps_the_true_groups_and_samples_the_rest(scale_pipe):
    prompts, images = rendered(3)
    tokens, samples, ends = true_prefix_samples(scale_pipe, images)
    order = scale_pipe.order
    assert len(ends) == order.num_groups and ends[-1] == samples.shape[1]
    cond, uncond = prompt_ids(scale_pipe.text_tokenizer, [p.text for p in prompts], None, 1)
    k = 2
    codes_given = sum(p * p for p in order.scales[:k])
    out = scale_pipe.generate_tokens(
        cond, uncond, scale_pipe.resolve_sampling(), generator=torch.Generator().manual_seed(0),
        use_cache=True, show_progress=False, given=samples[:, : ends[k - 1]],
    )  # fmt: skip
    assert torch.equal(out[:, :codes_given], tokens[:, :codes_given])
    assert not torch.equal(out[:, codes_given:], tokens[:, codes_given:])


def test_every_group_true_is_the_reconstruction(scale_pipe):
    num_groups = scale_pipe.order.num_groups
    rates = evaluate_true_prefix(scale_pipe, [num_groups], num_prompts=8, seed=0, batch_size=4)
    assert list(rates) == [num_groups]
    assert rates[num_groups] >= 7 / 8  # the multi-scale VQ reconstructs shapes (0.99+ on 400)


def test_group_counts_outside_the_order_are_rejected(scale_pipe):
    with pytest.raises(ValueError, match="outside 0.."):
        evaluate_true_prefix(scale_pipe, [scale_pipe.order.num_groups + 1], num_prompts=1)


@pytest.mark.parametrize("name", ["shapes-t2i-shuffle", "shapes-t2i-scale"])
def test_teacher_forcing_on_the_models_own_greedy_tokens_gives_them_back(name):
    # multi-token groups (2x2 windows; whole scales): every group must see exactly the rows
    # generation fed it, and the head's samples land where the order takes them
    pipe = TextToImagePipeline.from_pretrained(name)
    prompts, _ = rendered(3, seed=1)
    cond, uncond = prompt_ids(pipe.text_tokenizer, [p.text for p in prompts], None, 1)
    greedy = pipe.resolve_sampling(temperature=0.0)
    tokens = pipe.generate_tokens(cond, uncond, greedy, generator=None, use_cache=True,
                                  show_progress=False)  # fmt: skip
    again = teacher_forced_tokens(pipe, tokens, cond, uncond, greedy, None)
    assert torch.equal(again, tokens)


def test_teacher_forced_sampling_on_rendered_prompts_mostly_passes(scale_pipe):
    rate = evaluate_teacher_forced(scale_pipe, num_prompts=8, seed=0, batch_size=4)
    assert rate >= 6 / 8  # the true context leaves little to get wrong (0.97 on 200, shuffle)


def test_the_log_likelihood_is_the_training_loss_summed(scale_pipe):
    # the same rows, targets and head as training's loss: mean cross-entropy x codes scored
    prompts, images = rendered(4, seed=2)
    tokens, _, _ = true_prefix_samples(scale_pipe, images)
    cond, _ = prompt_ids(scale_pipe.text_tokenizer, [p.text for p in prompts], None, 1)
    log_likelihood = sequence_log_likelihood(scale_pipe, tokens, cond)  # (B,)
    order, model = scale_pipe.order, scale_pipe.transformer
    inputs, targets = order.training_inputs(tokens)
    with torch.no_grad():
        loss = model(order.layout.positions, order.layout.kv_end, condition_ids=cond,
                     inputs=inputs, targets=targets)  # fmt: skip
    assert log_likelihood.shape == (4,)
    torch.testing.assert_close(-log_likelihood.mean() / tokens.shape[1], loss, rtol=1e-4, atol=0)
