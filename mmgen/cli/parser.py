"""The ``mmgen`` command line: every sub-command's flags, one spelling style, defaults shown.

Multi-word flags are written ``--num-images`` and also accept ``--num_images`` (the spelling
diffusers' and accelerate's training scripts use).
"""

from __future__ import annotations

import argparse

GUIDANCE_SCHEDULES = ["constant", "linear", "cutoff"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: ...)`` only where there is a default worth reading."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def flag(p: argparse.ArgumentParser, name: str, *others: str, **kwargs) -> argparse.Action:
    """Add ``--a-b`` together with its ``--a_b`` spelling (and any ``others``)."""
    alias = "--" + name[2:].replace("-", "_")
    spellings = [name] + ([alias] if alias != name else []) + list(others)
    return p.add_argument(*spellings, **kwargs)


def command(sub, name: str, help: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)


def add_device(p: argparse.ArgumentParser) -> None:
    flag(p, "--device", default="cpu", help="cpu, cuda, cuda:N or mps")


def add_sampling(p: argparse.ArgumentParser, candidates: bool = True) -> None:
    """Sampling knobs (left out: the pipeline's saved defaults) and the device;
    ``candidates``: ``--num-candidates`` too (image pipelines)."""
    flag(p, "--guidance-scale", type=float, help="classifier-free guidance (1 = off)")
    flag(p, "--guidance-schedule", choices=GUIDANCE_SCHEDULES, help="how guidance varies by group")
    flag(p, "--guidance-cutoff", type=int, help="with 'cutoff': guided groups")
    flag(p, "--temperature", type=float,
         help="softmax temperature (a flow head: the starting noise's scale)")  # fmt: skip
    flag(p, "--top-k", type=int, help="keep the k most likely codes (0 = all)")
    flag(p, "--top-p", type=float, help="nucleus sampling mass (1 = off)")
    flag(p, "--num-inference-steps", type=int, help="Euler steps of a flow head per group")
    if candidates:
        flag(p, "--num-candidates", type=int,
             help="images with a scorer: keep its best of N candidates (1 = off)")  # fmt: skip
    add_device(p)


def add_train(sub) -> None:
    p = command(sub, "train", "train a tokenizer or a generator from a YAML recipe")
    p.add_argument("what", choices=["tokenizer", "model"], help="what the recipe trains")
    flag(p, "--config", required=True, help="a recipe YAML (e.g. configs/shapes_vq.yaml)")
    flag(p, "--output-dir", help="override the recipe's output_dir")
    flag(p, "--max-train-steps", type=int, help="override training.max_steps")
    flag(p, "--mixed-precision", choices=["no", "fp16", "bf16"], help="override the recipe's")
    flag(p, "--report-to", choices=["tensorboard"], help="also log to TensorBoard")
    flag(p, "--seed", type=int, help="override the recipe's seed")
    flag(
        p,
        "--cache-dir",
        help="where encoded training data is kept between runs (default $MMGEN_CACHE or "
        "~/.cache/mmgen)",
    )
    flag(
        p,
        "--strict-data",
        action="store_true",
        default=None,
        help="raise at the first bad entry of a data folder instead of skipping it",
    )
    flag(p, "--resume-from-checkpoint", help="a checkpoint folder, or 'latest' in output_dir")


def add_generate(sub) -> None:
    p = command(sub, "generate", "generate images, videos or audio with a built-in model or a "
                "pipeline")  # fmt: skip
    p.add_argument("what", choices=["image", "video", "audio"], help="what to generate")
    flag(p, "--model", help="built-in model name or pipeline folder (default: shapes-t2i for "
         "images, moving-shapes-t2v for videos, tones-t2a for audio)")  # fmt: skip
    flag(p, "--prompt", action="append", help="a text prompt (text-to-image); repeat for more")
    flag(
        p,
        "--class",
        dest="class_labels",
        action="append",
        type=int,
        help="a class label (class-to-image, e.g. digits-c2i); repeat for more",
    )
    flag(p, "--negative-prompt", help="text-to-image: the prompt guidance steers away from")
    flag(p, "--num-images", type=int, help="images per prompt or class (default 4); videos or "
         "audio clips per prompt (default 1)")  # fmt: skip
    flag(p, "--seed", type=int, default=0, help="seeds the torch.Generator of the run")
    flag(
        p,
        "--out",
        help="image: the grid PNG (default grid.png); video: the .mp4 or .gif (default "
        "clip.mp4); audio: the .wav (default clip.wav); several videos or clips get _0, _1, "
        "... before the suffix",
    )
    flag(p, "--num-frames", type=int, help="video: frames per clip (default: the model's)")
    flag(p, "--fps", type=int, default=8, help="video: frames per second of the file")
    add_video_sampling(p)
    add_sampling(p)


def add_video_sampling(p: argparse.ArgumentParser) -> None:
    flag(
        p,
        "--flexrope-slope",
        type=float,
        help="video: FlexRoPE's attention decay per frame of distance (0 = plain RoPE)",
    )


def add_prompt_eval(what, name: str, help: str, *, model: str | None, num_prompts: int,
                    batch_size: int) -> argparse.ArgumentParser:  # fmt: skip
    """An eval over prompts drawn from a task (shapes, moving-shapes, tones): the shared flags;
    ``model`` None makes ``--model`` required."""
    e = command(what, name, help)
    if model is None:
        flag(e, "--model", required=True, help="built-in model name or pipeline folder")
    else:
        flag(e, "--model", default=model, help="built-in model name or pipeline folder")
    flag(e, "--num-prompts", type=int, default=num_prompts, help="prompts drawn from the task")
    flag(e, "--seed", type=int, default=0, help="seeds the prompts and the sampling")
    flag(e, "--batch-size", type=int, default=batch_size, help="prompts generated at once")
    flag(e, "--out-dir", default=f"eval_{name.replace('-', '_')}", help="report folder")
    return e


def add_eval(sub) -> None:
    p = command(sub, "eval", "score a model on a built-in task")
    what = p.add_subparsers(dest="what", required=True)
    s = add_prompt_eval(what, "shapes", "text-to-image pass rate on shapes (a verifier reads each "
                        "image)", model=None, num_prompts=400, batch_size=50)  # fmt: skip
    add_sampling(s)
    v = add_prompt_eval(what, "moving-shapes", "text-to-video pass rate on moving-shapes (a "
                        "verifier reads every frame)", model="moving-shapes-t2v",
                        num_prompts=200, batch_size=25)  # fmt: skip
    flag(v, "--num-frames", type=int, help="frames per clip (default: the model's)")
    flag(v, "--given-frames", type=int, default=0, help="the first K frames of every clip "
         "from a true clip of its prompt, the rest generated (0: all generated)")  # fmt: skip
    add_video_sampling(v)
    add_sampling(v, candidates=False)
    a = add_prompt_eval(what, "tones", "text-to-audio pass rate on tones (a verifier reads the "
                        "pitch of every note)", model="tones-t2a", num_prompts=200,
                        batch_size=50)  # fmt: skip
    add_sampling(a, candidates=False)
    g = command(what, "digits", "class-to-image accuracy and Frechet distance on digits")
    flag(g, "--model", default="digits-c2i", help="built-in model name or pipeline folder")
    flag(g, "--num-per-class", type=int, default=100, help="images generated per digit")
    flag(g, "--seed", type=int, default=0, help="seeds the sampling")
    flag(g, "--out-dir", default="eval_digits", help="report folder")
    add_sampling(g)
    t = command(what, "tokenizer", "reconstruction pass rate of an image tokenizer on shapes")
    flag(
        t,
        "--model",
        required=True,
        help="tokenizer folder (config.json + model.safetensors) or e.g. shapes-t2i/vq",
    )
    flag(t, "--num-images", type=int, default=400,
         help="held-out images (moving-shapes: clips) reconstructed")  # fmt: skip
    flag(t, "--task", choices=["shapes", "moving-shapes", "tones"], default="shapes",
         help="held-out data: shapes images, moving-shapes clips (a per-frame tokenizer) or "
         "tones clips (an audio tokenizer)")  # fmt: skip


def add_demo(sub) -> None:
    d = command(sub, "demo", "generate a grid with the built-in shapes-t2i model")
    flag(d, "--out", default="demo_grid.png", help="where the grid PNG goes")
    flag(
        d,
        "--train",
        action="store_true",
        help="instead train a small tokenizer and model from scratch (minutes), then generate",
    )
    flag(d, "--output-dir", default="runs/demo", help="where --train puts its runs")
    flag(
        d,
        "--max-train-steps",
        type=int,
        help="with --train: cap both trainings at this many steps (a quick check of the loop)",
    )


def build_parser() -> argparse.ArgumentParser:
    from mmgen import __version__

    parser = argparse.ArgumentParser(
        prog="mmgen",
        description="mmgen: train, generate and evaluate autoregressive image, video and audio "
        "generators.",
        epilog="User errors print one line; --debug (anywhere) or MMGEN_DEBUG=1 shows the "
        "traceback.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mmgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train(sub)
    add_generate(sub)
    add_eval(sub)
    add_demo(sub)
    command(sub, "list", "the built-in models, orders, inputs, heads and component classes")
    return parser
