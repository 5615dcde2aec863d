"""Where a text-to-image model's errors come from: ``shapes`` pass rates when the first k groups
of every image are the true ones (the tokenizer's codes of a rendering of the prompt) and the
model generates the rest. The gap between k and k + 1 true groups is what sampling group k
costs; k = number of groups is the tokenizer's reconstruction. Teacher-forced, every group is
sampled given the true groups before it: the errors a correct context leaves."""

from __future__ import annotations

import torch

from mmgen.data.shapes import render, sample_prompt
from mmgen.eval.shapes_verifier import verify
from mmgen.pipelines.outputs import image_to_tensor, to_output_type
from mmgen.pipelines.text_to_image import prompt_ids


def rendered_prompts(num_prompts: int, seed: int) -> tuple[list, list[torch.Tensor]]:
    """``num_prompts`` random prompts and a rendering of each, (3, H, W) in [-1, 1], all drawn
    from ``torch.Generator().manual_seed(seed)``."""
    draw = torch.Generator().manual_seed(seed)
    prompts, images = [], []
    for _ in range(num_prompts):
        prompt = sample_prompt(draw)
        prompts.append(prompt)
        images.append(image_to_tensor(render(prompt, draw)))
    return prompts, images


def image_generators(seed: int, start: int, count: int) -> list[torch.Generator]:
    """Image i's sampling generator, ``manual_seed(seed + 1 + i)``, for images start.."""
    return [torch.Generator().manual_seed(seed + 1 + i) for i in range(start, start + count)]


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
    prompts, images = rendered_prompts(num_prompts, seed)
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
                generators = image_generators(seed, start, len(batch))
                tokens = pipe.generate_tokens(
                    cond, uncond, resolved, generator=generators, use_cache=True,
                    show_progress=False, given=samples[:, : ends[k - 1]] if k else None,
                )  # fmt: skip
            out = to_output_type(pipe.decode_codes(tokens), "pil")
            passed[k] += sum(verify(im, p).passed for im, p in zip(out, batch))
    return {k: passed[k] / num_prompts for k in true_groups}


def teacher_forced_hidden(pipe, inputs: torch.Tensor, condition_ids: torch.Tensor) -> torch.Tensor:
    """One backbone pass over whole sequences: condition ids (B, T) and the order's
    teacher-forcing inputs (B, rows, ...) -> hidden states (B, L, D), under the layout's mask."""
    layout, model = pipe.order.layout.to(pipe.transformer.device), pipe.transformer
    bias = layout.attention_bias(0, layout.length)  # an order's non-prefix mask, or None
    return model(layout.positions, layout.kv_end, condition_ids=condition_ids.to(model.device),
                 inputs=inputs, attention_bias=bias)  # fmt: skip


@torch.no_grad()
def teacher_forced_tokens(
    pipe,
    true_tokens: torch.Tensor,
    condition_ids: torch.Tensor,
    uncond_ids: torch.Tensor,
    sampling,
    generator,
) -> torch.Tensor:
    """Every group sampled from the model given the *true* earlier groups: one teacher-forcing
    backbone pass (conditional and, under guidance, unconditional rows), then the head samples
    each group with its guidance and the order takes it in, as in generation.

    Args:
        pipe: a text-to-image pipeline.
        true_tokens: (B, N[, C]) flat tokens that feed the model (the order's teacher-forcing
            inputs), e.g. the tokenizer's codes of renderings of the prompts.
        condition_ids, uncond_ids: (B, T) prompt and negative-prompt ids.
        sampling: a resolved ``SamplingConfig``.
        generator: a ``torch.Generator``, one per image, or None.

    Returns:
        (B, N[, C]) the sampled tokens; a model that generated ``true_tokens`` greedily gives
        them back at temperature 0.
    """
    from mmgen.generation.guidance import group_guidance_scales
    from mmgen.generation.loop import sample_group

    order, model = pipe.order, pipe.transformer
    layout = order.layout.to(model.device)
    B, T = condition_ids.shape[0], layout.text_length
    inputs, _ = order.training_inputs(true_tokens.to(model.device))  # (B, rows, ...)
    groups = layout.image_groups
    scales = group_guidance_scales(len(groups), sampling)
    rows = condition_ids
    if any(s != 1.0 for s in scales):
        rows = torch.cat([condition_ids, uncond_ids], dim=0)  # (B', T)
    copies = rows.shape[0] // B
    inputs = inputs.repeat(copies, *([1] * (inputs.ndim - 1)))  # (B', rows, ...)
    hidden = teacher_forced_hidden(pipe, inputs, rows)  # (B', L, D)
    state = order.start(B, model.device)
    for g in range(len(groups)):
        first, end = layout.sampled_rows(g)
        outputs = model.head(hidden[:, first:end])  # (B', n, ...)
        sampled = sample_group(model.head, outputs, inputs[:, first - T : end - T], B,
                               scales[g], sampling, generator)  # fmt: skip
        order.take(state, g, sampled)
        state.done = g + 1
    return order.finish(state)


@torch.no_grad()
def evaluate_teacher_forced(
    pipe, *, num_prompts: int = 200, seed: int = 0, batch_size: int = 50, **sampling
) -> float:
    """Pass rate when every group is sampled given the true earlier groups
    (:func:`teacher_forced_tokens`), on the prompts and renderings of
    :func:`evaluate_true_prefix` with the same ``seed``. Against the free-running pass rate it
    splits the errors: what the model gets wrong drawing with a correct context (local
    rendering) against what going astray costs (binding, placement, counting)."""
    prompts, images = rendered_prompts(num_prompts, seed)
    resolved = pipe.resolve_sampling(**sampling)
    passed = 0
    for start in range(0, num_prompts, batch_size):
        batch = prompts[start : start + batch_size]
        true_tokens, _, _ = true_prefix_samples(
            pipe, torch.stack(images[start : start + batch_size])
        )
        cond, uncond = prompt_ids(pipe.text_tokenizer, [p.text for p in batch], None, 1)
        generators = image_generators(seed, start, len(batch))
        tokens = teacher_forced_tokens(pipe, true_tokens, cond, uncond, resolved, generators)
        out = to_output_type(pipe.decode_codes(tokens), "pil")
        passed += sum(verify(im, p).passed for im, p in zip(out, batch))
    return passed / num_prompts


@torch.no_grad()
def sequence_log_likelihood(
    pipe, tokens: torch.Tensor, condition_ids: torch.Tensor
) -> torch.Tensor:
    """log p(tokens | condition) under the model, teacher-forced: (B, N) codes and (B, T) ids
    -> (B,) float32 sums over every code the head predicts (categorical heads only)."""
    from mmgen.models.heads import IGNORE_INDEX, CategoricalHead

    order, model = pipe.order, pipe.transformer
    if not isinstance(model.head, CategoricalHead):
        raise ValueError(
            f"a log-likelihood needs a categorical head, not {type(model.head).__name__}"
        )
    layout = order.layout.to(model.device)
    inputs, targets = order.training_inputs(tokens.to(model.device))  # (B, rows[, s^2])
    rows = teacher_forced_hidden(pipe, inputs, condition_ids)[:, layout.text_length :]
    index = layout.target_index()
    if index is not None:  # a long-context order's context-only rows predict nothing
        rows = rows[:, index]
    log_probs = model.head(rows).float().log_softmax(-1)  # (B, rows[, s^2], K)
    targets = targets.long()
    scored = targets != IGNORE_INDEX  # a row holding fewer codes pads with IGNORE_INDEX
    picked = log_probs.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (picked * scored).flatten(1).sum(1)  # (B,)


@torch.no_grad()
def best_of_n(
    pipe, *, num_prompts: int, num_samples: int, seed: int, batch_prompts: int = 25, **sampling
) -> dict[str, float]:
    """Can the model draw a prompt at all, and can it tell its own good samples?
    ``num_samples`` images for each of ``num_prompts`` prompts (``manual_seed(seed)``, the
    eval's prompts); sample i of prompt j from ``manual_seed(seed + 1 + j * N + i)``.

    Returns:
        pass rates by name: ``per sample``; ``any of N (oracle)``, the prompts with at least
        one passing sample; the sample picked by the model's own teacher-forced
        ``log p(x|prompt)``, and by ``log p(x|prompt) - log p(x)`` (the empty prompt).
    """
    draw = torch.Generator().manual_seed(seed)
    prompts = [sample_prompt(draw).text for _ in range(num_prompts)]
    resolved = pipe.resolve_sampling(**sampling)
    passed, cond_ll, null_ll = [], [], []
    for start in range(0, num_prompts, batch_prompts):
        batch = prompts[start : start + batch_prompts]
        cond, uncond = prompt_ids(pipe.text_tokenizer, batch, None, num_samples)  # (B * N, T)
        generators = image_generators(seed, start * num_samples, len(batch) * num_samples)
        tokens = pipe.generate_tokens(cond, uncond, resolved, generator=generators,
                                      use_cache=True, show_progress=False)  # fmt: skip
        cond_ll.append(sequence_log_likelihood(pipe, tokens, cond))
        null_ll.append(sequence_log_likelihood(pipe, tokens, uncond))
        images = to_output_type(pipe.decode_codes(tokens), "pil")
        texts = [p for p in batch for _ in range(num_samples)]
        passed += [verify(image, text).passed for image, text in zip(images, texts)]
    ok = torch.tensor(passed).view(num_prompts, num_samples)  # (P, N)
    log_p = torch.cat(cond_ll).view(num_prompts, num_samples)
    pmi = log_p - torch.cat(null_ll).view(num_prompts, num_samples)
    rows = torch.arange(num_prompts)
    return {
        "per sample": ok.float().mean().item(),
        "any of N (oracle)": ok.any(1).float().mean().item(),
        "picked by log p(x|prompt)": ok[rows, log_p.argmax(1)].float().mean().item(),
        "picked by log p(x|prompt) - log p(x)": ok[rows, pmi.argmax(1)].float().mean().item(),
    }
