"""Procedural generator for the built-in ``moving-shapes`` text-to-video task.

The numbers are the contract in ``DATASETS.md`` ("moving-shapes (text-to-video)"): 12 frames of
64 x 64 with the palette, shapes and white background of ``shapes``; one or two objects of
14-22 px, each moving left, right, up or down at 2 or 3 px per frame, bouncing off the canvas
edges (no bounce within the first 12 frames; longer clips continue the bouncing motion). In
two-object prompts both objects move along one axis in separate lanes, so they never overlap,
and they differ in colour or shape (so that each named object is one component to follow).
Every random number comes from the ``torch.Generator`` passed in.

Examples:
    >>> import torch
    >>> from mmgen.data.moving_shapes import sample
    >>> prompt, frames = sample(torch.Generator().manual_seed(0))
    >>> len(frames), frames[0].size
    (12, (64, 64))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from mmgen.data.procedural import ProceduralDataset
from mmgen.data.shapes import IMAGE_SIZE, MIN_GAP, OBJECTS, PALETTE, SHAPE_NAMES, Placement, draw

NUM_FRAMES = 12
SIZE_RANGE = (14, 22)  # inclusive side of each bounding box
SPEEDS = (2, 3)  # px per frame
DIRECTIONS = ("left", "right", "up", "down")
#: (dx, dy) unit step of each direction; image y grows downward
STEPS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_MAX_LANE_TRIES = 10_000


@dataclass(frozen=True)
class MovingShapesPrompt:
    """One prompt of the ``moving-shapes`` task.

    Attributes:
        text: The prompt string, exactly as :func:`format_prompt` writes it.
        objects: ``(colour, shape)`` per object, in prompt order (one or two, distinct).
        directions: One of :data:`DIRECTIONS` per object; two share an axis.
    """

    text: str
    objects: tuple[tuple[str, str], ...]
    directions: tuple[str, ...]


@dataclass(frozen=True)
class Motion:
    """One object's path: its box of side ``size`` starts with top-left ``(x, y)`` and moves
    ``speed`` px per frame in ``direction``, bouncing off the canvas edges."""

    colour: str
    shape: str
    x: int
    y: int
    size: int
    direction: str
    speed: int

    def placement(self, frame: int) -> Placement:
        """Where the object is drawn in ``frame`` (0-based)."""
        dx, dy = STEPS[self.direction]
        limit = IMAGE_SIZE - self.size  # the box's top-left stays in [0, limit]
        x = bounce(self.x + dx * self.speed * frame, limit)
        y = bounce(self.y + dy * self.speed * frame, limit)
        return Placement(self.colour, self.shape, x, y, self.size)


def bounce(position: int, limit: int) -> int:
    """An unbounded straight-line coordinate reflected into ``[0, limit]`` (elastic walls)."""
    period = 2 * limit
    folded = position % period
    return folded if folded <= limit else period - folded


def format_prompt(objects: tuple[tuple[str, str], ...], directions: tuple[str, ...]) -> str:
    """``a red circle moving left`` or ``... and a blue square moving right``."""
    if len(objects) not in (1, 2) or len(objects) != len(directions):
        raise ValueError(f"one or two objects, one direction each; got {objects}, {directions}")
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; expected one of {DIRECTIONS}")
    return " and ".join(
        f"a {colour} {shape} moving {direction}"
        for (colour, shape), direction in zip(objects, directions)
    )


_OBJECT_RE = f"a ({'|'.join(PALETTE)}) ({'|'.join(SHAPE_NAMES)}) moving ({'|'.join(DIRECTIONS)})"
_PATTERN = re.compile(f"{_OBJECT_RE}(?: and {_OBJECT_RE})?")


def axis(direction: str) -> str:
    """``"x"`` for left/right, ``"y"`` for up/down."""
    return "x" if direction in ("left", "right") else "y"


def parse_prompt(text: str) -> MovingShapesPrompt:
    """The inverse of :func:`format_prompt`.

    Raises:
        ValueError: If ``text`` is not a moving-shapes prompt, or names two identical objects or
            two objects moving along different axes.
    """
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"not a moving-shapes prompt: {text!r}")
    groups = [g for g in match.groups() if g is not None]
    objects = tuple((groups[i], groups[i + 1]) for i in range(0, len(groups), 3))
    directions = tuple(groups[i + 2] for i in range(0, len(groups), 3))
    if len(objects) == 2:
        if objects[0] == objects[1]:
            raise ValueError(f"not a moving-shapes prompt (identical objects): {text!r}")
        if axis(directions[0]) != axis(directions[1]):
            raise ValueError(f"not a moving-shapes prompt (objects on two axes): {text!r}")
    return MovingShapesPrompt(text, objects, directions)


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in ``[low, high)``."""
    return int(torch.randint(low, high, (1,), generator=generator).item())


def sample_prompt(generator: torch.Generator, two_object_weight: int = 1) -> MovingShapesPrompt:
    """One or two objects; two differ in colour or shape and share an axis.

    Two objects are ``two_object_weight`` times as likely as one (1, the task's contract: equally
    likely; a training set may weigh the harder two-object prompts up). The task's evaluation
    draws with the default.
    """
    if two_object_weight < 1:
        raise ValueError(f"two_object_weight must be >= 1, got {two_object_weight}")
    first = _randint(0, len(OBJECTS), generator)
    direction = DIRECTIONS[_randint(0, len(DIRECTIONS), generator)]
    if _randint(0, 1 + two_object_weight, generator) == 0:
        objects, directions = (OBJECTS[first],), (direction,)
    else:
        second = _randint(0, len(OBJECTS) - 1, generator)
        second += second >= first
        same_axis = [d for d in DIRECTIONS if axis(d) == axis(direction)]
        objects = (OBJECTS[first], OBJECTS[second])
        directions = (direction, same_axis[_randint(0, 2, generator)])
    return MovingShapesPrompt(format_prompt(objects, directions), objects, directions)


def _start_along(size: int, sign: int, speed: int, generator: torch.Generator) -> int:
    """A start coordinate along the motion that keeps the box inside for the first 12 frames."""
    limit, travel = IMAGE_SIZE - size, speed * (NUM_FRAMES - 1)
    low, high = (0, limit - travel) if sign > 0 else (travel, limit)
    return _randint(low, high + 1, generator)


def sample_motions(prompt: MovingShapesPrompt, generator: torch.Generator) -> tuple[Motion, ...]:
    """Sizes, speeds, start positions and lanes for the prompt's objects.

    Raises:
        RuntimeError: If no two separate lanes are found (cannot happen at these sizes).
    """
    n = len(prompt.objects)
    sizes = torch.randint(SIZE_RANGE[0], SIZE_RANGE[1] + 1, (n,), generator=generator).tolist()
    speeds = [SPEEDS[_randint(0, len(SPEEDS), generator)] for _ in range(n)]
    lanes = [_randint(0, IMAGE_SIZE - s + 1, generator) for s in sizes]  # across the motion
    for _ in range(_MAX_LANE_TRIES):
        if n == 1 or (lanes[0] >= lanes[1] + sizes[1] + MIN_GAP
                      or lanes[1] >= lanes[0] + sizes[0] + MIN_GAP):  # fmt: skip
            break
        lanes = [_randint(0, IMAGE_SIZE - s + 1, generator) for s in sizes]
    else:
        raise RuntimeError(f"could not find two lanes for {prompt.text!r}")
    motions = []
    for (colour, shape), direction, size, speed, lane in zip(
        prompt.objects, prompt.directions, sizes, speeds, lanes
    ):
        dx, dy = STEPS[direction]
        along = _start_along(size, dx + dy, speed, generator)
        x, y = (along, lane) if dx else (lane, along)
        motions.append(Motion(colour, shape, x, y, size, direction, speed))
    return tuple(motions)


def render(motions: tuple[Motion, ...], num_frames: int = NUM_FRAMES) -> list[Image.Image]:
    """The clip's frames: every object drawn where its motion puts it."""
    return [draw(tuple(m.placement(t) for m in motions)) for t in range(num_frames)]


def sample(
    generator: torch.Generator, num_frames: int = NUM_FRAMES, two_object_weight: int = 1
) -> tuple[MovingShapesPrompt, list[Image.Image]]:
    """A prompt (:func:`sample_prompt`) and its clip, both from ``generator``."""
    prompt = sample_prompt(generator, two_object_weight)
    return prompt, render(sample_motions(prompt, generator), num_frames)


class MovingShapesDataset(ProceduralDataset):
    """Map-style, deterministic: item i depends only on (seed, i).

    Each item is a dict with ``"frames"`` (uint8 tensor ``(T, 3, 64, 64)``) and ``"prompt"``.

    Args:
        num_samples: Number of clips.
        seed: Dataset seed.
        num_frames: Frames per clip (12 in the task; longer clips keep bouncing).
        two_object_weight: Two-object prompts are this many times as likely as one-object ones
            (1: the task's even split).
    """

    def __init__(
        self, num_samples: int, seed: int = 0, num_frames: int = NUM_FRAMES,
        two_object_weight: int = 1,
    ):  # fmt: skip
        super().__init__(num_samples, seed)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if two_object_weight < 1:
            raise ValueError(f"two_object_weight must be >= 1, got {two_object_weight}")
        self.num_frames = num_frames
        self.two_object_weight = two_object_weight

    def make_item(self, generator: torch.Generator) -> dict:
        prompt, frames = sample(generator, self.num_frames, self.two_object_weight)
        clip = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])  # (T, H, W, 3)
        return {"frames": torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),
                "prompt": prompt.text}  # fmt: skip
