"""Tests for mmgen/data/tones.py and mmgen/eval/tones_verifier.py: the contract's numbers, the
prompt grammar, and the verifier's 99% / 99% on 2,000 random prompts."""

import numpy as np
import pytest
import torch
from verifier_contract import accepted_mismatches, ground_truth_failures

from mmgen.data.tones import (
    CLIP_SAMPLES,
    NOTE_SAMPLES,
    NOTES,
    SAMPLE_RATE,
    TonesDataset,
    note_frequency,
    parse_prompt,
    render,
    sample,
    sample_prompt,
)
from mmgen.eval.tones_verifier import dominant_frequency, semitone, verify_tones


@pytest.fixture(scope="module")
def ground_truth():
    g = torch.Generator().manual_seed(2024)
    return [sample(g) for _ in range(2000)]


def test_the_verifier_passes_ground_truth_clips(ground_truth):
    failures = ground_truth_failures(ground_truth, verify_tones)
    assert len(failures) <= 0.01 * len(ground_truth), failures[:10]


def test_the_verifier_rejects_clips_paired_with_another_prompt(ground_truth):
    accepted = accepted_mismatches(ground_truth, sample_prompt, verify_tones)
    assert len(accepted) <= 0.01 * len(ground_truth), accepted


def test_notes_follow_the_contract():
    assert note_frequency("A4") == 440.0 and abs(note_frequency("C4") - 261.626) < 1e-3
    audio = render(parse_prompt("play A4 C5"))
    assert audio.shape == (CLIP_SAMPLES,) and audio.dtype == np.float32
    assert np.abs(audio).max() <= 0.7 and not audio[2 * NOTE_SAMPLES :].any()  # padded silence
    note = audio[:NOTE_SAMPLES].astype(np.float64)
    assert note[0] == 0.0 and abs(note[NOTE_SAMPLES - 1]) < 0.01  # attack from 0, release to 0
    spectrum = np.abs(np.fft.rfft(note * np.hanning(NOTE_SAMPLES)))
    freqs = np.fft.rfftfreq(NOTE_SAMPLES, 1 / SAMPLE_RATE)
    at = lambda f: spectrum[np.argmin(np.abs(freqs - f))]  # noqa: E731
    ratios = at(880) / at(440), at(1320) / at(440)  # the harmonics' amplitudes 0.15 and 0.05
    assert abs(ratios[0] - 0.3) < 0.03 and abs(ratios[1] - 0.1) < 0.02
    assert abs(dominant_frequency(note) - 440.0) < 1.0 and semitone(440.0) == 69


def test_prompts_round_trip_and_unknown_notes_are_named():
    counts = [0] * 4
    g = torch.Generator().manual_seed(0)
    for _ in range(2000):
        p = sample_prompt(g)
        assert parse_prompt(p.text) == p and set(p.notes) <= set(NOTES)
        counts[len(p.notes) - 1] += 1
    assert min(counts) > 400  # 1-4 notes equally likely
    with pytest.raises(ValueError, match=r"not notes of the task: \['H4'\]"):
        parse_prompt("play C4 H4")
    with pytest.raises(ValueError, match="not a tones prompt"):
        parse_prompt("play C4 D4 E4 F4 G4")


def test_wrong_notes_late_notes_and_noise_fail():
    right = render(parse_prompt("play C4 E4"))
    verdict = verify_tones(right, "play C4 F4")
    assert not verdict.passed and "window 1: heard E4" in verdict.reason
    late = np.roll(right, NOTE_SAMPLES)  # silence first, then the notes
    assert "sounding windows .##." in verify_tones(late, "play C4 E4").reason
    noisy = right + 0.05 * np.random.default_rng(0).standard_normal(CLIP_SAMPLES)
    assert not verify_tones(noisy, "play C4 E4").passed  # the silent windows are not silent
    assert verify_tones(right * 0.2, "play C4 E4").passed  # quieter, still above 0.02 RMS


def test_the_dataset_is_deterministic():
    data = TonesDataset(3, seed=1)
    item = data[0]
    assert item["audio"].shape == (CLIP_SAMPLES,) and item["audio"].dtype == torch.float32
    assert torch.equal(item["audio"], TonesDataset(3, seed=1)[0]["audio"])
    assert verify_tones(item["audio"], item["prompt"]).passed
