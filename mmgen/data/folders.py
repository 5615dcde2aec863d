"""User data in Hugging Face's folder layouts (``imagefolder``, ``videofolder``,
``audiofolder``): media files plus a ``metadata.jsonl`` whose lines hold ``file_name`` and
``text`` (or ``label`` for class-conditional training).

Bad entries (lines that are not JSON objects, without ``file_name``, without a caption or label,
missing or unreadable files) are skipped with ONE warning that counts them by reason, or raise
:class:`DataError` at the first one with ``strict=True``. Images (and video frames) of any size
and mode are converted to RGB (transparency composited on white) and resized (shorter side,
bicubic) then centre-cropped to the configured square resolution. Audio (wav, flac, anything
ffmpeg reads) is decoded by the ffmpeg of ``imageio-ffmpeg`` to mono float at the configured
sample rate, then cut or zero-padded to the configured length.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

METADATA_NAME = "metadata.jsonl"


class DataError(ValueError):
    """A user data folder cannot be used as it is; the message names the file and the problem."""


@dataclass(frozen=True)
class FolderEntry:
    path: Path
    condition: str | int


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparent pixels become white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float grey -> 8 bit
        array = np.asarray(image, dtype=np.float64)
        low, high = array.min(), array.max()
        scaled = (array - low) / (high - low) * 255 if high > low else np.zeros_like(array)
        return Image.fromarray(scaled.round().astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side -> ``size`` (bicubic), then the central ``size`` x ``size`` square."""
    width, height = image.size
    scale = size / min(width, height)
    resized = image.resize(
        (max(size, round(width * scale)), max(size, round(height * scale))), Image.BICUBIC
    )
    left = (resized.width - size) // 2
    top = (resized.height - size) // 2
    return resized.crop((left, top, left + size, top + size))


def load_image(path: Path, size: int) -> torch.Tensor:
    """(3, size, size) uint8 tensor from any image file PIL reads."""
    with Image.open(path) as image:
        image.load()
        rgb = resize_center_crop(to_rgb(image), size)
    return torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)


def _entry_problem(record, folder: Path, condition_key: str) -> tuple[str, FolderEntry | None]:
    if not isinstance(record, dict):
        return "not a JSON object", None
    name = record.get("file_name")
    if not isinstance(name, str) or not name:
        return "no file_name", None
    value = record.get(condition_key)
    if condition_key == "text" and (not isinstance(value, str) or not value.strip()):
        return "no caption (text)", None
    if condition_key == "label" and (isinstance(value, bool) or not isinstance(value, int)):
        return "no integer label", None
    path = folder / name
    if not path.is_file():
        return "file missing", None
    return "", FolderEntry(path, value)


def require(module: str, extra: str):
    """Import an optional dependency, or fail with the install line (never counted as a bad
    file)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{extra} folders need {module}: pip install 'mmgen[{extra}]'") from err


def read_media_folder(
    folder: str | Path,
    load: Callable[[Path], torch.Tensor],
    *,
    kind: str,
    condition_key: str = "text",
    strict: bool = False,
    show_progress: bool = False,
) -> tuple[list[torch.Tensor], list]:
    """Every usable entry of ``folder`` decoded by ``load``, with its condition.

    Raises:
        DataError: no folder or metadata.jsonl, nothing usable, or (``strict``) any bad entry.
    """
    from tqdm.auto import tqdm

    folder = Path(folder)
    metadata = folder / METADATA_NAME
    if not metadata.is_file():
        raise DataError(f"{folder}: no {METADATA_NAME} (lines of {{file_name, {condition_key}}})")
    skipped: Counter = Counter()
    first_problem: dict[str, str] = {}
    items, conditions = [], []

    def skip(reason: str, where: str) -> None:
        if strict:
            raise DataError(f"{where}: {reason} (strict data: nothing is skipped)")
        skipped[reason] += 1
        first_problem.setdefault(reason, where)

    lines = metadata.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(tqdm(lines, desc=f"reading {kind}s", disable=not show_progress)):
        if not line.strip():
            continue
        where = f"{metadata}:{number + 1}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skip("not JSON", where)
            continue
        problem, entry = _entry_problem(record, folder, condition_key)
        if entry is None:
            skip(problem, where)
            continue
        try:
            items.append(load(entry.path))
        except Exception as err:  # any decoder failure: truncated, not media, too short...
            skip(f"unreadable {kind}", f"{entry.path} ({type(err).__name__}: {err})")
            continue
        conditions.append(entry.condition)
    if skipped:
        total = sum(skipped.values())
        reasons = ", ".join(
            f"{n} {reason} (first: {first_problem[reason]})" for reason, n in skipped.items()
        )
        warnings.warn(
            f"{folder}: skipped {total} of {total + len(items)} entries: {reasons}", stacklevel=3
        )
    if not items:
        raise DataError(f"{folder}: no usable entries in {METADATA_NAME}")
    return items, conditions


def read_image_folder(
    folder: str | Path,
    size: int,
    *,
    condition_key: str = "text",
    strict: bool = False,
    show_progress: bool = False,
) -> tuple[torch.Tensor, list]:
    """(N, 3, size, size) uint8 images of an imagefolder, and their conditions."""
    images, conditions = read_media_folder(
        folder,
        lambda path: load_image(path, size),
        kind="image",
        condition_key=condition_key,
        strict=strict,
        show_progress=show_progress,
    )
    return torch.stack(images), conditions


def load_video(path: Path, size: int, num_frames: int) -> torch.Tensor:
    """(num_frames, 3, size, size) uint8: the first ``num_frames`` frames of a video or GIF."""
    iio = require("imageio.v3", "video")
    frames = []
    with iio.imopen(path, "r") as file:  # closing stops the decoder when breaking off early
        for frame in file.iter():
            image = Image.fromarray(np.asarray(frame))
            frames.append(resize_center_crop(to_rgb(image), size))
            if len(frames) == num_frames:
                break
    if len(frames) < num_frames:
        raise ValueError(f"{len(frames)} frames, {num_frames} needed")
    stacked = np.stack([np.asarray(f, dtype=np.uint8) for f in frames])  # (T, H, W, 3)
    return torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()


def read_video_folder(
    folder: str | Path,
    size: int,
    num_frames: int,
    *,
    condition_key: str = "text",
    strict: bool = False,
    show_progress: bool = False,
) -> tuple[torch.Tensor, list]:
    """(N, num_frames, 3, size, size) uint8 clips of a videofolder (mp4, gif...), and their
    conditions; clips shorter than ``num_frames`` count as unreadable."""
    require("imageio.v3", "video")
    clips, conditions = read_media_folder(
        folder,
        lambda path: load_video(path, size, num_frames),
        kind="video",
        condition_key=condition_key,
        strict=strict,
        show_progress=show_progress,
    )
    return torch.stack(clips), conditions


LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "5.0": 5,
                   "5.1": 6, "6.1": 7, "7.1": 8}  # fmt: skip


def output_channels(ffmpeg_log: str) -> int:
    """Channel count of ffmpeg's output stream, read from its log."""
    found = re.search(r"Output #0.*?Audio: pcm_f32le, \d+ Hz, ([^,]+),", ffmpeg_log, re.S)
    if found is None:
        raise ValueError("ffmpeg did not report the output channel layout")
    layout = found.group(1).strip()
    if layout.split("(")[0] in LAYOUT_CHANNELS:
        return LAYOUT_CHANNELS[layout.split("(")[0]]
    if counted := re.match(r"(\d+) channels", layout):
        return int(counted.group(1))
    raise ValueError(f"unknown channel layout {layout!r}")


def load_audio(path: Path, sample_rate: int, num_samples: int) -> torch.Tensor:
    """(num_samples,) float32 mono waveform in [-1, 1] at ``sample_rate``: decoded and resampled
    by ffmpeg, channels averaged (ffmpeg's own downmix would scale stereo by 1/sqrt(2) twice),
    then cut or zero-padded to ``num_samples``."""
    import subprocess

    imageio_ffmpeg = require("imageio_ffmpeg", "audio")
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
               "-f", "f32le", "-ar", str(sample_rate), "-"]  # fmt: skip
    done = subprocess.run(command, capture_output=True)
    log = done.stderr.decode(errors="replace")
    if done.returncode != 0:
        raise ValueError(log.strip().splitlines()[-1] if log.strip() else "ffmpeg failed")
    channels = output_channels(log)
    samples = np.frombuffer(done.stdout, dtype=np.float32)
    wave = torch.from_numpy(
        samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    )
    if wave.numel() == 0:
        raise ValueError("no audio samples")
    out = torch.zeros(num_samples)
    out[: min(num_samples, wave.numel())] = wave[:num_samples].clamp(-1, 1)
    return out


def read_audio_folder(
    folder: str | Path,
    sample_rate: int,
    seconds: float,
    *,
    condition_key: str = "text",
    strict: bool = False,
    show_progress: bool = False,
) -> tuple[torch.Tensor, list]:
    """(N, round(seconds * sample_rate)) float32 mono clips of an audiofolder (wav, flac...),
    and their conditions."""
    require("imageio_ffmpeg", "audio")
    num_samples = round(seconds * sample_rate)
    clips, conditions = read_media_folder(
        folder,
        lambda path: load_audio(path, sample_rate, num_samples),
        kind="audio",
        condition_key=condition_key,
        strict=strict,
        show_progress=show_progress,
    )
    return torch.stack(clips), conditions
