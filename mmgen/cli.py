"""The ``mmgen`` command: train, generate, eval, demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a tokenizer or a generator from a YAML recipe")
    p.add_argument("what", choices=["tokenizer", "model"], help="what the recipe trains")
    p.add_argument("--config", required=True, help="recipe YAML in configs/")
    p.add_argument("--output_dir", help="override the recipe's output_dir")
    p.add_argument("--max_train_steps", type=int, help="override training.max_steps")
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"])
    p.add_argument("--report_to", choices=["tensorboard"])
    p.add_argument("--seed", type=int)
    p.add_argument(
        "--strict_data",
        action="store_true",
        default=None,
        help="raise at the first bad entry of a data folder instead of skipping it",
    )
    p.add_argument(
        "--resume_from_checkpoint", help="a checkpoint folder, or 'latest' in output_dir"
    )


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate from a trained pipeline")
    p.add_argument("what", choices=["image"])
    add_generate_image_args(p)


def add_generate_image_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", default="shapes-t2i", help="built-in model name or save_pretrained folder"
    )
    p.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    p.add_argument("--negative-prompt", default=None)
    p.add_argument("--num-images", type=int, default=4, help="images per prompt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="grid.png", help="where the grid PNG goes")
    add_sampling_args(p)


def add_sampling_args(p: argparse.ArgumentParser) -> None:
    """Sampling knobs (left out: the pipeline's saved defaults) and the device."""
    p.add_argument("--guidance-scale", type=float)
    p.add_argument("--guidance-schedule", choices=["constant", "linear", "cutoff"])
    p.add_argument("--guidance-cutoff", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--device", default="cpu")


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="score a model on a built-in task")
    what = p.add_subparsers(dest="what", required=True)
    s = what.add_parser("shapes", help="text-to-image pass rate on shapes")
    s.add_argument("--model", required=True, help="built-in model name or pipeline folder")
    s.add_argument("--num-prompts", type=int, default=400)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--batch-size", type=int, default=50)
    s.add_argument("--out-dir", default=None, help="report folder (default: eval_shapes/)")
    add_sampling_args(s)
    g = what.add_parser("digits", help="class-to-image accuracy and Frechet distance on digits")
    g.add_argument("--model", default="digits-c2i", help="built-in model name or pipeline folder")
    g.add_argument("--num-per-class", type=int, default=100)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--out-dir", default=None, help="report folder (default: eval_digits/)")
    add_sampling_args(g)
    t = what.add_parser("tokenizer", help="reconstruction pass rate of a VQ tokenizer")
    t.add_argument("--model", required=True, help="VQ folder (config.json + model.safetensors)")
    t.add_argument("--num-images", type=int, default=400)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmgen", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_generate(sub)
    _add_eval(sub)
    d = sub.add_parser("demo", help="generate a grid with the built-in shapes-t2i model")
    d.add_argument("--out", default="demo_grid.png")
    d.add_argument(
        "--train",
        action="store_true",
        help="instead train a small tokenizer and model from scratch (minutes), then generate",
    )
    d.add_argument("--output_dir", default="runs/demo", help="where --train puts its runs")
    d.add_argument(
        "--max_train_steps",
        type=int,
        help="with --train: cap both trainings at this many steps (a quick check of the loop)",
    )
    return parser


def run_train(args) -> dict:
    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task
    from mmgen.training.trainer import train

    config = load_run_config(
        args.config,
        output_dir=args.output_dir,
        seed=args.seed,
        report_to=args.report_to,
        tokenizer=getattr(args, "tokenizer", None),
        **{
            "training.max_steps": args.max_train_steps,
            "training.mixed_precision": args.mixed_precision,
            "data.strict": args.strict_data,
        },
    )
    is_tokenizer = config.task == "tokenizer"
    if is_tokenizer != (args.what == "tokenizer"):
        raise SystemExit(f"{args.config} is a '{config.task}' recipe, not a {args.what} recipe")
    return train(config, build_task(config), resume_from_checkpoint=args.resume_from_checkpoint)


def _sampling_kwargs(args) -> dict:
    names = [
        "guidance_scale",
        "guidance_schedule",
        "guidance_cutoff",
        "temperature",
        "top_k",
        "top_p",
    ]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def run_generate_image(args) -> Path:
    import torch

    from mmgen.pipelines.text_to_image import TextToImagePipeline
    from mmgen.utils.images import image_grid

    pipe = TextToImagePipeline.from_pretrained(args.model, device=args.device)
    images = pipe(
        args.prompt,
        negative_prompt=args.negative_prompt,
        num_images_per_prompt=args.num_images,
        generator=torch.Generator().manual_seed(args.seed),
        show_progress=True,
        **_sampling_kwargs(args),
    ).images
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, cols=args.num_images, scale=2).save(out)
    print(f"wrote {len(images)} images ({len(args.prompt)} prompts x {args.num_images}) to {out}")
    return out


def run_eval_digits(args) -> dict:
    import torch

    from mmgen.eval.digits_eval import evaluate_digits, format_digits_report
    from mmgen.pipelines.class_to_image import ClassToImagePipeline
    from mmgen.utils.images import image_grid
    from mmgen.utils.serialization import write_json

    pipe = ClassToImagePipeline.from_pretrained(args.model, device=args.device)
    labels = list(range(pipe.condition_tokenizer.num_classes))
    images = pipe(
        labels,
        num_images_per_class=args.num_per_class,
        output_type="pt",
        generator=torch.Generator().manual_seed(args.seed),
        show_progress=True,
        **_sampling_kwargs(args),
    ).images  # (N, 1, H, W) in [0, 1]
    targets = torch.tensor(labels).repeat_interleave(args.num_per_class)
    report = evaluate_digits(images * 2 - 1, targets)
    report["sampling"] = _sampling_kwargs(args)
    out_dir = Path(args.out_dir or "eval_digits")
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)
    from mmgen.pipelines.outputs import to_output_type

    shown = images.view(len(labels), args.num_per_class, *images.shape[1:])[:, :8].flatten(0, 1)
    grid = image_grid(
        to_output_type(shown * 2 - 1, "pil"), cols=min(8, args.num_per_class), scale=2
    )
    grid.save(out_dir / "samples.png")
    print(format_digits_report(report))
    print(
        f"report: {out_dir / 'report.json'}  samples: {out_dir / 'samples.png'} (a row per class)"
    )
    return report


def run_eval(args) -> dict:
    if args.what == "digits":
        return run_eval_digits(args)
    if args.what == "tokenizer":
        from mmgen.eval.tokenizer_eval import evaluate_reconstruction
        from mmgen.utils.serialization import load_component

        metrics = evaluate_reconstruction(load_component(args.model), num_images=args.num_images)
        for key, value in metrics.items():
            print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
        return metrics
    from mmgen.eval.shapes_eval import evaluate_shapes, format_report
    from mmgen.pipelines.text_to_image import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(args.model, device=args.device)
    out_dir = Path(args.out_dir or "eval_shapes")
    report = evaluate_shapes(
        pipe,
        num_prompts=args.num_prompts,
        seed=args.seed,
        batch_size=args.batch_size,
        out_dir=out_dir,
        **_sampling_kwargs(args),
    )
    print(format_report(report))
    print(f"report: {out_dir / 'report.json'}  samples: {out_dir / 'samples.png'}")
    return report


DEMO_PROMPTS = [
    "a red circle",
    "two blue squares",
    "a green triangle and a yellow circle",
    "a purple square to the left of a black circle",
]


def run_demo(args) -> Path:
    """Generate a grid with the built-in model, or (``--train``) train the demo recipes first.

    Each step is the command a user would type (parsed by the same parser), so the demo takes
    every option's default exactly as ``mmgen train`` and ``mmgen generate`` do."""
    parser = build_parser()
    prompts = [word for prompt in DEMO_PROMPTS for word in ("--prompt", prompt)]
    gen = parser.parse_args(["generate", "image", *prompts, "--num-images", "4", "--seed", "0",
                             "--out", str(args.out)])  # fmt: skip
    if not args.train:
        path = run_generate_image(gen)
        print(f"one row per prompt: {DEMO_PROMPTS}")
        return path
    configs = Path(__file__).resolve().parent.parent / "configs"
    out = Path(args.output_dir)
    steps = [] if args.max_train_steps is None else ["--max_train_steps", str(args.max_train_steps)]

    def train_command(what: str, recipe: str, folder: str) -> argparse.Namespace:
        return parser.parse_args(["train", what, "--config", str(configs / recipe),
                                  "--output_dir", str(out / folder),
                                  "--resume_from_checkpoint", "latest", *steps])  # fmt: skip

    run_train(train_command("tokenizer", "demo_vq.yaml", "vq"))
    t2i = train_command("model", "demo_t2i.yaml", "t2i")
    t2i.tokenizer = str(out / "vq" / "final")
    run_train(t2i)
    gen.model = str(out / "t2i" / "final")
    return run_generate_image(gen)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "train":
        run_train(args)
    elif args.command == "generate":
        run_generate_image(args)
    elif args.command == "eval":
        run_eval(args)
    elif args.command == "demo":
        run_demo(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
