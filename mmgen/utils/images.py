"""Image grids for sample sheets and eval reports."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

PASS_COLOUR = (40, 170, 70)
FAIL_COLOUR = (220, 40, 40)
CHAR_WIDTH, LINE_HEIGHT = 6, 12  # Pillow's default font, with room


def image_grid(
    images: Sequence[Image.Image],
    *,
    cols: int | None = None,
    marks: Sequence[bool] | None = None,
    captions: Sequence[str] | None = None,
    scale: int = 1,
    pad: int = 2,
) -> Image.Image:
    """Tile images into one grid, optionally framing each in green (pass) or red (fail).

    Args:
        images: equally sized PIL images.
        cols: images per row (defaults to ceil(sqrt(n))).
        marks: per-image pass/fail; draws a coloured frame in the padding.
        captions: per-image text, wrapped under each image to the tile's width, or wider when
            the tiles to its right in the same row have empty captions: it runs on under them
            (a row of video frames captioned once).
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
    lines = None
    if captions is not None:
        spans = caption_spans(captions, cols)
        lines = [wrap_caption(c, w + (s - 1) * (w + 2 * pad)) for c, s in zip(captions, spans)]
    text_h = max(len(t) for t in lines) * LINE_HEIGHT + pad if lines else 0
    cell_w, cell_h = w + 2 * pad, h + 2 * pad + text_h
    grid = Image.new("RGB", (cols * cell_w, rows * cell_h), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for i, image in enumerate(images):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        if marks is not None:
            colour = PASS_COLOUR if marks[i] else FAIL_COLOUR
            draw.rectangle([x, y, x + w + 2 * pad - 1, y + h + 2 * pad - 1], fill=colour)
        tile = image.convert("RGB")
        if scale != 1:
            tile = tile.resize((w, h), Image.NEAREST)
        grid.paste(tile, (x + pad, y + pad))
        for k, line in enumerate(lines[i] if lines else []):
            draw.text((x + pad, y + h + 2 * pad + k * LINE_HEIGHT), line, fill=(0, 0, 0))
    return grid


def caption_spans(captions: Sequence[str], cols: int) -> list[int]:
    """How many tiles each caption may run under: its own and the empty-captioned ones after it
    in the same grid row (1 for an empty caption)."""
    spans = []
    for i, caption in enumerate(captions):
        span = 1
        while caption and (i + span) % cols and i + span < len(captions) and not captions[i + span]:
            span += 1
        spans.append(span)
    return spans


def wrap_caption(text: str, width_px: int) -> list[str]:
    """``text`` wrapped to lines of Pillow's default font that fit ``width_px``."""
    import textwrap

    return textwrap.wrap(text, max(4, width_px // CHAR_WIDTH)) or [""]
