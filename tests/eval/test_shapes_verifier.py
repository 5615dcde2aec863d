"""Tests for mmgen/eval/shapes_verifier.py against the shapes generator and hand-made images."""

from collections import deque

import numpy as np
import pytest
import torch
from verifier_contract import accepted_mismatches, ground_truth_failures

from mmgen.data.shapes import (
    MULTI_SIZE_RANGE,
    PALETTE,
    SHAPE_NAMES,
    SINGLE_SIZE_RANGE,
    Placement,
    draw,
    parse_prompt,
    render,
    sample,
    sample_layout,
    sample_prompt,
)
from mmgen.eval.shapes_verifier import (
    Component,
    find_components,
    label_components,
    verify,
)

OPPOSITE = {
    "to the left of": "to the right of",
    "to the right of": "to the left of",
    "above": "below",
    "below": "above",
}


def _blank() -> np.ndarray:
    return np.full((64, 64, 3), 255, dtype=np.uint8)  # (H, W, 3)


def _paint(image_HW3: np.ndarray, x0: int, y0: int, w: int, h: int, colour: str) -> np.ndarray:
    image_HW3[y0 : y0 + h, x0 : x0 + w] = PALETTE[colour]
    return image_HW3


@pytest.fixture(scope="module")
def ground_truth():
    g = torch.Generator().manual_seed(2024)
    return [sample(g) for _ in range(2000)]


def test_verifier_passes_ground_truth_renders(ground_truth):
    failures = ground_truth_failures(ground_truth, verify)
    assert len(failures) <= 0.01 * len(ground_truth), failures[:10]


def test_verifier_rejects_renders_paired_with_another_prompt(ground_truth):
    accepted = accepted_mismatches(ground_truth, sample_prompt, verify)
    assert len(accepted) <= 0.01 * len(ground_truth), accepted


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_every_rendered_size_classifies_as_its_own_shape(shape):
    for size in range(MULTI_SIZE_RANGE[0], SINGLE_SIZE_RANGE[1] + 1):
        for x, y in ((0, 0), (64 - size, 64 - size), (17, 5)):
            components = find_components(draw((Placement("blue", shape, x, y, size),)))
            assert [(c.colour, c.shape) for c in components] == [("blue", shape)], (size, x, y)
            assert components[0].bbox == (x, y, x + size - 1, y + size - 1)


def test_component_reports_area_centroid_and_inclusive_bbox():
    image = _paint(_blank(), 10, 20, 6, 4, "green")
    (component,) = find_components(image)
    assert component == Component("green", "square", 24, (12.5, 21.5), (10, 20, 15, 23))


@pytest.mark.parametrize(
    ("width", "height", "shape"),
    [(16, 10, "square"), (17, 10, None), (10, 16, "square"), (10, 17, None), (6, 10, "square")],
)
def test_aspect_ratio_bounds_are_inclusive(width, height, shape):
    (component,) = find_components(_paint(_blank(), 3, 3, width, height, "red"))
    assert component.shape == shape


def test_find_components_accepts_pil_numpy_and_torch_images():
    prompt, image = sample(torch.Generator().manual_seed(5))
    as_numpy = np.asarray(image)
    as_torch = torch.from_numpy(as_numpy.copy()).permute(2, 0, 1)
    expected = find_components(image)
    assert expected and find_components(as_numpy) == expected
    assert find_components(as_torch) == expected
    assert verify(as_torch, prompt).passed and verify(as_numpy, prompt.text).passed


def test_find_components_rejects_wrong_layouts_and_dtypes():
    with pytest.raises(TypeError):
        find_components(torch.zeros(64, 64, 3, dtype=torch.uint8))
    with pytest.raises(TypeError):
        find_components(np.zeros((3, 64, 64), dtype=np.uint8))
    with pytest.raises(TypeError):
        find_components(torch.zeros(3, 64, 64))


def test_blank_image_fails_single_prompt():
    verdict = verify(_blank(), "a red circle")
    assert not verdict.passed and verdict.reason == "missing red circle"
    assert verdict.components == ()


def test_extra_object_fails():
    prompt = parse_prompt("a yellow square")
    image = np.array(render(prompt, torch.Generator().manual_seed(0)))
    assert verify(image, prompt).passed
    box = next(c.bbox for c in find_components(image))
    # Paint an extra 6 x 6 blue square in a corner away from the yellow one.
    x0 = 0 if box[0] >= 10 else 56
    y0 = 0 if box[1] >= 10 else 56
    verdict = verify(_paint(image, x0, y0, 6, 6, "blue"), prompt)
    assert not verdict.passed and verdict.reason == "extra blue square"


def test_wrong_count_fails_and_names_the_difference():
    image = _blank()
    for x in (2, 22, 42):
        _paint(image, x, 10, 15, 15, "purple")
    assert verify(image, "three purple squares").passed
    assert verify(image, "two purple squares").reason == "extra purple square"
    assert verify(image, "four purple squares").reason == "missing purple square"
    assert verify(image, "three red squares").reason == (
        "missing 3 red squares; extra 3 purple squares"
    )


def test_swapped_relation_fails():
    g = torch.Generator().manual_seed(8)
    checked = 0
    while checked < 40:
        prompt = sample_prompt(g)
        if prompt.relation is None:
            continue
        image = render(prompt, g)
        assert verify(image, prompt).passed
        swapped = prompt.text.replace(prompt.relation, OPPOSITE[prompt.relation])
        verdict = verify(image, swapped)
        assert not verdict.passed
        assert verdict.reason == f"relation {OPPOSITE[prompt.relation]!r} does not hold"
        checked += 1


def test_relation_needs_only_a_positive_margin():
    image = _paint(_blank(), 10, 10, 15, 15, "red")
    _paint(image, 11, 40, 15, 15, "blue")  # centroid 1 px to the right, far below
    assert verify(image, "a red square to the left of a blue square").passed
    assert verify(image, "a red square above a blue square").passed
    assert not verify(image, "a red square to the right of a blue square").passed
    assert not verify(image, "a red square below a blue square").passed


def test_malformed_shape_counts_as_extra_object():
    image = _paint(_blank(), 5, 5, 30, 10, "black")  # aspect ratio 3: no shape
    verdict = verify(image, "a black square")
    assert not verdict.passed
    assert verdict.reason == "missing black square; extra black object of no recognised shape"


def test_components_under_12_pixels_are_ignored():
    image = _paint(_blank(), 5, 5, 3, 3, "red")  # 9 px: dropped
    _paint(image, 30, 30, 20, 20, "green")
    assert verify(image, "a green square").passed
    _paint(image, 5, 40, 4, 3, "red")  # 12 px: kept
    assert not verify(image, "a green square").passed


def test_pixels_far_from_every_palette_colour_are_background():
    image = _blank()
    image[10:40, 10:40] = (128, 128, 128)  # > 80 from white and from black
    assert find_components(image) == []
    image[10:40, 10:40] = (230, 60, 60)  # within 80 of red
    assert [(c.colour, c.shape) for c in find_components(image)] == [("red", "square")]


def test_mildly_noisy_renders_still_pass():
    g = torch.Generator().manual_seed(13)
    for _ in range(50):
        prompt, image = sample(g)
        noise = torch.randint(-20, 21, (64, 64, 3), generator=g).numpy()
        noisy = np.clip(np.asarray(image).astype(int) + noise, 0, 255).astype(np.uint8)
        assert verify(noisy, prompt).passed, prompt.text


def test_diagonal_neighbours_are_separate_components():
    image = _paint(_blank(), 10, 10, 4, 4, "red")
    _paint(image, 14, 14, 4, 4, "red")  # touches the first only at a corner
    components = find_components(image)
    assert [(c.area, c.shape) for c in components] == [(16, "square"), (16, "square")]


def test_touching_different_colours_are_separate_components():
    image = _paint(_blank(), 10, 10, 10, 10, "red")
    _paint(image, 20, 10, 10, 10, "blue")
    assert verify(image, "a red square to the left of a blue square").passed


def _reference_labels(colour_HW: np.ndarray) -> np.ndarray:
    """Plain BFS labelling: each region gets the flat index of its first pixel in raster order."""
    h, w = colour_HW.shape
    labels = np.full((h, w), -1, dtype=np.int64)
    for start in range(h * w):
        sy, sx = divmod(start, w)
        if colour_HW[sy, sx] < 0 or labels[sy, sx] >= 0:
            continue
        labels[sy, sx] = start
        queue = deque([(sy, sx)])
        while queue:
            y, x = queue.popleft()
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and labels[ny, nx] < 0:
                    if colour_HW[ny, nx] == colour_HW[y, x]:
                        labels[ny, nx] = start
                        queue.append((ny, nx))
    return labels


@pytest.mark.parametrize("seed", range(6))
def test_label_components_matches_reference_bfs(seed):
    rng = np.random.default_rng(seed)
    # Blobby, snaking regions: upsampled noise over a few colours plus a background value -1.
    coarse = rng.integers(-1, 3, size=(16, 24))
    colour_HW = np.kron(coarse, np.ones((3, 2), dtype=np.int64))
    colour_HW[rng.random(colour_HW.shape) < 0.15] = -1
    labels = label_components(colour_HW)
    reference = _reference_labels(colour_HW)
    fg = colour_HW >= 0
    assert np.array_equal(labels[fg], reference[fg])
    assert (labels[~fg] == np.iinfo(np.int64).max).all()


def test_spiral_region_is_one_component():
    # A long snake forces many propagation steps.
    image = _blank()
    for row in range(2, 62, 4):
        image[row : row + 2, 2:62] = PALETTE["black"]
        connector = 60 if (row // 4) % 2 == 0 else 2
        image[row + 2 : row + 4, connector : connector + 2] = PALETTE["black"]
    image[62:, :] = 255
    components = find_components(image)
    assert len(components) == 1


def test_verify_rejects_non_shapes_prompt_text():
    with pytest.raises(ValueError, match="not a shapes prompt"):
        verify(_blank(), "a photo of a cat")


def test_verdict_lists_components_of_layout():
    prompt = parse_prompt("a red circle and a blue triangle")
    g = torch.Generator().manual_seed(21)
    state = g.get_state()
    verdict = verify(render(prompt, g), prompt)
    g.set_state(state)
    placements = sample_layout(prompt, g)
    assert verdict.passed and verdict.reason == "ok"
    got = sorted((c.colour, c.shape, c.bbox) for c in verdict.components)
    want = sorted(
        (p.colour, p.shape, (p.x, p.y, p.x + p.size - 1, p.y + p.size - 1)) for p in placements
    )
    assert got == want
