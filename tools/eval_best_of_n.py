"""Best of N on ``shapes``: can the model draw a prompt at all, and can it tell its own good
samples? N images per prompt; prints the pass rate per sample, the share of prompts with at
least one passing sample (an oracle pick), and the pass rate of the sample picked by the
model's own teacher-forced log p(x | prompt) and by log p(x | prompt) - log p(x | "").

    python tools/eval_best_of_n.py --model shapes-t2i-shuffle [--num-prompts 100]
        [--num-samples 4] [--seed 1] [--guidance-scale G --temperature T]

Image i of prompt j is sampled from ``torch.Generator().manual_seed(seed + 1 + j * N + i)``;
the prompts from ``manual_seed(seed)`` (the eval's prompts for the same seed).
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    from mmgen.eval.prefix_eval import best_of_n
    from mmgen.pipelines.text_to_image import TextToImagePipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="built-in name or pipeline folder")
    parser.add_argument("--num-prompts", type=int, default=100)
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--guidance-scale", type=float)
    parser.add_argument("--temperature", type=float)
    args = parser.parse_args(argv)
    if args.num_prompts < 1 or args.num_samples < 1:
        parser.error("--num-prompts and --num-samples must be >= 1")
    pipe = TextToImagePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    sampling = {"guidance_scale": args.guidance_scale, "temperature": args.temperature}
    sampling = {k: v for k, v in sampling.items() if v is not None}
    rates = best_of_n(pipe, num_prompts=args.num_prompts, num_samples=args.num_samples,
                      seed=args.seed, **sampling)  # fmt: skip
    print(f"model {args.model}: {args.num_prompts} prompts x {args.num_samples} samples, "
          f"seed {args.seed}")  # fmt: skip
    for name, rate in rates.items():
        print(f"{name:<40} {rate:>6.3f}")


if __name__ == "__main__":
    main()
