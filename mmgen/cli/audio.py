"""The audio sub-commands: ``mmgen generate audio`` and ``mmgen eval tones``."""

from __future__ import annotations

from pathlib import Path

from mmgen.cli.commands import (
    load_pipeline_of_kind,
    numbered_paths,
    run_task_eval,
    sampling_kwargs,
)
from mmgen.cli.errors import UsageError, check_device

AUDIO_SUFFIXES = (".wav",)


def load_audio_pipeline(model: str, device: str):
    """An audio pipeline folder or built-in name; an image or video model is a usage error."""
    from mmgen.pipelines.text_to_audio import TextToAudioPipeline

    return load_pipeline_of_kind(model, device, TextToAudioPipeline, "audio")


def run_generate_audio(args) -> list[Path]:
    import torch

    from mmgen.utils.audio import write_wav

    if args.class_labels or not args.prompt:
        raise UsageError("`mmgen generate audio` needs --prompt TEXT (text-to-audio)")
    if getattr(args, "num_candidates", None) is not None:
        raise UsageError("--num-candidates reranks images by a pipeline's scorer; an audio "
                         "model has none")  # fmt: skip
    if args.num_frames is not None or args.flexrope_slope is not None:
        raise UsageError("--num-frames and --flexrope-slope are for `mmgen generate video`")
    if args.top_k is not None or args.top_p is not None:
        raise UsageError("--top-k and --top-p filter codes; an audio model's flow head draws "
                         "continuous latents (use --temperature)")  # fmt: skip
    pipe = load_audio_pipeline(args.model or "tones-t2a", args.device)
    out = pipe(
        args.prompt,
        negative_prompt=args.negative_prompt,
        num_audios_per_prompt=1 if args.num_images is None else args.num_images,
        generator=torch.Generator().manual_seed(args.seed),
        show_progress=True,
        **sampling_kwargs(args),
    )
    paths = numbered_paths(args.out or "clip.wav", len(out.audios), AUDIO_SUFFIXES, "audio")
    for audio, path in zip(out.audios, paths):
        write_wav(path, audio, out.sample_rate)
    seconds = len(out.audios[0]) / out.sample_rate
    print(f"wrote {len(paths)} clip(s) of {seconds:.2f} s at {out.sample_rate} Hz: "
          + ", ".join(map(str, paths)))  # fmt: skip
    return paths


def run_eval_tones(args) -> dict:
    from mmgen.eval.tones_eval import evaluate_tones, format_report

    pipe = load_audio_pipeline(args.model, check_device(args.device))
    return run_task_eval(args, pipe, evaluate_tones, format_report, "spectrograms.png")
