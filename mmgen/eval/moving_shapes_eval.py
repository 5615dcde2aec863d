"""Score a text-to-video pipeline on ``moving-shapes``: pass rate per prompt kind and overall,
a JSON report and a contact sheet of frames with pass/fail marks."""

from __future__ import annotations

from pathlib import Path

import torch

from mmgen.data.moving_shapes import sample_prompt
from mmgen.eval.moving_shapes_verifier import verify_clip
from mmgen.utils.config import to_dict
from mmgen.utils.images import image_grid
from mmgen.utils.serialization import write_json

#: prompt kinds, by number of objects
KINDS = {1: "one_object", 2: "two_objects"}


def evaluate_moving_shapes(
    pipe,
    *,
    num_prompts: int = 200,
    seed: int = 0,
    batch_size: int = 25,
    num_frames: int | None = None,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
    **sampling,
) -> dict:
    """Generate one clip per random prompt and verify it (:func:`verify_clip`).

    Prompts come from ``torch.Generator().manual_seed(seed)``, clips from a second generator
    seeded with ``seed + 1`` (one generator per batch: the numbers depend on ``batch_size``;
    the default is the CLI's). Writes ``report.json`` and ``contact_sheet.png`` (the first 16
    clips, one row each: green frames passed the per-frame check, red failed; the row's first
    tile is marked with the clip's verdict) to ``out_dir`` when given.

    Returns:
        dict with ``overall``, ``kinds`` (pass rate per kind), ``counts``, ``frame_pass_rate``
        (mean per-frame pass rate), ``sampling`` and ``results``.
    """
    from tqdm.auto import tqdm

    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    prompt_gen = torch.Generator().manual_seed(seed)
    prompts = [sample_prompt(prompt_gen) for _ in range(num_prompts)]
    clip_gen = torch.Generator().manual_seed(seed + 1)
    results, clips = [], []
    for start in tqdm(
        range(0, num_prompts, batch_size), desc="eval moving-shapes", disable=not show_progress
    ):
        batch = prompts[start : start + batch_size]
        out = pipe([p.text for p in batch], num_frames=num_frames, generator=clip_gen,
                   show_progress=False, **sampling)  # fmt: skip
        for prompt, frames in zip(batch, out.frames):
            verdict = verify_clip(frames, prompt)
            results.append({
                "prompt": prompt.text,
                "kind": KINDS[len(prompt.objects)],
                "passed": verdict.passed,
                "reason": verdict.reason,
                "frames": list(verdict.frames),
            })  # fmt: skip
            clips.append(frames)
    kinds, counts = {}, {}
    for kind in KINDS.values():
        rows = [r for r in results if r["kind"] == kind]
        counts[kind] = len(rows)
        kinds[kind] = sum(r["passed"] for r in rows) / len(rows) if rows else None
    per_frame = [f for r in results for f in r["frames"]]
    report = {
        "overall": sum(r["passed"] for r in results) / len(results),
        "kinds": kinds,
        "counts": counts,
        "frame_pass_rate": sum(per_frame) / len(per_frame),
        "num_prompts": num_prompts,
        "seed": seed,
        "sampling": to_dict(pipe.resolve_sampling(**sampling)),
        "results": results,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "report.json", report)
        contact_sheet(clips[:16], results[:16]).save(out_dir / "contact_sheet.png")
    return report


def contact_sheet(clips: list[list], results: list[dict]):
    """One row per clip (its frames left to right, each framed green or red by the per-frame
    check), the prompt and the clip's verdict under the first frame."""
    tiles, marks, captions = [], [], []
    for frames, result in zip(clips, results):
        for i, frame in enumerate(frames):
            tiles.append(frame)
            marks.append(result["frames"][i])
            verdict = "PASS" if result["passed"] else "FAIL"
            captions.append(f"{verdict}: {result['prompt']}" if i == 0 else "")
    return image_grid(tiles, cols=len(clips[0]), marks=marks, captions=captions, scale=1)


def format_report(report: dict) -> str:
    """A small table of pass rates."""
    lines = [f"{'kind':<12} {'n':>5} {'pass rate':>10}"]
    for kind, rate in report["kinds"].items():
        shown = "-" if rate is None else f"{rate:.3f}"
        lines.append(f"{kind:<12} {report['counts'][kind]:>5} {shown:>10}")
    lines.append(f"{'overall':<12} {report['num_prompts']:>5} {report['overall']:>10.3f}")
    lines.append(f"{'frames':<12} {'':>5} {report['frame_pass_rate']:>10.3f}")
    return "\n".join(lines)
