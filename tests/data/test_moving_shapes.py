"""Tests for mmgen/data/moving_shapes.py: prompt grammar, motion contract, rendering, dataset."""

import numpy as np
import pytest
import torch

from mmgen.data.moving_shapes import (
    DIRECTIONS,
    NUM_FRAMES,
    SIZE_RANGE,
    SPEEDS,
    STEPS,
    MovingShapesDataset,
    axis,
    bounce,
    format_prompt,
    parse_prompt,
    render,
    sample_motions,
    sample_prompt,
)
from mmgen.data.shapes import IMAGE_SIZE, MIN_GAP


def sampled(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        prompt = sample_prompt(g)
        out.append((prompt, sample_motions(prompt, g)))
    return out


def test_prompts_round_trip_and_follow_the_grammar():
    counts = {1: 0, 2: 0}
    for prompt, _ in sampled(2000, 0):
        assert parse_prompt(prompt.text) == prompt
        assert format_prompt(prompt.objects, prompt.directions) == prompt.text
        counts[len(prompt.objects)] += 1
        if len(prompt.objects) == 2:
            assert prompt.objects[0] != prompt.objects[1]
            assert axis(prompt.directions[0]) == axis(prompt.directions[1])
    assert 0.45 < counts[1] / 2000 < 0.55  # one and two objects equally likely
    assert parse_prompt("a red circle moving left").directions == ("left",)
    text = "a red circle moving left and a blue square moving right"
    assert parse_prompt(text).objects == (("red", "circle"), ("blue", "square"))


def test_two_object_weight_draws_two_objects_more_often_and_default_keeps_the_draws():
    def two_object_share(weight: int) -> float:
        g = torch.Generator().manual_seed(1)
        return sum(len(sample_prompt(g, weight).objects) == 2 for _ in range(2000)) / 2000

    assert 0.70 < two_object_share(3) < 0.80  # 3 of 4 (binomial sd ~0.01)
    assert 0.62 < two_object_share(2) < 0.71  # 2 of 3
    weighted = MovingShapesDataset(4, seed=4, two_object_weight=1)
    plain = MovingShapesDataset(4, seed=4)
    for i in range(4):  # weight 1 is the task's even split, draw for draw
        assert weighted[i]["prompt"] == plain[i]["prompt"]
        assert torch.equal(weighted[i]["frames"], plain[i]["frames"])
    with pytest.raises(ValueError, match="two_object_weight"):
        MovingShapesDataset(4, two_object_weight=0)
    with pytest.raises(ValueError, match="two_object_weight"):
        sample_prompt(torch.Generator(), 0)


@pytest.mark.parametrize(
    "text",
    [
        "a red circle",
        "a red circle moving sideways",
        "a red circle moving left and a red circle moving right",  # identical objects
        "a red circle moving left and a blue square moving up",  # two axes
    ],
)
def test_malformed_prompts_are_refused(text):
    with pytest.raises(ValueError, match="not a moving-shapes prompt"):
        parse_prompt(text)


def test_motions_keep_the_contract_for_twelve_frames():
    for prompt, motions in sampled(1000, 1):
        for m, direction in zip(motions, prompt.directions):
            assert SIZE_RANGE[0] <= m.size <= SIZE_RANGE[1] and m.speed in SPEEDS
            assert m.direction == direction
            dx, dy = STEPS[direction]
            for t in range(NUM_FRAMES):  # inside the canvas, straight line: no bounce yet
                p = m.placement(t)
                assert 0 <= p.x <= IMAGE_SIZE - m.size and 0 <= p.y <= IMAGE_SIZE - m.size
                assert (p.x, p.y) == (m.x + dx * m.speed * t, m.y + dy * m.speed * t)
        if len(motions) == 2:  # separate lanes across the shared axis, at every frame
            a, b = motions
            if axis(a.direction) == "x":
                apart = a.y >= b.y + b.size + MIN_GAP or b.y >= a.y + a.size + MIN_GAP
            else:
                apart = a.x >= b.x + b.size + MIN_GAP or b.x >= a.x + a.size + MIN_GAP
            assert apart


def test_longer_clips_bounce_off_the_edges():
    assert [bounce(p, 10) for p in (0, 7, 10, 12, 20, 23, 31)] == [0, 7, 10, 8, 0, 3, 9]
    for _, motions in sampled(200, 2):
        for m in motions:
            positions = [m.placement(t) for t in range(60)]
            assert all(0 <= p.x <= IMAGE_SIZE - m.size for p in positions)
            assert all(0 <= p.y <= IMAGE_SIZE - m.size for p in positions)
            steps = {abs(b.x - a.x) + abs(b.y - a.y) for a, b in zip(positions, positions[1:])}
            assert max(steps) <= m.speed  # one frame never moves farther than the speed


def test_frames_draw_exact_palette_pixels_and_the_dataset_is_deterministic():
    prompt, motions = sampled(1, 3)[0]
    frames = render(motions, 5)
    assert len(frames) == 5 and frames[0].size == (64, 64)
    data = MovingShapesDataset(3, seed=4)
    item = data[1]
    assert item["frames"].shape == (NUM_FRAMES, 3, 64, 64) and item["frames"].dtype == torch.uint8
    assert torch.equal(item["frames"], MovingShapesDataset(3, seed=4)[1]["frames"])
    assert not torch.equal(item["frames"], MovingShapesDataset(3, seed=5)[1]["frames"])
    assert data[-1]["prompt"] == data[2]["prompt"] and parse_prompt(item["prompt"])
    colours = np.unique(item["frames"].permute(0, 2, 3, 1).reshape(-1, 3).numpy(), axis=0)
    assert len(colours) <= 3  # white and one or two object colours: no antialiasing
    with pytest.raises(IndexError):
        data[3]
    assert set(DIRECTIONS) == set(STEPS)
