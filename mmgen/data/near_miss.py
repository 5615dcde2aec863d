"""Near misses of a ``shapes`` prompt: images that must NOT match it, drawn the way a generator
goes wrong. A match scorer (``mmgen.models.match_scorer``) trains on them as hard negatives.

Two kinds, drawn 2 : 1:

- a *scene change*: one object's colour or shape changed, an object missing (pair, relation),
  an extra object (single), another count (count) or the opposite relation (relation),
  rendered like any scene;
- a *drawing defect* in an otherwise correct scene: a stray 2-pixel-thick bar or L of some
  colour, or one object with a half to two thirds of its box cut away from one side.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from mmgen.data.shapes import (
    BACKGROUND,
    IMAGE_SIZE,
    OBJECTS,
    PALETTE,
    ShapesPrompt,
    _make_prompt,
    _randint,
    render,
    sample_layout,
    shape_mask,
)

OPPOSITE = {"to the left of": "to the right of", "to the right of": "to the left of",
            "above": "below", "below": "above"}  # fmt: skip
_COLOURS = sorted(PALETTE)


def _scene(objects: list, relation: str | None = None) -> ShapesPrompt:
    """The scene that draws ``objects`` (with ``relation`` when given and they differ)."""
    if len(objects) == 1:
        return _make_prompt("single", tuple(objects))
    if len(set(objects)) == 1:
        return _make_prompt("count", tuple(objects))
    if relation is None:
        return _make_prompt("pair", tuple(objects))
    return _make_prompt("relation", tuple(objects), relation)


def _one_attribute_changed(obj: tuple[str, str], generator: torch.Generator) -> tuple[str, str]:
    """An object differing from ``obj`` in exactly one of colour or shape."""
    colour, shape = obj
    options = [o for o in OBJECTS if (o[0] == colour) != (o[1] == shape)]
    return options[_randint(0, len(options), generator)]


def near_miss_scene(prompt: ShapesPrompt, generator: torch.Generator) -> ShapesPrompt:
    """A scene one change away from ``prompt`` (see the module docstring)."""
    objects = list(prompt.objects)
    kinds = ["attribute"]
    kinds += {"single": ["extra"], "pair": ["missing"], "count": ["count"],
              "relation": ["missing", "relation"]}[prompt.family]  # fmt: skip
    kind = kinds[_randint(0, len(kinds), generator)]
    if kind == "attribute":
        if prompt.family == "count":
            return _scene([_one_attribute_changed(objects[0], generator)] * len(objects))
        i = _randint(0, len(objects), generator)
        objects[i] = _one_attribute_changed(objects[i], generator)
        return _scene(objects, prompt.relation if len(set(objects)) == 2 else None)
    if kind == "extra":
        others = [o for o in OBJECTS if o != objects[0]]
        return _scene(objects + [others[_randint(0, len(others), generator)]])
    if kind == "missing":
        return _scene([objects[_randint(0, 2, generator)]])
    if kind == "count":
        counts = [k for k in (1, 2, 3, 4) if k != len(objects)]
        return _scene([objects[0]] * counts[_randint(0, len(counts), generator)])
    return _scene(objects, OPPOSITE[prompt.relation])


def _draw_stray(canvas_HW3: np.ndarray, generator: torch.Generator) -> None:
    """Paint a 2-pixel-thick bar or L (16-40 pixels) of a random colour on empty canvas."""
    for _ in range(50):
        long_side, short_side = _randint(6, 14, generator), _randint(2, 10, generator)
        fragment = np.zeros((long_side, short_side if _randint(0, 2, generator) else 2), bool)
        fragment[:, :2] = True
        fragment[-2:, :] = True
        if _randint(0, 2, generator):
            fragment = fragment.T
        if _randint(0, 2, generator):
            fragment = fragment[::-1]
        h, w = fragment.shape
        y = _randint(1, IMAGE_SIZE - h - 1, generator)
        x = _randint(1, IMAGE_SIZE - w - 1, generator)
        if (canvas_HW3[y - 1 : y + h + 1, x - 1 : x + w + 1] == BACKGROUND).all():
            colour = _COLOURS[_randint(0, len(_COLOURS), generator)]
            canvas_HW3[y : y + h, x : x + w][fragment] = PALETTE[colour]
            return


def defect_image(prompt: ShapesPrompt, generator: torch.Generator) -> Image.Image:
    """``prompt``'s scene with one drawing defect (see the module docstring)."""
    layout = sample_layout(prompt, generator)
    canvas = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), BACKGROUND, dtype=np.uint8)  # (H, W, 3)
    broken = _randint(0, len(layout), generator) if _randint(0, 2, generator) else None
    for i, p in enumerate(layout):
        mask = shape_mask(p.shape, p.size).copy()
        if i == broken:
            cut = _randint(p.size // 2, 2 * p.size // 3 + 1, generator)
            side = _randint(0, 4, generator)
            rows_or_cols = (slice(None, cut), slice(-cut, None))[side % 2]
            mask[(rows_or_cols, slice(None)) if side < 2 else (slice(None), rows_or_cols)] = False
        canvas[p.y : p.y + p.size, p.x : p.x + p.size][mask] = PALETTE[p.colour]
    if broken is None:
        _draw_stray(canvas, generator)
    return Image.fromarray(canvas, mode="RGB")


def near_miss_image(prompt: ShapesPrompt, generator: torch.Generator) -> Image.Image:
    """A near miss of ``prompt``: a rendered scene change (2/3) or a drawing defect (1/3)."""
    if _randint(0, 3, generator) == 0:
        return defect_image(prompt, generator)
    return render(near_miss_scene(prompt, generator), generator)
