"""Audio files: 16-bit PCM WAV with the standard library's ``wave`` (no extra dependency)."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np


def pcm16(audio) -> np.ndarray:
    """A float clip in [-1, 1] (values outside are clipped) as little-endian 16-bit PCM."""
    return np.round(np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype("<i2")


def write_wav(path: str | Path, audio, sample_rate: int) -> Path:
    """Write a mono clip (1-D float array in [-1, 1]; values outside are clipped) as 16-bit PCM.

    Raises:
        ValueError: for a clip that is not 1-D.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"write_wav takes a 1-D mono clip, got shape {audio.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = pcm16(audio)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(int(sample_rate))
        out.writeframes(pcm.tobytes())
    return path


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV written by :func:`write_wav` -> (float32 samples in [-1, 1], rate);
    several channels are averaged to mono."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is read here")
        frames = src.readframes(src.getnframes())
        channels, rate = src.getnchannels(), src.getframerate()
    pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).mean(axis=1)
    return (pcm / 32767).astype(np.float32), rate
