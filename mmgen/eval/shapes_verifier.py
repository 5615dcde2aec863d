"""Exact verifier for the built-in ``shapes`` text-to-image task.

Implements the verifier in ``DATASETS.md`` ("shapes (text-to-image)"): snap each pixel to the
nearest palette colour (white included), treat pixels farther than 80 from every palette colour as
background, take 4-connected components per colour, drop those under 12 px, classify the rest by
fill and aspect ratio, and compare the multiset of ``(colour, shape)`` with the prompt's objects.

Threshold boundaries: a fill exactly at 0.88 is a square and exactly at 0.66 a circle; an aspect
ratio exactly at 0.6 or 1.6 is still a shape.

Examples:
    >>> import torch
    >>> from mmgen.data.shapes import sample
    >>> prompt, image = sample(torch.Generator().manual_seed(0))
    >>> verify(image, prompt).passed
    True
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from mmgen.data.shapes import BACKGROUND, PALETTE, ShapesPrompt, parse_prompt

BACKGROUND_DISTANCE = 80.0  # farther than this from every palette colour -> background
MIN_AREA = 12  # components with fewer pixels are dropped
SQUARE_MIN_FILL = 0.88
CIRCLE_MIN_FILL = 0.66
TRIANGLE_MIN_FILL = 0.35
ASPECT_RANGE = (0.6, 1.6)  # bounding-box width / height

# Index 0 is white; indices 1.. follow PALETTE's order.
_COLOUR_NAMES: tuple[str, ...] = ("white", *PALETTE)
_COLOURS_K3 = np.array([BACKGROUND, *PALETTE.values()], dtype=np.int32)  # (K, 3)
_NO_LABEL = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Component:
    """One 4-connected region of a single palette colour.

    Attributes:
        colour: Palette colour name.
        shape: ``"circle"``, ``"square"``, ``"triangle"``, or ``None`` when no shape fits.
        area: Number of pixels.
        centroid: Mean pixel position ``(x, y)``; y grows downward.
        bbox: Inclusive bounding box ``(x0, y0, x1, y1)``.
    """

    colour: str
    shape: str | None
    area: int
    centroid: tuple[float, float]
    bbox: tuple[int, int, int, int]


@dataclass(frozen=True)
class Verdict:
    """Outcome of :func:`verify`.

    Attributes:
        passed: Whether the image satisfies the prompt.
        reason: ``"ok"`` when passed, else every failure found, separated by ``"; "``.
        components: The components found (those of at least ``MIN_AREA`` pixels).
    """

    passed: bool
    reason: str
    components: tuple[Component, ...]


def _to_hw3(image) -> np.ndarray:
    """Returns a uint8 ``(H, W, 3)`` array from a PIL image, numpy (H, W, 3) or torch (3, H, W)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3:
            raise TypeError(
                f"expected a torch uint8 tensor of shape (3, H, W), got {image.dtype} "
                f"{tuple(image.shape)}"
            )
        return image.detach().cpu().permute(1, 2, 0).numpy()
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise TypeError(
                f"expected a numpy uint8 array of shape (H, W, 3), got {image.dtype} {image.shape}"
            )
        return image
    raise TypeError(f"expected a PIL image, numpy array or torch tensor, got {type(image)}")


def _palette_indices(image_HW3: np.ndarray) -> np.ndarray:
    """Nearest palette index per pixel (0 = white), or -1 for background."""
    diff_HWK3 = image_HW3[:, :, None, :].astype(np.int32) - _COLOURS_K3
    dist2_HWK = (diff_HWK3 * diff_HWK3).sum(axis=-1)
    index_HW = dist2_HWK.argmin(axis=-1)
    far = np.take_along_axis(dist2_HWK, index_HW[..., None], axis=-1)[..., 0] > (
        BACKGROUND_DISTANCE**2
    )
    index_HW[far] = -1
    return index_HW


def label_components(colour_HW: np.ndarray) -> np.ndarray:
    """Labels 4-connected regions of equal non-negative value.

    Pixels with a negative value get ``_NO_LABEL``. Every other pixel gets the flat index of the
    smallest-index pixel of its region, found by min-label propagation with pointer jumping.

    Args:
        colour_HW: Integer ``(H, W)`` array; equal values are the same colour.

    Returns:
        int64 ``(H, W)`` labels.
    """
    h, w = colour_HW.shape
    fg_HW = colour_HW >= 0
    label_HW = np.where(fg_HW, np.arange(h * w, dtype=np.int64).reshape(h, w), _NO_LABEL)
    # Edges between 4-neighbours of the same colour, right (h, w-1) and down (h-1, w).
    right = fg_HW[:, :-1] & (colour_HW[:, :-1] == colour_HW[:, 1:])
    down = fg_HW[:-1, :] & (colour_HW[:-1, :] == colour_HW[1:, :])
    flat = label_HW.reshape(-1)  # view: updates below write through to label_HW
    while True:
        new_HW = label_HW.copy()
        across = np.minimum(label_HW[:, :-1], label_HW[:, 1:])
        new_HW[:, :-1][right] = np.minimum(new_HW[:, :-1], across)[right]
        new_HW[:, 1:][right] = np.minimum(new_HW[:, 1:], across)[right]
        along = np.minimum(label_HW[:-1, :], label_HW[1:, :])
        new_HW[:-1, :][down] = np.minimum(new_HW[:-1, :], along)[down]
        new_HW[1:, :][down] = np.minimum(new_HW[1:, :], along)[down]
        # Labels always point at a pixel of the same region, so following them stays in it.
        new_flat = new_HW.reshape(-1)
        fg = new_flat != _NO_LABEL
        for _ in range(4):
            new_flat[fg] = new_flat[new_flat[fg]]
        if np.array_equal(new_flat, flat):
            return label_HW
        flat[:] = new_flat


def _classify(area: int, width: int, height: int) -> str | None:
    aspect = width / height
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        return None
    fill = area / (width * height)
    if fill >= SQUARE_MIN_FILL:
        return "square"
    if fill >= CIRCLE_MIN_FILL:
        return "circle"
    if fill >= TRIANGLE_MIN_FILL:
        return "triangle"
    return None


def find_components(image) -> list[Component]:
    """Finds the classified colour components of an image.

    Args:
        image: PIL image, uint8 numpy ``(H, W, 3)`` or uint8 torch ``(3, H, W)``.

    Returns:
        Components of at least ``MIN_AREA`` pixels (white excluded), ordered by their first pixel
        in raster order.
    """
    index_HW = _palette_indices(_to_hw3(image))
    index_HW[index_HW == 0] = -1  # white is never an object
    label_HW = label_components(index_HW)
    fg = label_HW != _NO_LABEL
    if not fg.any():
        return []
    ys, xs = np.nonzero(fg)
    roots, inverse, areas = np.unique(label_HW[fg], return_inverse=True, return_counts=True)
    n = len(roots)
    sum_x = np.bincount(inverse, weights=xs, minlength=n)
    sum_y = np.bincount(inverse, weights=ys, minlength=n)
    x0 = np.full(n, np.iinfo(np.int64).max)
    y0 = np.full(n, np.iinfo(np.int64).max)
    x1 = np.full(n, -1)
    y1 = np.full(n, -1)
    np.minimum.at(x0, inverse, xs)
    np.minimum.at(y0, inverse, ys)
    np.maximum.at(x1, inverse, xs)
    np.maximum.at(y1, inverse, ys)
    colour_of_root = index_HW.reshape(-1)[roots]
    components = []
    for i in np.flatnonzero(areas >= MIN_AREA):
        area = int(areas[i])
        width, height = int(x1[i] - x0[i] + 1), int(y1[i] - y0[i] + 1)
        components.append(
            Component(
                colour=_COLOUR_NAMES[colour_of_root[i]],
                shape=_classify(area, width, height),
                area=area,
                centroid=(float(sum_x[i] / area), float(sum_y[i] / area)),
                bbox=(int(x0[i]), int(y0[i]), int(x1[i]), int(y1[i])),
            )
        )
    return components


def _describe(obj: tuple[str, str | None], count: int) -> str:
    colour, shape = obj
    noun = shape if shape is not None else "object of no recognised shape"
    if count == 1:
        return f"{colour} {noun}"
    plural = f"{shape}s" if shape is not None else "objects of no recognised shape"
    return f"{count} {colour} {plural}"


def _relation_holds(relation: str, first: tuple[float, float], second: tuple[float, float]):
    if relation == "to the left of":
        return first[0] < second[0]
    if relation == "to the right of":
        return first[0] > second[0]
    if relation == "above":  # image y grows downward
        return first[1] < second[1]
    if relation == "below":
        return first[1] > second[1]
    raise ValueError(f"unknown relation {relation!r}")


def object_problems(components, objects) -> list[str]:
    """What keeps the components' ``(colour, shape)`` multiset from equalling ``objects``
    (``missing ...`` / ``extra ...``); empty when they match exactly."""
    wanted = Counter(objects)
    found = Counter((c.colour, c.shape) for c in components)
    problems = [f"missing {_describe(obj, n)}" for obj, n in (wanted - found).items()]
    return problems + [f"extra {_describe(obj, n)}" for obj, n in (found - wanted).items()]


def verify(image, prompt: str | ShapesPrompt) -> Verdict:
    """Decides whether an image satisfies a ``shapes`` prompt.

    Args:
        image: PIL image, uint8 numpy ``(H, W, 3)`` or uint8 torch ``(3, H, W)``.
        prompt: Prompt text or a parsed :class:`ShapesPrompt`.

    Returns:
        A :class:`Verdict`; it passes iff the ``(colour, shape)`` multiset of the components equals
        the prompt's objects exactly and, for relation prompts, the first object's centroid lies
        in the named direction from the second's.

    Raises:
        ValueError: If ``prompt`` is text that is not a ``shapes`` prompt.
    """
    if isinstance(prompt, str):
        prompt = parse_prompt(prompt)
    components = tuple(find_components(image))
    problems = object_problems(components, prompt.objects)
    if not problems and prompt.relation is not None:
        # The multiset matched and the two objects differ, so each names exactly one component.
        first, second = (
            next(c for c in components if (c.colour, c.shape) == obj) for obj in prompt.objects
        )
        if not _relation_holds(prompt.relation, first.centroid, second.centroid):
            problems.append(f"relation {prompt.relation!r} does not hold")
    return Verdict(not problems, "; ".join(problems) or "ok", components)
