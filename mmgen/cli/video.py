"""The video sub-commands: ``mmgen generate video`` and ``mmgen eval moving-shapes``."""

from __future__ import annotations

from pathlib import Path

from mmgen.cli.commands import (
    load_pipeline_of_kind,
    numbered_paths,
    run_task_eval,
    sampling_kwargs,
)
from mmgen.cli.errors import UsageError, check_device

VIDEO_SUFFIXES = (".mp4", ".gif")


def load_video_pipeline(model: str, device: str):
    """A video pipeline folder or built-in name; an image or audio model is a usage error."""
    from mmgen.pipelines.text_to_video import TextToVideoPipeline

    return load_pipeline_of_kind(model, device, TextToVideoPipeline, "video")


def video_paths(out: str | None, count: int) -> list[Path]:
    """Where ``count`` videos go: ``out`` itself for one, ``out`` with ``_0``, ``_1``... before
    the suffix for several."""
    return numbered_paths(out or "clip.mp4", count, VIDEO_SUFFIXES, "a video")


def run_generate_video(args) -> list[Path]:
    import torch

    from mmgen.utils.video import write_video

    if args.class_labels or not args.prompt:
        raise UsageError("`mmgen generate video` needs --prompt TEXT (text-to-video)")
    if getattr(args, "num_candidates", None) is not None:
        raise UsageError("--num-candidates reranks images by a pipeline's scorer; a video "
                         "model has none")  # fmt: skip
    pipe = load_video_pipeline(args.model or "moving-shapes-t2v", args.device)
    out = pipe(
        args.prompt,
        negative_prompt=args.negative_prompt,
        num_videos_per_prompt=1 if args.num_images is None else args.num_images,
        num_frames=args.num_frames,
        generator=torch.Generator().manual_seed(args.seed),
        show_progress=True,
        **sampling_kwargs(args),
    )
    paths = video_paths(args.out, len(out.frames))
    for frames, path in zip(out.frames, paths):
        write_video(frames, path, fps=args.fps)
    print(f"wrote {len(paths)} video(s) of {len(out.frames[0])} frames at {args.fps} fps: "
          + ", ".join(map(str, paths)))  # fmt: skip
    return paths


def run_eval_moving_shapes(args) -> dict:
    from mmgen.eval.moving_shapes_eval import evaluate_moving_shapes, format_report

    pipe = load_video_pipeline(args.model, check_device(args.device))
    return run_task_eval(args, pipe, evaluate_moving_shapes, format_report, "contact_sheet.png",
                         num_frames=args.num_frames, given_frames=args.given_frames)  # fmt: skip
