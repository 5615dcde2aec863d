"""Exact verifier for the built-in ``moving-shapes`` text-to-video task (``DATASETS.md``).

Every frame is checked as a ``shapes`` image for the named objects (relations ignored): the
frame passes iff its ``(colour, shape)`` components are exactly the prompt's objects. A clip
passes iff at least 11 of its first 12 frames pass and each object's centroid, between the first
and the last passing frame, moves at least 12 px in its direction while drifting at most 4 px
across it (max - min of the other coordinate over the passing frames). Beyond 12 frames only the
per-frame check is the measure (:attr:`ClipVerdict.frames`).

Examples:
    >>> import torch
    >>> from mmgen.data.moving_shapes import sample
    >>> prompt, frames = sample(torch.Generator().manual_seed(0))
    >>> verify_clip(frames, prompt).passed
    True
"""

from __future__ import annotations

from dataclasses import dataclass

from mmgen.data.moving_shapes import (
    NUM_FRAMES,
    STEPS,
    MovingShapesPrompt,
    axis,
    parse_prompt,
)
from mmgen.eval.shapes_verifier import find_components, object_problems

MIN_PASSING_FRAMES = 11  # of the first NUM_FRAMES
MIN_TRAVEL = 12.0  # px along the direction, first to last passing frame
MAX_DRIFT = 4.0  # px across it


@dataclass(frozen=True)
class ClipVerdict:
    """Outcome of :func:`verify_clip`.

    Attributes:
        passed: Whether the clip satisfies its prompt (judged on its first 12 frames).
        reason: ``"ok"``, or every failure found, separated by ``"; "``.
        frames: Per-frame pass/fail over the whole clip (longer clips: the extrapolation measure).
    """

    passed: bool
    reason: str
    frames: tuple[bool, ...]


def verify_clip(frames, prompt: str | MovingShapesPrompt) -> ClipVerdict:
    """Decides whether a clip (a sequence of frames: PIL images, uint8 (H, W, 3) arrays or uint8
    (3, H, W) tensors) satisfies a moving-shapes prompt.

    Raises:
        ValueError: If ``prompt`` is text that is not a moving-shapes prompt.
    """
    if isinstance(prompt, str):
        prompt = parse_prompt(prompt)
    per_frame, centroids = [], []  # centroids: per passing frame, (x, y) per object
    for index, frame in enumerate(frames):
        components = find_components(frame)
        ok = not object_problems(components, prompt.objects)
        per_frame.append(ok)
        if ok and index < NUM_FRAMES:
            by_object = {(c.colour, c.shape): c.centroid for c in components}
            centroids.append([by_object[obj] for obj in prompt.objects])
    problems = []
    passing = sum(per_frame[:NUM_FRAMES])
    if len(per_frame) < NUM_FRAMES:
        problems.append(f"{len(per_frame)} frames, need {NUM_FRAMES}")
    elif passing < MIN_PASSING_FRAMES:
        problems.append(f"{passing} of {NUM_FRAMES} frames show the objects, need "
                        f"{MIN_PASSING_FRAMES}")  # fmt: skip
    if len(centroids) >= 2:
        for i, ((colour, shape), direction) in enumerate(zip(prompt.objects, prompt.directions)):
            problems += _motion_problems(f"{colour} {shape}", direction,
                                         [c[i] for c in centroids])  # fmt: skip
    elif not problems:
        problems.append("too few passing frames to measure motion")
    return ClipVerdict(not problems, "; ".join(problems) or "ok", tuple(per_frame))


def _motion_problems(name: str, direction: str, path: list[tuple[float, float]]) -> list[str]:
    """Travel along ``direction`` and drift across it, over the passing frames' centroids."""
    dx, dy = STEPS[direction]
    along, across = (0, 1) if axis(direction) == "x" else (1, 0)
    sign = dx + dy
    travel = sign * (path[-1][along] - path[0][along])
    drift = max(p[across] for p in path) - min(p[across] for p in path)
    problems = []
    if travel < MIN_TRAVEL:
        problems.append(f"{name} moved {travel:.1f} px {direction}, need {MIN_TRAVEL:.0f}")
    if drift > MAX_DRIFT:
        problems.append(f"{name} drifted {drift:.1f} px across its motion, at most "
                        f"{MAX_DRIFT:.0f}")  # fmt: skip
    return problems
