"""Classifier-free guidance: mixing and schedules over groups."""

from __future__ import annotations

import torch

GUIDANCE_SCHEDULES = ("constant", "linear", "cutoff")
# far above any useful scale (LlamaGen, VAR and MAR use 1.5 - 10), low enough that mixed float32
# logits never overflow to inf (which would leave no distribution to sample)
MAX_GUIDANCE_SCALE = 1000.0


def check_guidance_args(guidance_scale: float, schedule: str, cutoff: int | None) -> None:
    if isinstance(guidance_scale, bool) or not isinstance(guidance_scale, (int, float)):
        raise TypeError(f"guidance_scale must be a number, got {type(guidance_scale).__name__}")
    if not 0 <= guidance_scale <= MAX_GUIDANCE_SCALE:
        raise ValueError(
            f"guidance_scale must be a number in [0, {MAX_GUIDANCE_SCALE:g}] (1 turns guidance "
            f"off), got {guidance_scale}"
        )
    if schedule not in GUIDANCE_SCHEDULES:
        raise ValueError(
            f"guidance_schedule must be one of {list(GUIDANCE_SCHEDULES)}, got {schedule!r}"
        )
    if schedule == "cutoff" and (not isinstance(cutoff, int) or cutoff < 0):
        raise ValueError(f"guidance_cutoff must be an int >= 0 with 'cutoff', got {cutoff!r}")


def guidance_scale_at(
    group: int, num_groups: int, scale: float, schedule: str = "constant", cutoff: int | None = None
) -> float:
    """Guidance scale for ``group`` (0-based) of ``num_groups``.

    - ``constant``: ``scale`` everywhere.
    - ``linear``: from 1 at the first group to ``scale`` at the last (VAR's ramp).
    - ``cutoff``: ``scale`` for the first ``cutoff`` groups, then 1 (LlamaGen's cfg_interval).
    """
    if schedule == "constant":
        return scale
    if schedule == "linear":
        return 1.0 + (scale - 1.0) * group / max(num_groups - 1, 1)
    if schedule == "cutoff":
        return scale if group < cutoff else 1.0
    raise ValueError(f"unknown guidance schedule {schedule!r}")


def group_guidance_scales(num_groups: int, sampling) -> list[float]:
    """The guidance scale of every group under a ``SamplingConfig``'s scale and schedule."""
    return [
        guidance_scale_at(g, num_groups, sampling.guidance_scale, sampling.guidance_schedule,
                          sampling.guidance_cutoff)
        for g in range(num_groups)
    ]  # fmt: skip


def mix_guidance(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """``cond + (scale - 1) * (cond - uncond)``: exactly ``cond`` at scale 1; mixed in float32
    at least (half-precision logits would overflow at large scales)."""
    if scale == 1.0:
        return cond
    cond, uncond = cond.float(), uncond.float()
    return cond + (scale - 1.0) * (cond - uncond)
