"""Generation speed with and without the KV cache, measured in the same run.

    python tools/bench_generate.py --model runs/shapes_t2i/final [--num-images 16] [--repeats 2]
    python tools/bench_generate.py --model runs/moving_shapes_t2v/final --num-images 1

Times ``pipe(prompts, ...)`` after loading (the first call is a warm-up) with ``use_cache=True``
and with ``use_cache=False`` (full recompute of the prefix at every group), and prints the ratio.
A text-to-video model makes clips of its training length (``--num-images`` clips per call).
"""

from __future__ import annotations

import argparse

import torch


def main() -> None:
    from mmgen.pipelines.ar_image import ARImagePipeline
    from mmgen.pipelines.text_to_video import TextToVideoPipeline
    from mmgen.utils.benchmark import median_seconds

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    pipe = ARImagePipeline.from_pretrained(args.model, device=args.device)
    pipe.set_progress_bar_config(disable=True)  # time generation, not the bar
    video = isinstance(pipe, TextToVideoPipeline)
    prompt = ("a red circle moving right and a blue square moving left" if video
              else "a red circle to the left of a blue square")  # fmt: skip
    prompts = [prompt] * args.num_images
    unit = f"clips of {pipe.num_frames} frames" if video else "images"

    def seconds(use_cache: bool, warmup: int) -> float:
        return median_seconds(
            lambda: pipe(prompts, generator=torch.Generator().manual_seed(0), use_cache=use_cache),
            args.device,
            args.repeats,
            warmup,
        )

    cached = seconds(True, warmup=1)
    full = seconds(False, warmup=0)
    groups = len(pipe.layout.image_groups)
    print(
        f"model {args.model}: {groups} groups per output, {args.num_images} {unit}, "
        f"{torch.get_num_threads()} CPU threads, device {args.device}"
    )
    print(f"{'path':<28} {'seconds':>8} {'per s':>9}")
    print(f"{'KV cache':<28} {cached:>8.2f} {args.num_images / cached:>9.2f}")
    print(f"{'no cache (full recompute)':<28} {full:>8.2f} {args.num_images / full:>9.2f}")
    print(f"speed-up from the cache: {full / cached:.1f}x")


if __name__ == "__main__":
    main()
