"""Procedural generator for the built-in ``tones`` text-to-audio task (``DATASETS.md``).

A prompt ``play {note} {note} ...`` names 1-4 notes from C4 D4 E4 F4 G4 A4 B4 C5 (equal
temperament, A4 = 440 Hz). Each note lasts 0.25 s: its fundamental plus the 2nd and 3rd
harmonics at amplitudes 0.5, 0.15 and 0.05 (every partial starting at phase 0), shaped by a
10 ms linear attack and a 30 ms linear release; the notes follow one another and the clip is
padded with silence to 1.0 s. 16 kHz mono float32 in [-1, 1]. Every random number (the number of
notes and which) comes from the ``torch.Generator`` passed in.

Examples:
    >>> import torch
    >>> from mmgen.data.tones import sample
    >>> prompt, audio = sample(torch.Generator().manual_seed(0))
    >>> audio.shape, audio.dtype
    ((16000,), dtype('float32'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from mmgen.data.procedural import ProceduralDataset

SAMPLE_RATE = 16_000
NOTE_SECONDS = 0.25
CLIP_SECONDS = 1.0
NOTE_SAMPLES = int(SAMPLE_RATE * NOTE_SECONDS)  # 4,000
CLIP_SAMPLES = int(SAMPLE_RATE * CLIP_SECONDS)  # 16,000
MAX_NOTES = 4
#: note name -> MIDI number (A4 = 69 = 440 Hz)
NOTES: dict[str, int] = {"C4": 60, "D4": 62, "E4": 64, "F4": 65, "G4": 67, "A4": 69, "B4": 71,
                         "C5": 72}  # fmt: skip
HARMONIC_AMPLITUDES = (0.5, 0.15, 0.05)  # fundamental, 2nd, 3rd harmonic
ATTACK_SECONDS, RELEASE_SECONDS = 0.010, 0.030


@dataclass(frozen=True)
class TonesPrompt:
    """One prompt: its text and its notes (names from :data:`NOTES`, in order)."""

    text: str
    notes: tuple[str, ...]


def note_frequency(note: str) -> float:
    """Equal-temperament frequency in Hz (A4 = 440)."""
    return 440.0 * 2.0 ** ((NOTES[note] - 69) / 12)


def format_prompt(notes: tuple[str, ...]) -> str:
    """``play C4 E4 G4``."""
    if not 1 <= len(notes) <= MAX_NOTES or any(n not in NOTES for n in notes):
        raise ValueError(f"1-{MAX_NOTES} notes from {list(NOTES)}, got {notes}")
    return "play " + " ".join(notes)


_PATTERN = re.compile(
    f"play ((?:{'|'.join(NOTES)})(?: (?:{'|'.join(NOTES)})){{0,{MAX_NOTES - 1}}})"
)


def parse_prompt(text: str) -> TonesPrompt:
    """The inverse of :func:`format_prompt`.

    Raises:
        ValueError: If ``text`` is not a tones prompt (naming the words that are not notes).
    """
    match = _PATTERN.fullmatch(text)
    if match is None:
        words = text.split()[1:] if text.startswith("play ") else text.split()
        unknown = [w for w in words if w not in NOTES]
        detail = f" (not notes of the task: {unknown})" if unknown else ""
        raise ValueError(f"not a tones prompt: {text!r}{detail}")
    return TonesPrompt(text, tuple(match.group(1).split()))


def sample_prompt(generator: torch.Generator) -> TonesPrompt:
    """1-4 notes (equally likely), each drawn uniformly from the eight."""
    names = list(NOTES)
    count = int(torch.randint(1, MAX_NOTES + 1, (1,), generator=generator))
    picks = torch.randint(0, len(names), (count,), generator=generator).tolist()
    notes = tuple(names[i] for i in picks)
    return TonesPrompt(format_prompt(notes), notes)


def note_waveform(note: str) -> np.ndarray:
    """One 0.25 s note (float64, (4000,)): three harmonics under the attack/release envelope."""
    t = np.arange(NOTE_SAMPLES) / SAMPLE_RATE
    f0 = note_frequency(note)
    wave = sum(a * np.sin(2 * np.pi * (k + 1) * f0 * t) for k, a in enumerate(HARMONIC_AMPLITUDES))
    attack = np.clip(t / ATTACK_SECONDS, 0.0, 1.0)
    release = np.clip((NOTE_SECONDS - t) / RELEASE_SECONDS, 0.0, 1.0)
    return wave * np.minimum(attack, release)


def render(prompt: TonesPrompt) -> np.ndarray:
    """The clip of a prompt: its notes one after another, silence to 1.0 s; (16000,) float32."""
    clip = np.zeros(CLIP_SAMPLES)
    for i, note in enumerate(prompt.notes):
        clip[i * NOTE_SAMPLES : (i + 1) * NOTE_SAMPLES] = note_waveform(note)
    return clip.astype(np.float32)


def sample(generator: torch.Generator) -> tuple[TonesPrompt, np.ndarray]:
    """A prompt and its clip."""
    prompt = sample_prompt(generator)
    return prompt, render(prompt)


class TonesDataset(ProceduralDataset):
    """Map-style, deterministic: item i depends only on (seed, i). Each item is a dict with
    ``"audio"`` (float32 tensor (16000,)) and ``"prompt"``."""

    def make_item(self, generator: torch.Generator) -> dict:
        prompt, audio = sample(generator)
        return {"audio": torch.from_numpy(audio), "prompt": prompt.text}
