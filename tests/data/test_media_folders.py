"""Video and audio folders: decoded to fixed shapes; bad entries counted and skipped, or raised
when strict."""

import json
import math
import subprocess
import wave

import imageio.v3 as imageio  # the video/audio extra; part of the dev dependencies
import imageio_ffmpeg
import numpy as np
import pytest
import torch

from mmgen.data.folders import DataError, read_audio_folder, read_video_folder


def user_warnings(caught) -> list[str]:
    """Our warnings only (imageio's ffmpeg pipes can add ResourceWarnings when collected)."""
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def write_metadata(folder, entries):
    lines = [e if isinstance(e, str) else json.dumps(e) for e in entries]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def moving_square(num_frames: int, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8: a red square moving right on white."""
    frames = np.full((num_frames, height, width, 3), 255, np.uint8)
    for t in range(num_frames):
        frames[t, 8:20, 4 + 3 * t : 16 + 3 * t] = (220, 40, 40)
    return frames


@pytest.fixture
def video_folder(tmp_path):
    imageio.imwrite(tmp_path / "clip.gif", moving_square(6, 30, 48), duration=100, loop=0)
    imageio.imwrite(tmp_path / "clip.mp4", moving_square(8, 32, 48), fps=8, codec="libx264")
    imageio.imwrite(tmp_path / "short.gif", moving_square(2, 30, 48), duration=100, loop=0)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    write_metadata(
        tmp_path,
        [
            {"file_name": "clip.gif", "text": "a red square moving right"},
            {"file_name": "clip.mp4", "text": "the same, as mp4"},
            {"file_name": "short.gif", "text": "too few frames"},
            {"file_name": "broken.mp4", "text": "not a video"},
            {"file_name": "clip.gif"},
        ],
    )
    return tmp_path


def test_video_folder_decodes_clips_and_counts_bad_entries(video_folder):
    with pytest.warns(UserWarning) as caught:
        clips, texts = read_video_folder(video_folder, 16, 4)
    [message] = user_warnings(caught)  # exactly one
    assert "skipped 3 of 5 entries" in message
    assert "2 unreadable video" in message and "1 no caption" in message
    assert clips.shape == (2, 4, 3, 16, 16) and clips.dtype == torch.uint8
    assert texts == ["a red square moving right", "the same, as mp4"]
    # the square moves right: the red mass's centre column grows frame by frame
    red = (clips[:, :, 0].float() > 150) & (clips[:, :, 1].float() < 120)  # (N, T, H, W)
    columns = torch.arange(16).float()
    centre = (red.float().sum(2) * columns).sum(-1) / red.float().sum((2, 3))  # (N, T)
    assert (centre[:, 1:] > centre[:, :-1]).all()


def test_video_folder_strict_raises_on_the_short_clip(video_folder):
    with pytest.raises(DataError, match=r"short\.gif.*2 frames, 4 needed"):
        read_video_folder(video_folder, 16, 4, strict=True)


def write_wav(path, frequency: float, rate: int, seconds: float, channels: int = 2) -> None:
    t = np.arange(round(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * math.pi * frequency * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(np.repeat(tone[:, None], channels, axis=1).tobytes())


def dominant_frequency(wave_: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave_.numpy() * np.hanning(len(wave_))))
    return float(np.argmax(spectrum) * rate / len(wave_))


@pytest.fixture
def audio_folder(tmp_path):
    write_wav(tmp_path / "a4.wav", 440.0, 22050, 0.5)
    write_wav(tmp_path / "e5.wav", 659.25, 44100, 2.0)
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(tmp_path / "e5.wav"), str(tmp_path / "e5.flac")],
        check=True,
    )
    (tmp_path / "noise.flac").write_bytes(b"fLaC" + bytes(100))
    write_metadata(
        tmp_path,
        [
            {"file_name": "a4.wav", "text": "play A4"},
            {"file_name": "e5.flac", "text": "play E5"},
            {"file_name": "noise.flac", "text": "broken"},
            {"file_name": "a4.wav", "text": ""},
            "[1, 2]",
        ],
    )
    return tmp_path


def test_audio_folder_decodes_resamples_and_pads(audio_folder):
    with pytest.warns(UserWarning) as caught:
        clips, texts = read_audio_folder(audio_folder, 16000, 1.0)
    [message] = user_warnings(caught)  # exactly one
    assert "skipped 3 of 5 entries" in message
    for reason in ("1 unreadable audio", "1 no caption", "1 not a JSON object"):
        assert reason in message, message
    assert clips.shape == (2, 16000) and clips.dtype == torch.float32
    assert texts == ["play A4", "play E5"]
    a4, e5 = clips
    assert abs(dominant_frequency(a4[:8000], 16000) - 440) < 4  # 0.5 s of tone...
    assert a4[8100:].abs().max() == 0  # ...then zero padding
    assert abs(dominant_frequency(e5, 16000) - 659.25) < 4  # 2 s flac cut to 1 s
    assert 0.45 < a4[:8000].abs().max() <= 0.51  # amplitude 0.5 kept, stereo averaged


def test_audio_folder_strict_raises_on_the_broken_file(audio_folder):
    with pytest.raises(DataError, match=r"noise\.flac.*unreadable audio"):
        read_audio_folder(audio_folder, 16000, 1.0, strict=True)
