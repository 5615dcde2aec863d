"""The group loop: prefill the text, then one backbone call per group against the KV cache."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmgen.generation.guidance import guidance_scale_at, mix_guidance
from mmgen.generation.logits_processors import sample
from mmgen.models.kv_cache import KVCache
from mmgen.models.transformer import ARTransformer
from mmgen.sequence import SequenceLayout, TokenSpace


@dataclass(frozen=True)
class SamplingConfig:
    """Knobs of one generation call (validated by the pipeline)."""

    guidance_scale: float = 1.0
    guidance_schedule: str = "constant"
    guidance_cutoff: int | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


def prefill(
    model: ARTransformer, input_ids: torch.Tensor, layout: SequenceLayout, caches: list[KVCache]
) -> None:
    """Run the text segment once, filling the caches for positions ``[0, text_length)``."""
    T = layout.text_length
    model(input_ids[:, :T], layout.positions[:T], layout.kv_end[:T], caches=caches, start=0)


def group_logits(
    model: ARTransformer,
    input_ids: torch.Tensor,
    layout: SequenceLayout,
    start: int,
    end: int,
    caches: list[KVCache] | None,
    decoder=None,
) -> torch.Tensor:
    """Logits (B, end - start, V) of one group: compiled step, cache, or full recompute."""
    if decoder is not None:
        return decoder(
            input_ids[:, start:end], layout.positions[start:end], layout.kv_end[start:end], start
        )
    if caches is not None:
        hidden = model(
            input_ids[:, start:end],
            layout.positions[start:end],
            layout.kv_end[start:end],
            caches=caches,
            start=start,
        )
    else:  # reference path: recompute the whole prefix, keep the group's rows
        hidden = model(input_ids[:, :end], layout.positions[:end], layout.kv_end[:end])
        hidden = hidden[:, start:end]
    return model.head(hidden)


@torch.no_grad()
def generate_codes(
    model: ARTransformer,
    layout: SequenceLayout,
    space: TokenSpace,
    text_ids: torch.Tensor,
    uncond_text_ids: torch.Tensor | None,
    sampling: SamplingConfig,
    *,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    progress_bar=None,
    decoder=None,
) -> torch.Tensor:
    """Sample the image codes of a batch, group by group.

    Args:
        model: the transformer.
        layout: sequence layout (text segment + image groups).
        space: how text and image ids share the vocabulary.
        text_ids: (B, T) conditional prompts.
        uncond_text_ids: (B, T) negative/empty prompts; used when guidance is active.
        sampling: guidance and sampling knobs.
        generator: source of every random draw.
        use_cache: False recomputes the full prefix per group (the reference path).
        progress_bar: optional callable wrapping the group iterator (e.g. tqdm).
        decoder: optional :class:`~mmgen.generation.compiled.CompiledDecoder` for the groups
            (its persistent caches are prefilled here); needs ``use_cache``.

    Returns:
        (B, N) codes in raster order.
    """
    device = model.device
    B, T = text_ids.shape
    guided = sampling.guidance_scale != 1.0
    rows = torch.cat([text_ids, uncond_text_ids], dim=0) if guided else text_ids  # (B', T)
    L = layout.length
    input_ids = torch.full((rows.shape[0], L), space.start_id, dtype=torch.long, device=device)
    input_ids[:, :T] = rows.to(device)
    layout = _layout_to(layout, device)
    if decoder is not None and use_cache:
        caches = decoder.caches_for(rows.shape[0], L)
    else:
        caches, decoder = (model.make_caches(rows.shape[0], L) if use_cache else None), None
    if caches is not None:
        prefill(model, input_ids, layout, caches)

    groups = layout.image_groups
    codes = torch.zeros(B, layout.num_image_tokens, dtype=torch.long, device=device)
    iterator = progress_bar(range(len(groups))) if progress_bar else range(len(groups))
    for g in iterator:
        start, end = groups[g]
        logits = group_logits(model, input_ids, layout, start, end, caches, decoder)  # (B', n, V)
        if guided:
            scale = guidance_scale_at(
                g,
                len(groups),
                sampling.guidance_scale,
                sampling.guidance_schedule,
                sampling.guidance_cutoff,
            )
            logits = mix_guidance(logits[:B], logits[B:], scale)
        new = sample(
            logits,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            generator=generator,
        )  # (B, n)
        codes[:, start - T : end - T] = new
        # slot i's input is code i - 1, so this group feeds slots [start + 1, end + 1)
        shifted = (new + space.image_offset).repeat(rows.shape[0] // B, 1)  # (B', n)
        stop = min(end + 1, L)
        input_ids[:, start + 1 : stop] = shifted[:, : stop - start - 1]
    return codes


def _layout_to(layout: SequenceLayout, device: torch.device) -> SequenceLayout:
    if layout.positions.device == device:
        return layout
    from dataclasses import replace

    return replace(layout, positions=layout.positions.to(device), kv_end=layout.kv_end.to(device))
