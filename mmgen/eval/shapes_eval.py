"""Score a text-to-image pipeline on ``shapes``: pass rate per prompt family and overall."""

from __future__ import annotations

from pathlib import Path

from mmgen.data.shapes import FAMILIES, sample_prompt
from mmgen.eval.prompt_eval import evaluate_prompts, rates_table, write_report
from mmgen.eval.shapes_verifier import verify
from mmgen.utils.images import image_grid


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

    def judge(prompt, image) -> dict:
        verdict = verify(image, prompt)
        return {"prompt": prompt.text, "family": prompt.family, "passed": verdict.passed,
                "reason": verdict.reason}  # fmt: skip

    report, images = evaluate_prompts(
        pipe, sample_prompt, judge, groups=("family", FAMILIES, "families"),
        num_prompts=num_prompts, seed=seed, batch_size=batch_size,
        outputs_of=lambda out: out.images, desc="eval shapes", show_progress=show_progress,
        **sampling,
    )  # fmt: skip
    results = report["results"]
    out_dir = write_report(report, out_dir)
    if out_dir is not None:
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
    return "\n".join(rates_table(report, "families", "family"))
