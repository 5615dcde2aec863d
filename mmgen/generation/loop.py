"""The group loop: prefill the condition, then one backbone call per group against the KV cache.

Every order runs through :func:`generate_codes`: the order gives group g's inputs (from what
groups < g produced), the backbone runs the group's rows, the head samples them (mixing guidance
itself), and the order takes the sample in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mmgen.generation.guidance import guidance_scale_at
from mmgen.models.kv_cache import KVCache
from mmgen.models.transformer import ARTransformer
from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import SequenceLayout

#: ``callback(step, num_groups, state)`` after each group (diffusers' callback_on_step_end)
GroupCallback = Callable[[int, int, GenerationState], None]


@dataclass(frozen=True)
class SamplingConfig:
    """Knobs of one generation call (validated by the pipeline)."""

    guidance_scale: float = 1.0
    guidance_schedule: str = "constant"
    guidance_cutoff: int | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_inference_steps: int = 16  # Euler steps of a flow head (categorical heads ignore it)


def prefill(
    model: ARTransformer, condition_ids: torch.Tensor, layout: SequenceLayout, caches
) -> None:
    """Run the condition segment once, filling the caches for rows ``[0, text_length)``."""
    T = layout.text_length
    model(layout.positions[:T], layout.kv_end[:T], condition_ids=condition_ids, caches=caches)


def group_outputs(
    model: ARTransformer,
    inputs: torch.Tensor,
    layout: SequenceLayout,
    start: int,
    end: int,
    caches: list[KVCache] | None,
    decoder=None,
    *,
    condition_ids: torch.Tensor | None = None,
    fed: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Head outputs (B', end - start, ...) of one group: compiled step, cache, or recompute.

    Without caches (the reference path) the whole prefix runs again: the condition, every
    earlier group's inputs (``fed``) and this group's.
    """
    if decoder is not None:
        return decoder(inputs, layout.positions[start:end], layout.kv_end[start:end], start)
    if caches is not None:
        hidden = model(
            layout.positions[start:end],
            layout.kv_end[start:end],
            inputs=inputs,
            caches=caches,
            start=start,
        )
    else:
        everything = torch.cat([*fed, inputs], dim=1) if fed else inputs
        hidden = model(
            layout.positions[:end],
            layout.kv_end[:end],
            condition_ids=condition_ids,
            inputs=everything,
        )[:, start:end]
    return model.head(hidden)


@torch.no_grad()
def generate_codes(
    model: ARTransformer,
    order: Order,
    condition_ids: torch.Tensor,
    uncond_ids: torch.Tensor | None,
    sampling: SamplingConfig,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    use_cache: bool = True,
    callback: GroupCallback | None = None,
    decoder=None,
) -> torch.Tensor:
    """Sample the codes of a batch, group by group, in ``order``.

    Args:
        model: the transformer.
        order: the generation order (layout, inputs per group).
        condition_ids: (B, T) conditional prompts (or class ids).
        uncond_ids: (B, T) negative/empty prompts; used when guidance is active.
        sampling: guidance and sampling knobs.
        generator: source of every random draw, or one generator per batch row.
        use_cache: False recomputes the full prefix per group (the reference path).
        callback: called as ``callback(step, num_groups, state)`` after each group.
        decoder: optional :class:`~mmgen.generation.compiled.CompiledDecoder` for the groups
            (its persistent caches are prefilled here); needs ``use_cache``.

    Returns:
        (B, N) codes in the tokenizer's flat layout.
    """
    device = model.device
    B = condition_ids.shape[0]
    guided = sampling.guidance_scale != 1.0
    rows = torch.cat([condition_ids, uncond_ids], dim=0) if guided else condition_ids  # (B', T)
    rows = rows.to(device)
    copies = rows.shape[0] // B
    layout = order.layout.to(device)
    L = layout.length
    if decoder is not None and use_cache:
        caches = decoder.caches_for(rows.shape[0], L)
    else:
        caches, decoder = (model.make_caches(rows.shape[0], L) if use_cache else None), None
    if caches is not None:
        prefill(model, rows, layout, caches)

    groups = layout.image_groups
    state = order.start(B, device)
    fed: list[torch.Tensor] = []
    for g, (start, end) in enumerate(groups):
        inputs = order.group_inputs(state, g)  # (B, n, ...)
        inputs = inputs.repeat(copies, *([1] * (inputs.ndim - 1)))  # (B', n, ...)
        outputs = group_outputs(
            model, inputs, layout, start, end, caches, decoder, condition_ids=rows, fed=fed
        )
        if caches is None:
            fed.append(inputs)
        scale = 1.0
        if guided:
            scale = guidance_scale_at(
                g,
                len(groups),
                sampling.guidance_scale,
                sampling.guidance_schedule,
                sampling.guidance_cutoff,
            )
        sampled = model.head.sample(outputs, B, scale, sampling, generator)  # (B, n, ...)
        order.take(state, g, sampled)
        state.done = g + 1
        if callback is not None:
            callback(g, len(groups), state)
    return order.finish(state)
