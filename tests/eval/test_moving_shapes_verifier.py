"""Tests for mmgen/eval/moving_shapes_verifier.py: ground truth passes, mismatched prompts and
broken clips fail, longer clips are scored per frame."""

import numpy as np
import pytest
import torch
from verifier_contract import accepted_mismatches, ground_truth_failures

from mmgen.data.moving_shapes import (
    NUM_FRAMES,
    Motion,
    render,
    sample,
    sample_motions,
    sample_prompt,
)
from mmgen.eval.moving_shapes_verifier import verify_clip

NUM_CLIPS = 500


@pytest.fixture(scope="module")
def ground_truth():
    g = torch.Generator().manual_seed(2024)
    return [sample(g) for _ in range(NUM_CLIPS)]


def test_the_verifier_passes_ground_truth_clips(ground_truth):
    failures = ground_truth_failures(ground_truth, verify_clip)
    assert len(failures) <= 0.01 * NUM_CLIPS, failures[:10]


def test_the_verifier_rejects_clips_paired_with_another_prompt(ground_truth):
    """Other prompts include the same objects moving the other way: motion is checked."""
    accepted = accepted_mismatches(ground_truth, sample_prompt, verify_clip)
    assert len(accepted) <= 0.01 * NUM_CLIPS, accepted


def one_object(direction="right", speed=2, x=4, y=20):
    return (Motion("red", "square", x, y, 16, direction, speed),)


def test_a_reversed_or_still_clip_fails_on_its_motion():
    frames = render(one_object())
    assert verify_clip(frames, "a red square moving right").passed
    verdict = verify_clip(frames[::-1], "a red square moving right")
    assert not verdict.passed and "moved -22.0 px right" in verdict.reason
    still = [frames[0]] * NUM_FRAMES
    assert "moved 0.0 px right" in verify_clip(still, "a red square moving right").reason
    assert verify_clip(frames, "a red square moving left").reason.startswith("red square moved")


def test_drift_across_the_motion_fails():
    frames = render(one_object())
    wobbly = [frames[0], *frames[1:6], *render(one_object(y=26))[6:]]  # jumps 6 px down
    verdict = verify_clip(wobbly, "a red square moving right")
    assert not verdict.passed and "drifted 6.0 px" in verdict.reason


def test_eleven_of_twelve_frames_suffice_and_ten_do_not():
    frames = render(one_object())
    blank = np.full((64, 64, 3), 255, dtype=np.uint8)
    one_bad = [blank, *frames[1:]]
    assert verify_clip(one_bad, "a red square moving right").passed
    two_bad = [blank, *frames[1:-1], blank]
    verdict = verify_clip(two_bad, "a red square moving right")
    assert not verdict.passed and "10 of 12 frames" in verdict.reason
    assert verdict.frames == (False,) + (True,) * 10 + (False,)
    assert "need 12" in verify_clip(frames[:6], "a red square moving right").reason


def test_longer_clips_keep_a_per_frame_measure():
    prompt, _ = sample(torch.Generator().manual_seed(3))
    motions = sample_motions(prompt, torch.Generator().manual_seed(4))
    verdict = verify_clip(render(motions, 48), prompt)
    assert verdict.passed and len(verdict.frames) == 48 and all(verdict.frames)
