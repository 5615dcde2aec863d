"""Score a text-to-video pipeline on ``moving-shapes``: pass rate per prompt kind and overall,
a JSON report and a contact sheet of frames with pass/fail marks."""

from __future__ import annotations

from pathlib import Path

import torch

from mmgen.data.moving_shapes import render, sample_motions, sample_prompt
from mmgen.eval.moving_shapes_verifier import verify_clip
from mmgen.eval.prompt_eval import evaluate_prompts, rates_table, write_report
from mmgen.utils.images import image_grid

#: prompt kinds, by number of objects
KINDS = {1: "one_object", 2: "two_objects"}


def evaluate_moving_shapes(
    pipe,
    *,
    num_prompts: int = 200,
    seed: int = 0,
    batch_size: int = 25,
    num_frames: int | None = None,
    given_frames: int = 0,
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

    ``given_frames`` k > 0 splits the errors: every clip's first k frames are a true clip of
    its prompt (rendered from motions drawn by a third generator, seeded ``seed + 2``), the
    model continues from them (``frames=``), and the verifier reads the whole clip, given
    frames (as the autoencoder reconstructs them) included. k = 1 asks whether the model
    moves a right first frame right.

    Returns:
        dict with ``overall``, ``kinds`` (pass rate per kind), ``counts``, ``frame_pass_rate``
        (mean per-frame pass rate), ``sampling`` and ``results``.
    """

    def judge(prompt, frames) -> dict:
        verdict = verify_clip(frames, prompt)
        return {"prompt": prompt.text, "kind": KINDS[len(prompt.objects)],
                "passed": verdict.passed, "reason": verdict.reason,
                "frames": list(verdict.frames)}  # fmt: skip

    if given_frames < 0:
        raise ValueError(f"given_frames must be >= 0, got {given_frames}")
    motion_gen = torch.Generator().manual_seed(seed + 2)

    def true_starts(prompts) -> dict:  # the first k frames of a true clip of every prompt
        return {"frames": [render(sample_motions(p, motion_gen), given_frames) for p in prompts]}

    report, clips = evaluate_prompts(
        pipe, sample_prompt, judge, groups=("kind", list(KINDS.values()), "kinds"),
        num_prompts=num_prompts, seed=seed, batch_size=batch_size,
        outputs_of=lambda out: out.frames, desc="eval moving-shapes",
        show_progress=show_progress, call_kwargs={"num_frames": num_frames},
        batch_kwargs=true_starts if given_frames else None, **sampling,
    )  # fmt: skip
    report["given_frames"] = given_frames
    results = report["results"]
    per_frame = [f for r in results for f in r["frames"]]
    report["frame_pass_rate"] = sum(per_frame) / len(per_frame)
    out_dir = write_report(report, out_dir)
    if out_dir is not None:
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
    lines = rates_table(report, "kinds", "kind")
    lines.append(f"{'frames':<12} {'':>5} {report['frame_pass_rate']:>10.3f}")
    if report.get("given_frames"):
        lines.append(f"(the first {report['given_frames']} frame(s) of every clip given: a "
                     "true clip's, as the autoencoder reconstructs them)")  # fmt: skip
    return "\n".join(lines)
