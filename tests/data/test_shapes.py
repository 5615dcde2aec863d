"""Tests for mmgen/data/shapes.py: prompt grammar, layout constraints, rendering and dataset."""

from collections import Counter

import numpy as np
import pytest
import torch

from mmgen.data.shapes import (
    FAMILIES,
    IMAGE_SIZE,
    MULTI_SIZE_RANGE,
    OBJECTS,
    PALETTE,
    RELATIONS,
    SHAPE_NAMES,
    SINGLE_SIZE_RANGE,
    ShapesDataset,
    ShapesPrompt,
    draw,
    format_prompt,
    parse_prompt,
    render,
    sample,
    sample_family,
    sample_layout,
    sample_prompt,
    shape_mask,
)

WHITE = (255, 255, 255)


def _all_prompts() -> list[ShapesPrompt]:
    prompts = [ShapesPrompt(format_prompt("single", (o,)), "single", (o,), None) for o in OBJECTS]
    for n in (2, 3, 4):
        for o in OBJECTS:
            prompts.append(ShapesPrompt(format_prompt("count", (o,) * n), "count", (o,) * n, None))
    for a in OBJECTS:
        for b in OBJECTS:
            if a == b:
                continue
            prompts.append(ShapesPrompt(format_prompt("pair", (a, b)), "pair", (a, b), None))
            for r in RELATIONS:
                text = format_prompt("relation", (a, b), r)
                prompts.append(ShapesPrompt(text, "relation", (a, b), r))
    return prompts


def _sampled(n: int, seed: int) -> list[tuple[ShapesPrompt, torch.Generator]]:
    g = torch.Generator().manual_seed(seed)
    return [(sample_prompt(g), g) for _ in range(n)]


def test_palette_matches_contract():
    assert PALETTE == {
        "red": (220, 40, 40),
        "green": (40, 170, 70),
        "blue": (40, 90, 220),
        "yellow": (235, 200, 30),
        "purple": (140, 60, 180),
        "black": (30, 30, 30),
    }
    assert SHAPE_NAMES == ("circle", "square", "triangle")
    assert IMAGE_SIZE == 64


def test_prompt_text_follows_contract_templates():
    assert format_prompt("single", (("red", "circle"),)) == "a red circle"
    pair = (("red", "circle"), ("blue", "square"))
    assert format_prompt("pair", pair) == "a red circle and a blue square"
    assert format_prompt("count", (("green", "triangle"),) * 3) == "three green triangles"
    assert (
        format_prompt("relation", pair, "to the left of")
        == "a red circle to the left of a blue square"
    )


def test_parse_prompt_round_trips_every_prompt():
    prompts = _all_prompts()
    assert len(prompts) == 18 + 3 * 18 + 18 * 17 * 5
    for prompt in prompts:
        assert parse_prompt(prompt.text) == prompt


def test_parse_prompt_round_trips_sampled_prompts():
    g = torch.Generator().manual_seed(3)
    for _ in range(500):
        prompt = sample_prompt(g)
        assert parse_prompt(prompt.text) == prompt


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a pink circle",
        "a red hexagon",
        "A red circle",
        "a red circle ",
        "a red circles",
        "two red circle",
        "five red circles",
        "one red circle",
        "a red circle and a red circle",
        "a red circle above a red circle",
        "a red circle left of a blue square",
        "a red circle and a blue square and a green triangle",
    ],
)
def test_parse_prompt_rejects_non_shapes_text_naming_it(text):
    with pytest.raises(ValueError, match="not a shapes prompt") as info:
        parse_prompt(text)
    assert repr(text) in str(info.value)


def test_sampled_prompts_follow_family_rules():
    for prompt, _ in _sampled(1000, seed=5):
        n = len(prompt.objects)
        if prompt.family == "single":
            assert n == 1 and prompt.relation is None
        elif prompt.family == "count":
            assert n in (2, 3, 4) and len(set(prompt.objects)) == 1 and prompt.relation is None
        elif prompt.family == "pair":
            assert n == 2 and prompt.objects[0] != prompt.objects[1] and prompt.relation is None
        else:
            assert n == 2 and prompt.objects[0] != prompt.objects[1]
            assert prompt.relation in RELATIONS


def test_family_frequencies_are_roughly_equal():
    counts = Counter(p.family for p, _ in _sampled(2000, seed=11))
    assert set(counts) == set(FAMILIES)
    for family in FAMILIES:
        assert 410 <= counts[family] <= 590, counts  # expected 500, std ~19


def test_family_weights_set_each_familys_share():
    generator = torch.Generator().manual_seed(5)
    weights = {"pair": 3, "count": 2, "relation": 4}  # single left out: weighs 1
    counts = Counter(sample_prompt(generator, weights).family for _ in range(5000))
    for family, share in {"single": 0.1, "pair": 0.3, "count": 0.2, "relation": 0.4}.items():
        assert abs(counts[family] / 5000 - share) < 0.025, counts  # std <= 0.007


def test_unit_family_weights_draw_exactly_the_even_split():
    """The default (and all-ones weights) is one uniform draw over the families, as before the
    weights existed, so existing data sets and their cache keys keep every item."""
    draws = {}
    for weights in (None, {}, {"pair": 1}, dict.fromkeys(FAMILIES, 1)):
        generator = torch.Generator().manual_seed(8)
        draws[str(weights)] = [sample_family(generator, weights) for _ in range(200)]
    generator = torch.Generator().manual_seed(8)
    uniform = [FAMILIES[int(torch.randint(0, 4, (1,), generator=generator))] for _ in range(200)]
    assert all(families == uniform for families in draws.values())
    weighted = ShapesDataset(10, seed=3, family_weights={"single": 1})
    plain = ShapesDataset(10, seed=3)
    assert all(torch.equal(weighted[i]["image"], plain[i]["image"]) for i in range(10))


@pytest.mark.parametrize(
    "weights, message",
    [({"pairs": 2}, r"unknown families \['pairs'\]"),
     ({"count": 0}, r"family_weights\['count'\] must be an int >= 1, got 0"),
     ({"count": True}, r"must be an int >= 1, got True")],
)  # fmt: skip
def test_bad_family_weights_are_refused_naming_them(weights, message):
    with pytest.raises(ValueError, match=message):
        sample_prompt(torch.Generator().manual_seed(0), weights)
    with pytest.raises(ValueError, match=message):
        ShapesDataset(4, family_weights=weights)


def test_sampling_uses_only_the_given_generator():
    torch.manual_seed(0)
    first = sample(torch.Generator().manual_seed(42))
    torch.manual_seed(1)
    torch.rand(10)
    second = sample(torch.Generator().manual_seed(42))
    assert first[0] == second[0]
    assert np.array_equal(np.asarray(first[1]), np.asarray(second[1]))


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_shape_mask_fills_its_bounding_box_exactly(shape):
    for size in range(MULTI_SIZE_RANGE[0], SINGLE_SIZE_RANGE[1] + 1):
        mask = shape_mask(shape, size)
        assert mask.shape == (size, size)
        assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    tri = shape_mask("triangle", 15)
    assert tri[-1].all() and tri[0].sum() == 1 and tri[0, 7]  # full base, apex at top centre


def _check_layout(prompt: ShapesPrompt, placements) -> None:
    assert [(p.colour, p.shape) for p in placements] == list(prompt.objects)
    low, high = (20, 28) if len(placements) == 1 else (14, 20)
    for p in placements:
        assert low <= p.size <= high
        assert 0 <= p.x and p.x + p.size <= IMAGE_SIZE
        assert 0 <= p.y and p.y + p.size <= IMAGE_SIZE
    for i, a in enumerate(placements):
        for b in placements[i + 1 :]:
            gap_x = max(b.x - (a.x + a.size), a.x - (b.x + b.size))
            gap_y = max(b.y - (a.y + a.size), a.y - (b.y + b.size))
            assert max(gap_x, gap_y) >= 2, (prompt.text, a, b)


def _pixel_centroid(image_HW3: np.ndarray, p) -> tuple[float, float]:
    box = image_HW3[p.y : p.y + p.size, p.x : p.x + p.size]
    ys, xs = np.nonzero((box == PALETTE[p.colour]).all(axis=-1))
    return p.x + xs.mean(), p.y + ys.mean()


def test_layouts_respect_sizes_bounds_gaps_and_relation_margins():
    seen_sizes = set()
    for prompt, g in _sampled(1500, seed=7):
        placements = sample_layout(prompt, g)
        _check_layout(prompt, placements)
        seen_sizes.update((len(placements) == 1, p.size) for p in placements)
        if prompt.relation is None:
            continue
        image = np.asarray(draw(placements))
        (x1, y1), (x2, y2) = (_pixel_centroid(image, p) for p in placements)
        margin = {
            "to the left of": x2 - x1,
            "to the right of": x1 - x2,
            "above": y2 - y1,
            "below": y1 - y2,
        }[prompt.relation]
        assert margin >= 12, (prompt.text, placements)  # contract number, not the constant
    # Both size ranges are used end to end.
    assert {s for single, s in seen_sizes if single} == set(range(20, 29))
    assert {s for single, s in seen_sizes if not single} == set(range(14, 21))


def test_four_largest_objects_can_always_be_placed():
    prompt = parse_prompt("four red squares")
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        _check_layout(prompt, sample_layout(prompt, g))


def test_render_draws_exact_palette_colours_inside_boxes_on_white():
    for prompt, g in _sampled(300, seed=9):
        state = g.get_state()
        image = render(prompt, g)
        assert image.mode == "RGB" and image.size == (IMAGE_SIZE, IMAGE_SIZE)
        g.set_state(state)
        placements = sample_layout(prompt, g)
        pixels = np.asarray(image)
        inside = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
        for p in placements:
            box = pixels[p.y : p.y + p.size, p.x : p.x + p.size]
            expected = np.where(shape_mask(p.shape, p.size)[..., None], PALETTE[p.colour], WHITE)
            assert np.array_equal(box, expected)
            inside[p.y : p.y + p.size, p.x : p.x + p.size] = True
        assert (pixels[~inside] == 255).all()
        colours = {tuple(int(v) for v in c) for c in np.unique(pixels.reshape(-1, 3), axis=0)}
        assert colours <= {WHITE, *PALETTE.values()}


def test_dataset_items_have_contract_format():
    ds = ShapesDataset(5, seed=0)
    assert len(ds) == 5
    item = ds[0]
    assert set(item) == {"image", "prompt", "family"}
    assert item["image"].dtype == torch.uint8 and item["image"].shape == (3, 64, 64)
    assert parse_prompt(item["prompt"]).family == item["family"]
    assert torch.equal(ds[-1]["image"], ds[4]["image"])
    with pytest.raises(IndexError):
        ds[5]


def test_dataset_is_deterministic_per_seed_and_index():
    a, b = ShapesDataset(20, seed=3), ShapesDataset(20, seed=3)
    for i in (0, 7, 19):
        torch.manual_seed(i)  # global RNG must not matter
        x = a[i]
        assert torch.equal(x["image"], b[i]["image"]) and x["prompt"] == b[i]["prompt"]
        assert torch.equal(x["image"], a[i]["image"])


def test_dataset_items_differ_across_indices_and_seeds():
    ds = ShapesDataset(50, seed=0)
    images = [ds[i]["image"] for i in range(50)]
    distinct = {bytes(img.numpy()) for img in images}
    assert len(distinct) == 50
    other = ShapesDataset(50, seed=1)
    assert sum(torch.equal(ds[i]["image"], other[i]["image"]) for i in range(50)) == 0


def test_dataset_accepts_large_seeds():
    item = ShapesDataset(2, seed=2**62)[1]
    assert item["image"].shape == (3, 64, 64)
