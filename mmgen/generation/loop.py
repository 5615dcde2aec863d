"""The group loop: prefill the condition, then one backbone call per group against the KV cache.

Every order runs through :func:`generate_codes`: the order gives group g's inputs (from what
groups < g produced), the backbone runs the group's rows, the head samples them (mixing guidance
itself), and the order takes the sample in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from mmgen.generation.guidance import group_guidance_scales
from mmgen.generation.sequence_cache import SequenceCache, call_spans
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
    flexrope_slope: float = 0.0  # FlexRoPE's decay per frame of distance (video); 0 = RoPE
    num_candidates: int = 1  # images drawn per output, the scorer's best kept (pipelines)


def group_outputs(
    model: ARTransformer,
    inputs: torch.Tensor,
    layout: SequenceLayout,
    start: int,
    end: int,
    cache: SequenceCache | None,
    decoder=None,
    *,
    condition_ids: torch.Tensor | None = None,
    fed: list[torch.Tensor] | None = None,
    flexrope_slope: float = 0.0,
    skip: int = 0,
) -> torch.Tensor:
    """Head outputs (B', end - start, ...) of one group (or of several consecutive groups'
    rows at once): compiled step, cache, or recompute.

    Without caches (the reference path) the whole prefix runs again: the condition, every
    earlier group's inputs (``fed``) and this group's. The score bias is the layout's
    (``SequenceLayout.attention_bias``): FlexRoPE's frame-distance decay when
    ``flexrope_slope`` > 0, and an order's non-prefix mask (FAR-Long's window). ``skip``
    leading rows (a group's context-only rows) are left out of the head's outputs.
    """
    if decoder is not None:
        if flexrope_slope or layout.allowed is not None:
            raise ValueError("flexrope_slope and long-context orders are not supported by the "
                             "compiled decoder yet; call pipe.disable_compile()")  # fmt: skip
        return decoder(inputs, layout.positions[start:end], layout.kv_end[start:end], start)
    if cache is not None:
        hidden = cache.run(model, start, end, inputs=inputs, flexrope_slope=flexrope_slope)
    else:
        everything = torch.cat([*fed, inputs], dim=1) if fed else inputs
        hidden = model(
            layout.positions[:end],
            layout.kv_end[:end],
            condition_ids=condition_ids,
            inputs=everything,
            attention_bias=layout.attention_bias(0, end, flexrope_slope),
        )[:, start:end]
    return model.head(hidden[:, skip:])


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
    given: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample the codes of a batch, group by group, in ``order`` (:func:`generate_groups` run
    to the end; the arguments are its own, ``callback(step, num_groups, state)`` sees every
    group).

    Returns:
        (B, N) codes in the tokenizer's flat layout.
    """
    state = None
    for step, num_groups, state in generate_groups(
        model, order, condition_ids, uncond_ids, sampling, generator=generator,
        use_cache=use_cache, decoder=decoder, given=given,
    ):  # fmt: skip
        if callback is not None:
            callback(step, num_groups, state)
    return order.finish(state)


@torch.no_grad()
def generate_groups(
    model: ARTransformer,
    order: Order,
    condition_ids: torch.Tensor,
    uncond_ids: torch.Tensor | None,
    sampling: SamplingConfig,
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    use_cache: bool = True,
    decoder=None,
    given: torch.Tensor | None = None,
):
    """Sample a batch group by group in ``order``, yielding ``(step, num_groups, state)``
    after each generated group (a stream reads the state as it grows; closing the generator
    stops the generation).

    Args:
        model: the transformer.
        order: the generation order (layout, inputs per group).
        condition_ids: (B, T) conditional prompts (or class ids).
        uncond_ids: (B, T) negative/empty prompts; run only when some group's guidance is not 1.
        sampling: guidance and sampling knobs.
        generator: source of every random draw, or one generator per batch row.
        use_cache: False recomputes the full prefix per group (the reference path).
        decoder: optional :class:`~mmgen.generation.compiled.CompiledDecoder` for the groups
            (its persistent caches are prefilled here); needs ``use_cache``.
        given: what the head would have sampled for the first k groups, their samples
            concatenated along dim 1 (B, rows of k groups, ...): a continuation (the first
            frames of a clip, the top rows of an image). Their inputs run through the backbone
            in one call; generation starts at group k.

    Yields:
        ``(step, num_groups, state)``; the last ``state`` holds the whole sample
        (``order.finish(state)`` gives its flat codes).
    """
    device = model.device
    B = condition_ids.shape[0]
    num_groups = len(order.layout.image_groups)
    group_guidance = group_guidance_scales(num_groups, sampling)
    guided = any(s != 1.0 for s in group_guidance)  # else the unconditional rows never count
    rows = torch.cat([condition_ids, uncond_ids], dim=0) if guided else condition_ids  # (B', T)
    rows = rows.to(device)
    copies = rows.shape[0] // B
    layout = order.layout.to(device)
    L = layout.length
    groups = layout.image_groups
    state = order.start(B, device)
    k = 0  # groups given (a continuation)
    if given is not None:
        k = take_given(order, state, given.to(device))
    spans = call_spans(layout, k)
    cache = None
    if use_cache:
        persistent = None if decoder is None else decoder.caches_for(rows.shape[0], L)
        cache = SequenceCache(model, rows.shape[0], layout, spans, caches=persistent)
        cache.run(model, *spans[0], condition_ids=rows)  # the prefill: the condition's rows
    else:
        decoder = None

    fed: list[torch.Tensor] = []
    slope = sampling.flexrope_slope
    if k:
        inputs = torch.cat([order.group_inputs(state, g) for g in range(k)], dim=1)
        inputs = inputs.repeat(copies, *([1] * (inputs.ndim - 1)))  # (B', rows of k groups, ...)
        fed.append(inputs)
        first, last = spans[1]
        if decoder is not None:  # one backbone call fills the caches for the given groups
            decoder(inputs, layout.positions[first:last], layout.kv_end[first:last], first)
        elif cache is not None:
            cache.run(model, first, last, inputs=inputs, flexrope_slope=slope)
    for g, (start, end) in enumerate(groups):
        if g < state.done:
            continue
        inputs = order.group_inputs(state, g)  # (B, n, ...)
        inputs = inputs.repeat(copies, *([1] * (inputs.ndim - 1)))  # (B', n, ...)
        outputs = group_outputs(
            model, inputs, layout, start, end, cache, decoder, condition_ids=rows, fed=fed,
            flexrope_slope=slope, skip=layout.sampled_rows(g)[0] - start,
        )  # fmt: skip
        if cache is None:
            fed.append(inputs)
        # (B, n, ...)
        sampled = sample_group(model.head, outputs, inputs[:, layout.sampled_rows(g)[0] - start :],
                               B, group_guidance[g], sampling, generator)  # fmt: skip
        order.take(state, g, sampled)
        state.done = g + 1
        yield g, len(groups), state


def sample_group(head, outputs, inputs, batch_size: int, scale: float, sampling, generator):
    """The head's draw for one group's sampled rows: ``outputs`` (B', n, ...) of the head,
    ``inputs`` (B', n, ...) the rows' backbone inputs, read by a head that asks for them
    (``input_channels``); B' = 2B under guidance at ``scale``."""
    reads = {"inputs": inputs} if getattr(head, "input_channels", 0) else {}
    return head.sample(outputs, batch_size, scale, sampling, generator, **reads)


def take_given(order: Order, state: GenerationState, given: torch.Tensor) -> int:
    """Hand the order the given samples of its first groups (split by the groups' row counts,
    in generation order); returns how many groups they fill.

    Raises:
        ValueError: when ``given`` does not end on a group boundary or fills every group.
    """
    groups = order.layout.image_groups
    if given.shape[0] != state.codes.shape[0]:
        raise ValueError(f"given holds {given.shape[0]} rows for a batch of "
                         f"{state.codes.shape[0]}")  # fmt: skip
    sizes = [b - a for a, b in map(order.layout.sampled_rows, range(len(groups)))]
    ends = torch.tensor(sizes).cumsum(0).tolist()  # sampled rows of the first 1, 2, ... groups
    if given.shape[1] not in ends:
        raise ValueError(
            f"given has {given.shape[1]} rows, which is not a whole number of the first groups "
            f"(their sizes: {sizes[:4]}...)"
        )
    k = ends.index(given.shape[1]) + 1
    if k == len(groups):
        raise ValueError("given fills every group: nothing is left to generate")
    offset = 0
    for g in range(k):
        order.take(state, g, given[:, offset : offset + sizes[g]])
        offset += sizes[g]
    state.done = k
    return k
