"""Near misses of a ``shapes`` prompt: images that must NOT match it, drawn the way a generator
goes wrong. A match scorer (``mmgen.models.match_scorer``) trains on them as hard negatives.

A near miss is a scene one change away from the prompt's, rendered like any scene: one object's
colour or shape changed, an object missing (pair, relation), an extra object (single), another
count (count) or the opposite relation (relation). (Drawing defects in a right scene, a stray bar
or an object with half its box cut away, were tried as a third of the negatives: the scorer
trained on them picked worse, 0.868 against 0.897 at 400 prompts x 8 candidates, seed 0.)

A *near-miss prompt* is the converse: a prompt one change away from the scene, which the
scene's image must not match (:func:`near_miss_prompt`). It costs no rendering or encoding,
and it is how relations get enough negatives: half of a relation prompt's near-miss prompts
state the relation wrongly.
"""

from __future__ import annotations

import torch
from PIL import Image

from mmgen.data.shapes import OBJECTS, ShapesPrompt, _make_prompt, _randint, render

OPPOSITE = {"to the left of": "to the right of", "to the right of": "to the left of",
            "above": "below", "below": "above"}  # fmt: skip


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


def wrong_relations(prompt: ShapesPrompt) -> list[ShapesPrompt]:
    """The two prompts that state a relation prompt's relation wrongly: the opposite relation
    and the two objects named in the other order (for two identical objects, which sampled
    prompts never have, both are their count prompt)."""
    first, second = prompt.objects
    return [_scene([first, second], OPPOSITE[prompt.relation]),
            _scene([second, first], prompt.relation)]  # fmt: skip


def near_miss_prompt(prompt: ShapesPrompt, generator: torch.Generator) -> ShapesPrompt:
    """A prompt that a scene drawn for ``prompt`` does not satisfy: the text of a
    :func:`near_miss_scene`, or for a relation prompt, half the time, the relation stated
    wrongly (the opposite relation, or the two objects named in the other order)."""
    if prompt.family == "relation" and _randint(0, 2, generator):
        return wrong_relations(prompt)[1 - _randint(0, 2, generator)]  # 1: the opposite relation
    return near_miss_scene(prompt, generator)


def near_miss_image(prompt: ShapesPrompt, generator: torch.Generator) -> Image.Image:
    """A near miss of ``prompt``: its :func:`near_miss_scene`, rendered."""
    return render(near_miss_scene(prompt, generator), generator)
