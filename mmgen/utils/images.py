"""Image grids for sample sheets and eval reports."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

PASS_COLOUR = (40, 170, 70)
FAIL_COLOUR = (220, 40, 40)


def image_grid(
    images: Sequence[Image.Image],
    *,
    cols: int | None = None,
    marks: Sequence[bool] | None = None,
    scale: int = 1,
    pad: int = 2,
) -> Image.Image:
    """Tile images into one grid, optionally framing each in green (pass) or red (fail).

    Args:
        images: equally sized PIL images.
        cols: images per row (defaults to ceil(sqrt(n))).
        marks: per-image pass/fail; draws a coloured frame in the padding.
        scale: integer upscaling (nearest) so small images stay readable.
        pad: pixels between images (the frame width when marks are given).
    """
    if not images:
        raise ValueError("image_grid needs at least one image")
    n = len(images)
    cols = cols or max(1, int(n**0.5 + 0.999))
    rows = (n + cols - 1) // cols
    w, h = images[0].size
    w, h = w * scale, h * scale
    grid = Image.new("RGB", (cols * (w + 2 * pad), rows * (h + 2 * pad)), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        x, y = (i % cols) * (w + 2 * pad), (i // cols) * (h + 2 * pad)
        if marks is not None:
            colour = PASS_COLOUR if marks[i] else FAIL_COLOUR
            draw.rectangle([x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1], fill=colour)
        tile = image.convert("RGB")
        if scale != 1:
            tile = tile.resize((w, h), Image.NEAREST)
        grid.paste(tile, (x + pad, y + pad))
    return grid
