"""What a run leaves beside its checkpoints: loss and validation curves, the last sample grid."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image, ImageDraw

WIDTH, HEIGHT, MARGIN = 640, 360, 48


def read_metrics(output_dir: Path, name: str = "metrics.jsonl") -> list[dict]:
    """The records of ``output_dir/logs/<name>``: ``metrics.jsonl`` (training logs) or
    ``validations.jsonl`` (one record per validation: step, wall_s and the task's metrics)."""
    path = Path(output_dir) / "logs" / name
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


#: line colours of the series of one chart, in order
SERIES_COLOURS = ((40, 90, 220), (220, 60, 40), (30, 150, 60), (150, 60, 190), (230, 140, 20),
                  (20, 160, 170), (120, 120, 120))  # fmt: skip


def plot_line_chart(
    xs: list[float],
    ys: list[float],
    title: str,
    *,
    x_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    guides: tuple[float, ...] = (),
) -> Image.Image:
    """A plain line chart of ``ys`` against ``xs`` (Pillow only: matplotlib is not a
    dependency): axes span the data unless ``x_range`` / ``y_range`` fix them, labelled at
    their ends (``x_label`` names the x unit), light horizontal lines at ``guides``, points
    marked when there are few."""
    return plot_lines({"": (xs, ys)}, title, x_label=x_label, x_range=x_range,
                      y_range=y_range, guides=guides)  # fmt: skip


def plot_lines(
    series: dict[str, tuple[list[float], list[float]]],
    title: str,
    *,
    x_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    guides: tuple[float, ...] = (),
) -> Image.Image:
    """:func:`plot_line_chart` with several named series ``label -> (xs, ys)``, each in its own
    colour, and a legend when they have names."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN + 24, MARGIN // 2 + 8, WIDTH - MARGIN // 2, HEIGHT - MARGIN
    draw.rectangle((left, top, right, bottom), outline=(120, 120, 120))
    draw.text((left, 6), title, fill="black")
    all_x = [x for xs, _ in series.values() for x in xs]
    all_y = [y for _, ys in series.values() for y in ys]
    low, high = y_range or (min(all_y), max(all_y))
    span_y = (high - low) or 1.0
    first, last = x_range or (min(all_x), max(all_x))
    span_x = (last - first) or 1

    def point(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - first) / span_x * (right - left),
            bottom - (y - low) / span_y * (bottom - top),
        )

    for guide in guides:
        _, y = point(first, guide)
        draw.line((left, y, right, y), fill=(215, 215, 215))
        draw.text((4, y - 6), f"{guide:.4g}", fill=(110, 110, 110))
    for i, (label, (xs, ys)) in enumerate(series.items()):
        colour = SERIES_COLOURS[i % len(SERIES_COLOURS)]
        points = [point(x, y) for x, y in zip(xs, ys)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        if len(points) <= 40:
            for x, y in points:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        if label:
            y = top + 4 + 12 * i
            draw.line((right - 150, y + 5, right - 135, y + 5), fill=colour, width=3)
            draw.text((right - 130, y), label, fill="black")
    draw.text((4, top - 4), f"{high:.4g}", fill="black")
    draw.text((4, bottom - 8), f"{low:.4g}", fill="black")
    draw.text((left, bottom + 6), f"{first:.4g} {x_label}", fill="black")
    label = f"{last:.4g} {x_label}"
    draw.text((right - draw.textlength(label), bottom + 6), label, fill="black")
    return image


def quality_metric(record: dict) -> str | None:
    """The headline metric of a validation record: its first ``*pass_rate`` or
    ``*accuracy`` entry (shapes, tokenizers, digits), None if it has none."""
    return next((k for k in record if k.endswith(("pass_rate", "accuracy"))), None)


def write_validation_curve(output_dir: str | Path) -> Path | None:
    """``output_dir/validation_curve.png``: the headline validation metric against training
    wall time in minutes (resumed runs count every session), from logs/validations.jsonl."""
    output_dir = Path(output_dir)
    records = read_metrics(output_dir, "validations.jsonl")
    metric = quality_metric(records[0]) if records else None
    if metric is None:
        return None
    records = [r for r in records if metric in r]
    path = output_dir / "validation_curve.png"
    minutes = [r["wall_s"] / 60 for r in records]
    last = records[-1]  # only the last validation: a short title fits the 640 px picture
    plot_line_chart(
        minutes,
        [r[metric] for r in records],
        f"{metric} against wall time ({output_dir.name}); step {last['step']}: {last[metric]:.2f}",
        x_label="min",
        x_range=(0.0, minutes[-1]),
        y_range=(0.0, 1.0),
        guides=(0.25, 0.5, 0.75, 0.9),
    ).save(path)
    return path


def write_run_summary(output_dir: str | Path) -> None:
    """``output_dir/loss_curve.png`` from logs/metrics.jsonl, ``validation_curve.png`` from
    logs/validations.jsonl and ``output_dir/last_samples.png`` (a copy of the newest
    validation grid), where there is something to show."""
    output_dir = Path(output_dir)
    records = read_metrics(output_dir)
    if records:
        plot_line_chart(
            [r["step"] for r in records],
            [r["loss"] for r in records],
            f"training loss ({output_dir.name})",
            x_label="steps",
        ).save(output_dir / "loss_curve.png")
    write_validation_curve(output_dir)
    grids = sorted((output_dir / "samples").glob("step_*.png"))
    if grids:
        shutil.copy2(grids[-1], output_dir / "last_samples.png")
