"""User data in Hugging Face's ``imagefolder`` layout: image files plus a ``metadata.jsonl``
whose lines hold ``file_name`` and ``text`` (or ``label`` for class-conditional training).

Bad entries (lines that are not JSON objects, without ``file_name``, without a caption or label,
missing or unreadable files) are skipped with ONE warning that counts them by reason, or raise
:class:`DataError` at the first one with ``strict=True``. Images of any size and mode are
converted to RGB (transparency composited on white) and resized (shorter side, bicubic) then
centre-cropped to the configured square resolution.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
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


def read_image_folder(
    folder: str | Path,
    size: int,
    *,
    condition_key: str = "text",
    strict: bool = False,
    show_progress: bool = False,
) -> tuple[torch.Tensor, list]:
    """Every usable entry of ``folder``: (N, 3, size, size) uint8 images and their conditions.

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
    images, conditions = [], []

    def skip(reason: str, where: str) -> None:
        if strict:
            raise DataError(f"{where}: {reason} (strict data: nothing is skipped)")
        skipped[reason] += 1
        first_problem.setdefault(reason, where)

    lines = metadata.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(tqdm(lines, desc="reading images", disable=not show_progress)):
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
            images.append(load_image(entry.path, size))
        except Exception as err:  # any decoder failure: truncated, not an image, ...
            skip("unreadable image", f"{entry.path} ({type(err).__name__}: {err})")
            continue
        conditions.append(entry.condition)
    if skipped:
        total = sum(skipped.values())
        reasons = ", ".join(
            f"{n} {reason} (first: {first_problem[reason]})" for reason, n in skipped.items()
        )
        warnings.warn(
            f"{folder}: skipped {total} of {total + len(images)} entries: {reasons}", stacklevel=2
        )
    if not images:
        raise DataError(f"{folder}: no usable entries in {METADATA_NAME}")
    return torch.stack(images), conditions
