"""Procedural generator for the built-in ``shapes`` text-to-image task.

The numbers here are the contract in ``DATASETS.md`` ("shapes (text-to-image)"): a 64 x 64 white
canvas holding one to four flat-coloured circles, squares or triangles, described by a prompt from
one of four equally likely families. Every random number is drawn from the ``torch.Generator``
passed in, so a seed fully determines a prompt and its image.

Examples:
    >>> import torch
    >>> from mmgen.data.shapes import sample
    >>> prompt, image = sample(torch.Generator().manual_seed(0))
    >>> image.size
    (64, 64)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmgen.data.procedural import ProceduralDataset

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "black": (30, 30, 30),
}
BACKGROUND: tuple[int, int, int] = (255, 255, 255)
SHAPE_NAMES = ("circle", "square", "triangle")
FAMILIES = ("single", "pair", "count", "relation")
RELATIONS = ("to the left of", "to the right of", "above", "below")
COUNT_WORDS = {"two": 2, "three": 3, "four": 4}
IMAGE_SIZE = 64

SINGLE_SIZE_RANGE = (20, 28)  # inclusive side of the bounding box when the prompt names one object
MULTI_SIZE_RANGE = (14, 20)  # inclusive side otherwise
MIN_GAP = 2  # empty pixels required between any two bounding boxes
RELATION_MARGIN = 12  # centroid distance along the relation's axis, in pixels

# Every (colour, shape) an object can be, in a fixed order so that an index drawn from the
# generator always names the same object.
OBJECTS: tuple[tuple[str, str], ...] = tuple((c, s) for c in PALETTE for s in SHAPE_NAMES)
_COUNT_NAMES = {n: word for word, n in COUNT_WORDS.items()}

_MAX_LAYOUT_RESTARTS = 10_000
_CANDIDATES_PER_OBJECT = 64


@dataclass(frozen=True)
class ShapesPrompt:
    """One prompt of the ``shapes`` task.

    Attributes:
        text: The prompt string, exactly as formatted by :func:`format_prompt`.
        family: One of :data:`FAMILIES`.
        objects: ``(colour, shape)`` per object in prompt order; the count family repeats its
            object ``n`` times.
        relation: The relation phrase (one of :data:`RELATIONS`) for the relation family, else
            ``None``.
    """

    text: str
    family: str
    objects: tuple[tuple[str, str], ...]
    relation: str | None


@dataclass(frozen=True)
class Placement:
    """Where one object is drawn: a ``size`` x ``size`` bounding box with top-left ``(x, y)``."""

    colour: str
    shape: str
    x: int
    y: int
    size: int


def format_prompt(
    family: str, objects: tuple[tuple[str, str], ...], relation: str | None = None
) -> str:
    """Formats a prompt string; :func:`parse_prompt` is its inverse.

    Args:
        family: One of :data:`FAMILIES`.
        objects: ``(colour, shape)`` per object; one for ``single``, two for ``pair`` and
            ``relation``, two to four identical ones for ``count``.
        relation: One of :data:`RELATIONS`, required for (and only for) the relation family.

    Returns:
        The prompt text, e.g. ``"a red circle to the left of a blue square"``.
    """
    phrases = [f"a {colour} {shape}" for colour, shape in objects]
    if family == "single" and len(objects) == 1:
        return phrases[0]
    if family == "pair" and len(objects) == 2:
        return f"{phrases[0]} and {phrases[1]}"
    if family == "count" and len(objects) in _COUNT_NAMES and len(set(objects)) == 1:
        colour, shape = objects[0]
        return f"{_COUNT_NAMES[len(objects)]} {colour} {shape}s"
    if family == "relation" and len(objects) == 2 and relation in RELATIONS:
        return f"{phrases[0]} {relation} {phrases[1]}"
    raise ValueError(
        f"cannot format a shapes prompt from family={family!r}, objects={objects!r}, "
        f"relation={relation!r}"
    )


def _make_prompt(
    family: str, objects: tuple[tuple[str, str], ...], relation: str | None = None
) -> ShapesPrompt:
    return ShapesPrompt(format_prompt(family, objects, relation), family, objects, relation)


_COLOUR_RE = "(" + "|".join(PALETTE) + ")"
_SHAPE_RE = "(" + "|".join(SHAPE_NAMES) + ")"
_OBJECT_RE = f"a {_COLOUR_RE} {_SHAPE_RE}"
_PATTERNS = {
    "single": re.compile(f"{_OBJECT_RE}"),
    "pair": re.compile(f"{_OBJECT_RE} and {_OBJECT_RE}"),
    "count": re.compile(f"({'|'.join(COUNT_WORDS)}) {_COLOUR_RE} {_SHAPE_RE}s"),
    "relation": re.compile(f"{_OBJECT_RE} ({'|'.join(RELATIONS)}) {_OBJECT_RE}"),
}


def parse_prompt(text: str) -> ShapesPrompt:
    """Parses a prompt string back into a :class:`ShapesPrompt`.

    Args:
        text: A prompt exactly as :func:`format_prompt` writes it.

    Returns:
        The parsed prompt; ``parse_prompt(p.text) == p`` for every generated prompt ``p``.

    Raises:
        ValueError: If ``text`` is not a ``shapes`` prompt, including pair and relation prompts
            whose two objects are identical (the contract requires them to differ).
    """
    for family, pattern in _PATTERNS.items():
        match = pattern.fullmatch(text)
        if match is None:
            continue
        groups = match.groups()
        if family == "single":
            return _make_prompt(family, (groups[0:2],))
        if family == "count":
            return _make_prompt(family, (groups[1:3],) * COUNT_WORDS[groups[0]])
        if family == "pair":
            objects, relation = (groups[0:2], groups[2:4]), None
        else:
            objects, relation = (groups[0:2], groups[3:5]), groups[2]
        if objects[0] == objects[1]:
            raise ValueError(f"not a shapes prompt (both objects are identical): {text!r}")
        return _make_prompt(family, objects, relation)
    raise ValueError(f"not a shapes prompt: {text!r}")


def _randint(low: int, high: int, generator: torch.Generator) -> int:
    """Uniform integer in ``[low, high)`` drawn from ``generator``."""
    return int(torch.randint(low, high, (1,), generator=generator).item())


def check_family_weights(family_weights: dict[str, int] | None) -> None:
    """Raises ``ValueError`` unless ``family_weights`` is None or maps families to ints >= 1."""
    if family_weights is None:
        return
    if not isinstance(family_weights, dict):
        raise ValueError(f"family_weights must map families to ints, got {family_weights!r}")
    unknown = sorted(set(family_weights) - set(FAMILIES))
    if unknown:
        raise ValueError(f"family_weights: unknown families {unknown}; families are {FAMILIES}")
    for family, weight in family_weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"family_weights[{family!r}] must be an int >= 1, got {weight!r}")


def sample_family(generator: torch.Generator, family_weights: dict[str, int] | None = None) -> str:
    """One family, each as likely as its weight (a family left out weighs 1).

    All weights 1 (the default) is the task's contract, the four families equally likely, and
    draws exactly what an unweighted draw does; a training set may weigh the hard families up.
    """
    check_family_weights(family_weights)
    weights = [(family_weights or {}).get(family, 1) for family in FAMILIES]
    ticket = _randint(0, sum(weights), generator)
    for family, weight in zip(FAMILIES, weights):
        if ticket < weight:
            return family
        ticket -= weight
    raise AssertionError("unreachable: the ticket is below the weights' sum")


def sample_prompt(
    generator: torch.Generator, family_weights: dict[str, int] | None = None
) -> ShapesPrompt:
    """Samples a prompt; the four families are equally likely unless weighed.

    Args:
        generator: The only source of randomness.
        family_weights: Optional ``{family: int >= 1}`` (:func:`sample_family`); the task's
            evaluation draws with the default, every family equally likely.

    Returns:
        A :class:`ShapesPrompt`. Pair and relation objects always differ in colour or shape.
    """
    family = sample_family(generator, family_weights)
    first = _randint(0, len(OBJECTS), generator)
    if family == "single":
        return _make_prompt(family, (OBJECTS[first],))
    if family == "count":
        n = _randint(2, 5, generator)
        return _make_prompt(family, (OBJECTS[first],) * n)
    # Draw the second object from the other len(OBJECTS) - 1 so it always differs from the first.
    second = _randint(0, len(OBJECTS) - 1, generator)
    second += second >= first
    objects = (OBJECTS[first], OBJECTS[second])
    if family == "pair":
        return _make_prompt(family, objects)
    relation = RELATIONS[_randint(0, len(RELATIONS), generator)]
    return _make_prompt(family, objects, relation)


@cache
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a filled shape filling its bounding box, no antialiasing.

    Squares are the whole box; circles are PIL's inscribed ellipse; triangles are isosceles with
    the base along the bottom row and the apex at the top centre. The mask is read-only (cached).
    """
    if shape not in SHAPE_NAMES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPE_NAMES}")
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    last = size - 1  # PIL box coordinates are inclusive
    if shape == "circle":
        draw.ellipse([0, 0, last, last], fill=255)
    elif shape == "square":
        draw.rectangle([0, 0, last, last], fill=255)
    else:
        draw.polygon([(0, last), (last, last), (last / 2, 0)], fill=255)
    mask = np.asarray(canvas) > 0  # (size, size)
    mask.flags.writeable = False
    return mask


@cache
def _mask_centroid(shape: str, size: int) -> tuple[float, float]:
    ys, xs = np.nonzero(shape_mask(shape, size))
    return float(xs.mean()), float(ys.mean())


def placement_centroid(placement: Placement) -> tuple[float, float]:
    """Pixel centroid ``(x, y)`` of a placed shape, as the verifier measures it."""
    cx, cy = _mask_centroid(placement.shape, placement.size)
    return placement.x + cx, placement.y + cy


def _relation_margin(relation: str, first, second):
    """Signed distance by which ``first`` lies in the ``relation`` direction from ``second``."""
    if relation == "to the left of":
        return second[0] - first[0]
    if relation == "to the right of":
        return first[0] - second[0]
    if relation == "above":  # image y grows downward
        return second[1] - first[1]
    if relation == "below":
        return first[1] - second[1]
    raise ValueError(f"unknown relation {relation!r}; expected one of {RELATIONS}")


def sample_layout(prompt: ShapesPrompt, generator: torch.Generator) -> tuple[Placement, ...]:
    """Samples sizes and positions for the prompt's objects by rejection sampling.

    Sizes are uniform in ``SINGLE_SIZE_RANGE`` for one object, else ``MULTI_SIZE_RANGE``. Every
    box lies fully inside the canvas with at least ``MIN_GAP`` empty pixels to every other box;
    for the relation family the first object's centroid is at least ``RELATION_MARGIN`` pixels
    from the second's in the named direction.

    Args:
        prompt: The prompt whose objects to place.
        generator: The only source of randomness.

    Returns:
        One :class:`Placement` per object, in prompt order.
    """
    low, high = SINGLE_SIZE_RANGE if len(prompt.objects) == 1 else MULTI_SIZE_RANGE
    sizes = torch.randint(low, high + 1, (len(prompt.objects),), generator=generator).tolist()
    for _ in range(_MAX_LAYOUT_RESTARTS):
        placements = _try_layout(prompt, sizes, generator)
        if placements is not None:
            return placements
    raise RuntimeError(f"could not lay out {prompt.text!r} with sizes {sizes}")


def _try_layout(
    prompt: ShapesPrompt, sizes: list[int], generator: torch.Generator
) -> tuple[Placement, ...] | None:
    """Places objects one at a time from a batch of candidates; ``None`` asks for a restart."""
    placements: list[Placement] = []
    for (colour, shape), size in zip(prompt.objects, sizes, strict=True):
        # (K, 2) candidate top-left corners, each keeping the box inside the canvas.
        xy = torch.randint(
            0, IMAGE_SIZE - size + 1, (_CANDIDATES_PER_OBJECT, 2), generator=generator
        ).numpy()
        ok = np.ones(len(xy), dtype=bool)
        for other in placements:
            apart_x = (xy[:, 0] >= other.x + other.size + MIN_GAP) | (
                other.x >= xy[:, 0] + size + MIN_GAP
            )
            apart_y = (xy[:, 1] >= other.y + other.size + MIN_GAP) | (
                other.y >= xy[:, 1] + size + MIN_GAP
            )
            ok &= apart_x | apart_y
        if prompt.relation is not None and placements:
            cx, cy = _mask_centroid(shape, size)
            candidate_centroids = (xy[:, 0] + cx, xy[:, 1] + cy)  # candidates are the 2nd object
            margin = _relation_margin(
                prompt.relation, placement_centroid(placements[0]), candidate_centroids
            )
            ok &= margin >= RELATION_MARGIN
        valid = np.flatnonzero(ok)
        if len(valid) == 0:
            return None
        x, y = (int(v) for v in xy[valid[0]])
        placements.append(Placement(colour, shape, x, y, size))
    return tuple(placements)


def draw(placements: tuple[Placement, ...]) -> Image.Image:
    """Draws placed shapes on a white ``IMAGE_SIZE`` x ``IMAGE_SIZE`` RGB canvas.

    Pixels take exact palette colours; there is no antialiasing.
    """
    canvas = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), BACKGROUND, dtype=np.uint8)  # (H, W, 3)
    for p in placements:
        box = canvas[p.y : p.y + p.size, p.x : p.x + p.size]
        box[shape_mask(p.shape, p.size)] = PALETTE[p.colour]
    return Image.fromarray(canvas, mode="RGB")


def render(prompt: ShapesPrompt, generator: torch.Generator) -> Image.Image:
    """Renders one ground-truth image for ``prompt``.

    Args:
        prompt: The prompt to draw.
        generator: The only source of randomness (sizes and positions).

    Returns:
        A 64 x 64 RGB PIL image: white background, exact palette colours, no antialiasing.
    """
    return draw(sample_layout(prompt, generator))


def sample(
    generator: torch.Generator, family_weights: dict[str, int] | None = None
) -> tuple[ShapesPrompt, Image.Image]:
    """Samples a prompt (:func:`sample_prompt`) and renders it, both from ``generator``."""
    prompt = sample_prompt(generator, family_weights)
    return prompt, render(prompt, generator)


class ShapesDataset(ProceduralDataset):
    """Map-style, deterministic: item i depends only on (seed, i).

    Each item is a dict with ``"image"`` (uint8 tensor ``(3, 64, 64)``), ``"prompt"`` (str) and
    ``"family"`` (str).

    Args:
        num_samples: Number of items.
        seed: Dataset seed; different seeds give different items.
        family_weights: Optional ``{family: int >= 1}``: a family is drawn as often as its
            weight (None: the task's even split).
        near_miss: draw, for each item's prompt, a near miss instead of its scene
            (``mmgen.data.near_miss``): an image that must not match the prompt (a match
            scorer's hard negatives). Item i keeps the prompt of the plain set's item i.

    Examples:
        >>> ds = ShapesDataset(8, seed=1)
        >>> ds[0]["image"].shape
        torch.Size([3, 64, 64])
    """

    def __init__(
        self,
        num_samples: int,
        seed: int = 0,
        family_weights: dict[str, int] | None = None,
        near_miss: bool = False,
    ):
        super().__init__(num_samples, seed)
        check_family_weights(family_weights)
        self.family_weights = dict(family_weights) if family_weights else None
        self.near_miss = near_miss

    def make_item(self, generator: torch.Generator) -> dict:
        prompt, image = sample(generator, self.family_weights)
        if self.near_miss:  # drawn after the scene, so the prompt is the plain set's
            from mmgen.data.near_miss import near_miss_image

            image = near_miss_image(prompt, generator)
        image_CHW = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1)
        return {"image": image_CHW.contiguous(), "prompt": prompt.text, "family": prompt.family}
