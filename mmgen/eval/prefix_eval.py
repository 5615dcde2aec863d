"""Where a text-to-image model's errors come from: ``shapes`` pass rates when the first k groups
of every image are the true ones (the tokenizer's codes of a rendering of the prompt) and the
model generates the rest. The gap between k and k + 1 true groups is what sampling group k
costs; k = number of groups is the tokenizer's reconstruction."""

from __future__ import annotations

import torch

from mmgen.data.shapes import render, sample_prompt
from mmgen.eval.shapes_verifier import verify
from mmgen.pipelines.outputs import image_to_tensor, to_output_type
from mmgen.pipelines.text_to_image import prompt_ids


def true_prefix_samples(pipe, images_B3HW: torch.Tensor):
    """Images in [-1, 1] -> their true flat tokens (B, N[, C]), what the head samples for
    every group of them (B, rows, ...), and the row count that ends each group (cumulative)."""
    order = pipe.order
    with torch.no_grad():
        encoded = pipe.vq.encode(images_B3HW.to(pipe.vq_device))
    tokens = order.token_layout.flatten(encoded).to(pipe.transformer.device)  # (B, N[, C])
    _, samples = order.training_inputs(tokens)  # the teacher-forcing targets = head samples
    groups = order.layout.image_groups
    sizes = [b - a for a, b in map(order.layout.sampled_rows, range(len(groups)))]
    return tokens, samples, torch.tensor(sizes).cumsum(0).tolist()


@torch.no_grad()
def evaluate_true_prefix(
    pipe,
    true_groups: list[int],
    *,
    num_prompts: int = 200,
    seed: int = 0,
    batch_size: int = 50,
    **sampling,
) -> dict[int, float]:
    """Pass rate on ``num_prompts`` random prompts (``torch.Generator().manual_seed(seed)``
    draws the prompts and their renderings) for each count k in ``true_groups``: the first k
    groups given from the rendering, the rest sampled with the pipeline's defaults (overridden
    by ``sampling``), image i from ``torch.Generator().manual_seed(seed + 1 + i)``.

    Returns:
        ``{k: pass rate}``; k = the number of groups decodes the true tokens as they are.
    """
    num_groups = pipe.order.num_groups
    bad = [k for k in true_groups if not 0 <= k <= num_groups]
    if bad:
        raise ValueError(f"true group counts {bad} are outside 0..{num_groups}")
    draw = torch.Generator().manual_seed(seed)
    prompts, images = [], []
    for _ in range(num_prompts):
        prompt = sample_prompt(draw)
        prompts.append(prompt)
        images.append(image_to_tensor(render(prompt, draw)))  # (3, H, W) in [-1, 1]
    resolved = pipe.resolve_sampling(**sampling)
    passed = dict.fromkeys(true_groups, 0)
    for start in range(0, num_prompts, batch_size):
        batch = prompts[start : start + batch_size]
        true_tokens, samples, ends = true_prefix_samples(
            pipe, torch.stack(images[start : start + batch_size])
        )
        cond, uncond = prompt_ids(pipe.text_tokenizer, [p.text for p in batch], None, 1)
        for k in true_groups:
            if k == num_groups:
                tokens = true_tokens
            else:
                generators = [
                    torch.Generator().manual_seed(seed + 1 + i)
                    for i in range(start, start + len(batch))
                ]
                tokens = pipe.generate_tokens(
                    cond, uncond, resolved, generator=generators, use_cache=True,
                    show_progress=False, given=samples[:, : ends[k - 1]] if k else None,
                )  # fmt: skip
            out = to_output_type(pipe.decode_codes(tokens), "pil")
            passed[k] += sum(verify(im, p).passed for im, p in zip(out, batch))
    return {k: passed[k] / num_prompts for k in true_groups}
