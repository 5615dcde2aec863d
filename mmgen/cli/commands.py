"""What each ``mmgen`` sub-command does, given its parsed arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmgen.cli.errors import UsageError, check_device
from mmgen.cli.parser import build_parser

SAMPLING_FLAGS = (
    "guidance_scale",
    "guidance_schedule",
    "guidance_cutoff",
    "temperature",
    "top_k",
    "top_p",
    "num_inference_steps",
    "flexrope_slope",
    "num_candidates",
)


def sampling_kwargs(args) -> dict:
    """The sampling flags the user gave (the others keep the pipeline's saved defaults)."""
    return {n: getattr(args, n) for n in SAMPLING_FLAGS if getattr(args, n, None) is not None}


def run_train(args) -> dict:
    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task
    from mmgen.training.trainer import train

    config = load_run_config(
        args.config,
        output_dir=args.output_dir,
        seed=args.seed,
        report_to=args.report_to,
        cache_dir=args.cache_dir,
        tokenizer=getattr(args, "tokenizer", None),
        **{
            "training.max_steps": args.max_train_steps,
            "training.mixed_precision": args.mixed_precision,
            "data.strict": args.strict_data,
        },
    )
    is_tokenizer = config.task == "tokenizer"
    if is_tokenizer != (args.what == "tokenizer"):
        other = "tokenizer" if is_tokenizer else "model"
        raise UsageError(
            f"{args.config} is a '{config.task}' recipe, not a {args.what} recipe: "
            f"run `mmgen train {other} --config {args.config}`"
        )
    return train(config, build_task(config), resume_from_checkpoint=args.resume_from_checkpoint)


def load_image_pipeline(model: str, device: str):
    """Any image pipeline folder or built-in name (its class from model_index.json)."""
    from mmgen.pipelines.ar_image import ARImagePipeline

    return ARImagePipeline.from_pretrained(model, device=check_device(device))


def load_pipeline_of_kind(model: str, device: str, pipeline_class, what: str):
    """A pipeline folder or built-in name that must be a ``pipeline_class`` (``what``: video,
    audio); any other model is a usage error naming the command that runs it."""
    pipe = load_image_pipeline(model, device)
    if not isinstance(pipe, pipeline_class):
        raise UsageError(f"{model} is a {type(pipe).__name__}, not {article(what)} {what} "
                         f"model: run `mmgen generate {media_kind(pipe)}`, or give a "
                         f"text-to-{what} model")  # fmt: skip
    return pipe


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def media_kind(pipe) -> str:
    """``image``, ``video`` or ``audio``: what a pipeline generates (its generate command)."""
    from mmgen.pipelines.text_to_audio import TextToAudioPipeline
    from mmgen.pipelines.text_to_video import TextToVideoPipeline

    if isinstance(pipe, TextToVideoPipeline):
        return "video"
    return "audio" if isinstance(pipe, TextToAudioPipeline) else "image"


def numbered_paths(out: str, count: int, suffixes: tuple[str, ...], what: str) -> list[Path]:
    """Where ``count`` files go: ``out`` itself for one, ``out`` with ``_0``, ``_1``... before
    the suffix for several.

    Raises:
        UsageError: when ``out``'s suffix is not one of ``suffixes``.
    """
    path = Path(out)
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out {path}: {what} is written as {' or '.join(suffixes)}")
    if count == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{i}{path.suffix}") for i in range(count)]


def run_generate(args) -> Path | list[Path]:
    if args.what == "video":
        from mmgen.cli.video import run_generate_video

        return run_generate_video(args)
    if args.what == "audio":
        from mmgen.cli.audio import run_generate_audio

        return run_generate_audio(args)
    return run_generate_image(args)


def run_generate_image(args) -> Path:
    import torch

    from mmgen.pipelines.class_to_image import ClassToImagePipeline
    from mmgen.utils.images import image_grid

    if args.num_frames is not None or args.flexrope_slope is not None:
        raise UsageError("--num-frames and --flexrope-slope are for `mmgen generate video`")
    args.model = args.model or "shapes-t2i"
    args.num_images = 4 if args.num_images is None else args.num_images
    pipe = load_image_pipeline(args.model, args.device)
    if media_kind(pipe) != "image":
        raise UsageError(f"{args.model} is a {media_kind(pipe)} model: run `mmgen generate "
                         f"{media_kind(pipe)}`")  # fmt: skip
    generator = torch.Generator().manual_seed(args.seed)
    common = dict(generator=generator, show_progress=True, **sampling_kwargs(args))
    if isinstance(pipe, ClassToImagePipeline):
        if args.prompt or not args.class_labels:
            raise UsageError(
                f"{args.model} is a class-to-image model: give --class N "
                f"(0 to {pipe.condition_tokenizer.num_classes - 1}), not --prompt"
            )
        if args.negative_prompt is not None:
            raise UsageError(
                f"{args.model} is a class-to-image model: --negative-prompt is "
                "for text-to-image models"
            )
        conditions = args.class_labels
        images = pipe(conditions, num_images_per_class=args.num_images, **common).images
    else:
        if args.class_labels or not args.prompt:
            raise UsageError(
                f"{args.model} is a text-to-image model: give --prompt TEXT, not --class"
            )
        conditions = args.prompt
        images = pipe(
            conditions,
            negative_prompt=args.negative_prompt,
            num_images_per_prompt=args.num_images,
            **common,
        ).images
    out = Path(args.out or "grid.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    image_grid(images, cols=args.num_images, scale=2).save(out)
    kind = "class" if isinstance(pipe, ClassToImagePipeline) else "prompt"
    kind += "" if len(conditions) == 1 else ("es" if kind == "class" else "s")
    print(f"wrote {len(images)} images ({len(conditions)} {kind} x {args.num_images}) to {out}")
    return out


def run_eval_digits(args) -> dict:
    import torch

    from mmgen.eval.digits_eval import evaluate_digits, format_digits_report
    from mmgen.pipelines.class_to_image import ClassToImagePipeline
    from mmgen.pipelines.outputs import to_output_type
    from mmgen.utils.images import image_grid
    from mmgen.utils.serialization import write_json

    pipe = ClassToImagePipeline.from_pretrained(args.model, device=check_device(args.device))
    labels = list(range(pipe.condition_tokenizer.num_classes))
    images = pipe(
        labels,
        num_images_per_class=args.num_per_class,
        output_type="pt",
        generator=torch.Generator().manual_seed(args.seed),
        show_progress=True,
        **sampling_kwargs(args),
    ).images  # (N, 1, H, W) in [0, 1]
    targets = torch.tensor(labels).repeat_interleave(args.num_per_class)
    report = evaluate_digits(images * 2 - 1, targets)
    report["sampling"] = sampling_kwargs(args)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)
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


def run_eval_tokenizer(args) -> dict:
    from mmgen.builtin import resolve_component_path
    from mmgen.eval import tokenizer_eval
    from mmgen.utils.serialization import load_component

    tokenizer = load_component(resolve_component_path(args.model))
    if args.task == "shapes":
        metrics = tokenizer_eval.evaluate_reconstruction(tokenizer, num_images=args.num_images)
    else:  # held-out clips of a video or audio task
        evaluate = {"moving-shapes": tokenizer_eval.evaluate_clip_reconstruction,
                    "tones": tokenizer_eval.evaluate_audio_reconstruction}[args.task]  # fmt: skip
        metrics = evaluate(tokenizer, num_clips=args.num_images)
    for key, value in metrics.items():
        print(f"{key}: {value:.4f}" if isinstance(value, float) else f"{key}: {value}")
    return metrics


def run_task_eval(args, pipe, evaluate, format_report, picture: str, **options) -> dict:
    """Score ``pipe`` with a task's ``evaluate`` (the shared ``--num-prompts``, ``--seed``,
    ``--batch-size``, ``--out-dir`` and sampling flags, plus ``options``), print its table and
    where the report and the ``picture`` file went."""
    out_dir = Path(args.out_dir)
    report = evaluate(pipe, num_prompts=args.num_prompts, seed=args.seed,
                      batch_size=args.batch_size, out_dir=out_dir, **options,
                      **sampling_kwargs(args))  # fmt: skip
    print(format_report(report))
    print(f"report: {out_dir / 'report.json'}  picture: {out_dir / picture}")
    return report


def run_eval_shapes(args) -> dict:
    from mmgen.eval.shapes_eval import evaluate_shapes, format_report
    from mmgen.pipelines.text_to_image import TextToImagePipeline

    pipe = TextToImagePipeline.from_pretrained(args.model, device=check_device(args.device))
    return run_task_eval(args, pipe, evaluate_shapes, format_report, "samples.png")


def run_eval(args) -> dict:
    if args.what == "moving-shapes":
        from mmgen.cli.video import run_eval_moving_shapes

        return run_eval_moving_shapes(args)
    if args.what == "tones":
        from mmgen.cli.audio import run_eval_tones

        return run_eval_tones(args)
    runs = {"digits": run_eval_digits, "tokenizer": run_eval_tokenizer, "shapes": run_eval_shapes}
    return runs[args.what](args)


def run_list(args) -> None:
    """Print what exists, from the registries the code resolves names with."""
    from mmgen.builtin import BUILTIN_MODELS, BUILTIN_TOKENIZERS
    from mmgen.models.heads import HEAD_KINDS
    from mmgen.models.inputs import INPUT_KINDS
    from mmgen.orders.base import ORDERS
    from mmgen.registry import KNOWN_CLASSES

    def section(title: str, rows: dict[str, str]) -> None:
        print(f"{title}:")
        width = max(map(len, rows))
        for name, what in rows.items():
            print(f"  {name:{width}}  {what}")

    section("built-in models (--model NAME)", BUILTIN_MODELS)
    section("built-in tokenizers (a recipe's `tokenizer: NAME`)", BUILTIN_TOKENIZERS)
    section("orders (recipe `order: {name: ...}`)", ORDERS)
    section("input adapters (`input: {kind: ...}`)", INPUT_KINDS)
    section("heads (`head: {kind: ...}`)", HEAD_KINDS)
    section("component classes (model_index.json, `model_class`)", KNOWN_CLASSES)
    print("modalities: image (text-to-image, class-to-image), video (text-to-video), audio "
          "(text-to-audio)")  # fmt: skip
    print("anything outside mmgen: name it 'package.module:ClassName'")


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
    gen = parser.parse_args(
        ["generate", "image", *prompts, "--num-images", "4", "--seed", "0", "--out", str(args.out)]
    )
    if not args.train:
        path = run_generate_image(gen)
        print(f"one row per prompt: {DEMO_PROMPTS}")
        return path
    from mmgen.training.config import recipes_dir

    configs = recipes_dir()
    out = Path(args.output_dir)
    steps = [] if args.max_train_steps is None else ["--max-train-steps", str(args.max_train_steps)]

    def train_command(what: str, recipe: str, folder: str) -> argparse.Namespace:
        return parser.parse_args(
            [
                "train",
                what,
                "--config",
                str(configs / recipe),
                "--output-dir",
                str(out / folder),
                "--resume-from-checkpoint",
                "latest",
                *steps,
            ]
        )

    run_train(train_command("tokenizer", "demo_vq.yaml", "vq"))
    t2i = train_command("model", "demo_t2i.yaml", "t2i")
    t2i.tokenizer = str(out / "vq" / "final")
    run_train(t2i)
    gen.model = str(out / "t2i" / "final")
    return run_generate_image(gen)


COMMANDS = {
    "train": run_train,
    "generate": run_generate,
    "eval": run_eval,
    "demo": run_demo,
    "list": run_list,
}
