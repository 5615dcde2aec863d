"""Where a shapes model's errors come from: pass rates with the first k groups taken from the
truth (the tokenizer's codes of a rendering of each prompt) and the rest generated.

    python tools/eval_true_prefix.py --model shapes-t2i-scale [--num-prompts 200] [--seed 0]
        [--groups 0 1 2 3] [--guidance-scale G --temperature T]

By default every group count is tried for orders of at most 16 groups (the scale orders), and
0, 1/4, 1/2, 3/4 of the groups and all of them for longer ones. The step from k to k + 1 true
groups is what sampling group k costs; all groups true is the tokenizer's reconstruction.
The last row samples every group given the true earlier groups ("teacher-forced"): what the
model gets wrong drawing with a correct context, against the free-running 0 row.
"""

from __future__ import annotations

import argparse


def default_counts(num_groups: int) -> list[int]:
    """Every count 0..G for G <= 16 groups, else 0, G/4, G/2, 3G/4, G."""
    if num_groups <= 16:
        return list(range(num_groups + 1))
    return [0, num_groups // 4, num_groups // 2, 3 * num_groups // 4, num_groups]


def main(argv: list[str] | None = None) -> None:
    from mmgen.eval.prefix_eval import evaluate_teacher_forced, evaluate_true_prefix
    from mmgen.pipelines.text_to_image import TextToImagePipeline

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="built-in name or pipeline folder")
    parser.add_argument("--num-prompts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, nargs="+", help="true group counts to try")
    parser.add_argument("--guidance-scale", type=float)
    parser.add_argument("--temperature", type=float)
    args = parser.parse_args(argv)

    pipe = TextToImagePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    counts = args.groups or default_counts(pipe.order.num_groups)
    sampling = {"guidance_scale": args.guidance_scale, "temperature": args.temperature}
    sampling = {k: v for k, v in sampling.items() if v is not None}
    rates = evaluate_true_prefix(pipe, counts, num_prompts=args.num_prompts, seed=args.seed,
                                 **sampling)  # fmt: skip
    forced = evaluate_teacher_forced(pipe, num_prompts=args.num_prompts, seed=args.seed,
                                     **sampling)  # fmt: skip
    scales = getattr(pipe.order, "scales", None)
    print(f"model {args.model}: order {pipe.order.name}, {pipe.order.num_groups} groups, "
          f"{args.num_prompts} prompts, seed {args.seed}")  # fmt: skip
    print(f"{'true groups':<36} {'pass rate':>9}")
    for k, rate in rates.items():
        label = f"{k}" + (f" (scales {list(scales[:k])})" if scales and k else "")
        print(f"{label:<36} {rate:>9.3f}")
    print(f"{'teacher-forced (true context)':<36} {forced:>9.3f}")


if __name__ == "__main__":
    main()
