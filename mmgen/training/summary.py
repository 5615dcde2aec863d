"""What a finished run leaves beside its checkpoints: a loss-curve PNG and the last sample grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 640, 360, 48


def read_metrics(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / "logs" / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def keep_metrics_until(path: Path, step: int) -> None:
    """Drop the records of ``path`` (metrics.jsonl) logged after ``step``, so that a run resumed
    from a checkpoint (or started afresh, ``step`` 0) logs every step exactly once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file():
        return
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line)["step"] <= step]
    if len(kept) < len(lines):
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)  # a crash here leaves the old log whole


def plot_loss_curve(steps: list[int], losses: list[float], title: str) -> Image.Image:
    """A plain line chart of ``losses`` against ``steps`` (Pillow only), axes labelled with
    the first/last step and the lowest/highest loss."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN + 24, MARGIN // 2 + 8, WIDTH - MARGIN // 2, HEIGHT - MARGIN
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((left, 6), title, fill="black")
    low, high = min(losses), max(losses)
    span_y = (high - low) or 1.0
    first, last = steps[0], steps[-1]
    span_x = (last - first) or 1

    def point(step: int, loss: float) -> tuple[float, float]:
        x = left + (step - first) / span_x * (right - left)
        y = bottom - (loss - low) / span_y * (bottom - top)
        return x, y

    points = [point(s, v) for s, v in zip(steps, losses)]
    if len(points) > 1:
        draw.line(points, fill=(40, 90, 220), width=2)
    else:
        x, y = points[0]
        draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=(40, 90, 220))
    draw.text((4, top - 4), f"{high:.4g}", fill="black")
    draw.text((4, bottom - 8), f"{low:.4g}", fill="black")
    draw.text((left, bottom + 6), f"step {first}", fill="black")
    label = f"step {last}"
    draw.text((right - draw.textlength(label), bottom + 6), label, fill="black")
    return image


def write_run_summary(output_dir: str | Path) -> None:
    """``output_dir/loss_curve.png`` from logs/metrics.jsonl and ``output_dir/last_samples.png``
    (a copy of the newest validation grid), where there is something to show."""
    output_dir = Path(output_dir)
    records = read_metrics(output_dir)
    if records:
        steps = [r["step"] for r in records]
        losses = [r["loss"] for r in records]
        plot_loss_curve(steps, losses, f"training loss ({output_dir.name})").save(
            output_dir / "loss_curve.png"
        )
    grids = sorted((output_dir / "samples").glob("step_*.png"))
    if grids:
        shutil.copy2(grids[-1], output_dir / "last_samples.png")
