"""Exact verifier for the built-in ``tones`` text-to-audio task (``DATASETS.md``).

The clip is split into 0.25 s windows; a window is silent if its RMS is under 0.02. The
non-silent windows must be exactly the first k, k the number of notes, and each one's dominant
frequency (the peak of its Hann-windowed spectrum between 200 and 1200 Hz, refined by parabolic
interpolation of the log magnitude) must round to the prompted note's semitone.

Examples:
    >>> from mmgen.data.tones import parse_prompt, render
    >>> verify_tones(render(parse_prompt("play C4 E4")), "play C4 E4").passed
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mmgen.data.tones import NOTE_SAMPLES, NOTES, SAMPLE_RATE, TonesPrompt, parse_prompt

SILENCE_RMS = 0.02
PEAK_BAND_HZ = (200.0, 1200.0)
_MIDI_NAMES = {m: n for n, m in NOTES.items()}


@dataclass(frozen=True)
class TonesVerdict:
    """Outcome of :func:`verify_tones`: ``passed``, ``reason`` (``"ok"`` or the failures) and
    per window the measured peak in Hz (None for a silent window)."""

    passed: bool
    reason: str
    peaks_hz: tuple[float | None, ...]


def dominant_frequency(window: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Peak of the Hann-windowed magnitude spectrum in 200-1200 Hz, parabolic-interpolated."""
    spectrum = np.abs(np.fft.rfft(window * np.hanning(len(window))))
    freqs = np.fft.rfftfreq(len(window), d=1.0 / sample_rate)
    band = np.flatnonzero((freqs >= PEAK_BAND_HZ[0]) & (freqs <= PEAK_BAND_HZ[1]))
    k = int(band[np.argmax(spectrum[band])])
    offset = 0.0
    if 0 < k < len(spectrum) - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-12)
        denom = a - 2 * b + c
        offset = 0.5 * (a - c) / denom if denom != 0 else 0.0
    return float((k + offset) * sample_rate / len(window))


def semitone(frequency_hz: float) -> int:
    """The nearest MIDI note number (A4 = 69 = 440 Hz)."""
    return round(69 + 12 * math.log2(frequency_hz / 440.0))


def verify_tones(audio, prompt: str | TonesPrompt) -> TonesVerdict:
    """Decides whether a clip (1-D float array or tensor, 16 kHz) satisfies a tones prompt.

    Raises:
        ValueError: If ``prompt`` is text that is not a tones prompt.
    """
    if isinstance(prompt, str):
        prompt = parse_prompt(prompt)
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    windows = [audio[i : i + NOTE_SAMPLES] for i in range(0, len(audio), NOTE_SAMPLES)]
    windows = [w for w in windows if len(w) == NOTE_SAMPLES]
    sounding = [float(np.sqrt(np.mean(w**2))) >= SILENCE_RMS for w in windows]
    peaks = [dominant_frequency(w) if s else None for w, s in zip(windows, sounding)]
    k, problems = len(prompt.notes), []
    if sounding != [True] * k + [False] * (len(windows) - k):
        heard = "".join("#" if s else "." for s in sounding)
        problems.append(f"sounding windows {heard}, expected the first {k} of {len(windows)}")
    for i, note in enumerate(prompt.notes):
        if i < len(peaks) and peaks[i] is not None and semitone(peaks[i]) != NOTES[note]:
            heard = _MIDI_NAMES.get(semitone(peaks[i]), f"MIDI {semitone(peaks[i])}")
            problems.append(f"window {i}: heard {heard} ({peaks[i]:.1f} Hz), expected {note}")
    return TonesVerdict(not problems, "; ".join(problems) or "ok", tuple(peaks))
