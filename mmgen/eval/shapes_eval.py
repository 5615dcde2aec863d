"""Score a text-to-image pipeline on ``shapes``: pass rate per prompt family and overall."""

from __future__ import annotations

from pathlib import Path

import torch

from mmgen.data.shapes import FAMILIES, sample_prompt
from mmgen.eval.shapes_verifier import verify
from mmgen.utils.config import to_dict
from mmgen.utils.images import image_grid
from mmgen.utils.serialization import write_json


def evaluate_shapes(
    pipe,
    *,
    num_prompts: int = 400,
    seed: int = 0,
    batch_size: int = 50,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
    **sampling,
) -> dict:
    """Generate one image per random prompt and verify it.

    Prompts come from ``torch.Generator().manual_seed(seed)``; images from a second generator
    seeded with ``seed + 1``, so a run is reproducible. The images also depend on ``batch_size``
    (one generator draws for a whole batch): the default is the CLI's, so that a script and
    ``mmgen eval shapes`` print the same numbers. Writes ``report.json`` and
    ``samples.png`` (the first 64 images, each over its prompt; green frame = pass, red = fail)
    to ``out_dir`` when given.

    Returns:
        dict with ``overall``, ``families`` (pass rate per family; None for a family no prompt
        was drawn from), ``counts``, ``sampling`` (every knob as used: the given ones over the
        pipeline's defaults) and ``results``.
    """
    from tqdm.auto import tqdm

    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    prompt_gen = torch.Generator().manual_seed(seed)
    prompts = [sample_prompt(prompt_gen) for _ in range(num_prompts)]
    image_gen = torch.Generator().manual_seed(seed + 1)
    results, images = [], []
    for start in tqdm(
        range(0, num_prompts, batch_size), desc="eval shapes", disable=not show_progress
    ):
        batch = prompts[start : start + batch_size]
        out = pipe([p.text for p in batch], generator=image_gen, show_progress=False, **sampling)
        out = out.images
        for prompt, image in zip(batch, out):
            verdict = verify(image, prompt)
            results.append(
                {
                    "prompt": prompt.text,
                    "family": prompt.family,
                    "passed": verdict.passed,
                    "reason": verdict.reason,
                }
            )
            images.append(image)
    families = {}
    counts = {}
    for family in FAMILIES:
        rows = [r for r in results if r["family"] == family]
        counts[family] = len(rows)
        families[family] = sum(r["passed"] for r in rows) / len(rows) if rows else None
    report = {
        "overall": sum(r["passed"] for r in results) / len(results),
        "families": families,
        "counts": counts,
        "num_prompts": num_prompts,
        "seed": seed,
        "sampling": to_dict(pipe.resolve_sampling(**sampling)),  # the values used
        "results": results,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "report.json", report)
        shown = min(len(images), 64)
        image_grid(
            images[:shown],
            cols=8,
            marks=[r["passed"] for r in results[:shown]],
            captions=[r["prompt"] for r in results[:shown]],
            scale=2,
        ).save(out_dir / "samples.png")
    return report


def format_report(report: dict) -> str:
    """A small table of pass rates."""
    lines = [f"{'family':<10} {'n':>5} {'pass rate':>10}"]
    for family, rate in report["families"].items():
        shown = "-" if rate is None else f"{rate:.3f}"  # no prompt of this family was drawn
        lines.append(f"{family:<10} {report['counts'][family]:>5} {shown:>10}")
    lines.append(f"{'overall':<10} {report['num_prompts']:>5} {report['overall']:>10.3f}")
    return "\n".join(lines)
