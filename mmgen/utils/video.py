"""Writing generated clips to files: .mp4 through diffusers' ``export_to_video`` (imageio with
imageio-ffmpeg), .gif through Pillow."""

from __future__ import annotations

from pathlib import Path


def write_video(frames: list, path: str | Path, *, fps: int = 8) -> Path:
    """Write PIL ``frames`` to ``path`` (.mp4 or .gif) at ``fps`` frames per second.

    Raises:
        ValueError: for another suffix, no frames, or fps < 1.
    """
    path = Path(path)
    if not frames:
        raise ValueError("write_video needs at least one frame")
    if fps < 1:
        raise ValueError(f"fps must be >= 1, got {fps}")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        first, *rest = [f.convert("RGB") for f in frames]
        first.save(path, save_all=True, append_images=rest, duration=round(1000 / fps), loop=0)
        return path
    if suffix != ".mp4":
        raise ValueError(f"{path}: write .mp4 or .gif")
    from diffusers.utils import export_to_video

    export_to_video(frames, str(path), fps=fps)
    return path
