"""Tiny training recipes and helpers shared by the training tests (``pythonpath = tests``)."""

import json
import re
from pathlib import Path

import yaml

from mmgen.training.config import load_run_config
from mmgen.training.tasks import build_task
from mmgen.training.trainer import train


def reset_accelerate() -> None:
    """accelerate keeps process-wide singletons; each in-process run needs fresh ones."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


# two steps of batch 8, everything logged, saved and validated at the end
TINY_TRAINING = {"batch_size": 8, "max_steps": 2, "warmup_steps": 1, "log_steps": 1,
                 "checkpointing_steps": 2, "validation_steps": 2}  # fmt: skip


def write(path, data):
    path.write_text(yaml.safe_dump(data))
    return path


def vq_recipe(tmp_path, **training):
    return write(
        tmp_path / "vq.yaml",
        {
            "task": "tokenizer",
            "output_dir": str(tmp_path / "vq"),
            "data": {"num_samples": 32},
            "model": {
                "block_out_channels": [8, 8],
                "norm_num_groups": 4,
                "latent_channels": 8,
                "codebook_size": 16,
            },
            "training": {
                "batch_size": 4,
                "max_steps": 2,
                "warmup_steps": 1,
                "log_steps": 1,
                "checkpointing_steps": 2,
                "validation_steps": 2,
                **training,
            },
        },
    )


def tiny_training(**overrides) -> dict:
    """The ``training`` section of the tests' generator recipes: 4 steps of batch 4, a
    checkpoint every 2, no validation unless ``validation_steps`` is lowered."""
    return {
        "batch_size": 4,
        "max_steps": 4,
        "warmup_steps": 1,
        "log_steps": 1,
        "checkpointing_steps": 2,
        "validation_steps": 100,
        **overrides,
    }


def t2i_recipe(tmp_path, tokenizer, name="t2i", **training):
    return write(
        tmp_path / f"{name}.yaml",
        {
            "task": "text_to_image",
            "output_dir": str(tmp_path / name),
            "tokenizer": str(tokenizer),
            "text_max_length": 24,
            "data": {"num_samples": 32},
            "model": {"preset": "debug"},
            "validation_prompts": ["a red circle"],
            "training": tiny_training(**training),
        },
    )


def run(path, resume=None, **overrides):
    config = load_run_config(path, **overrides)
    return train(config, build_task(config), resume_from_checkpoint=resume)


def watch_training(path, *, head_dtypes: bool = False, **overrides) -> dict:
    """``run`` that also records what the training loop did to the task: the model object
    every loss call received, the number of loss calls (micro-batches) and of real optimizer
    steps, and with ``head_dtypes`` the dtype of the head's output in each training forward."""
    config = load_run_config(path, **overrides)
    task = build_task(config)
    seen = {"models": [], "micro_batches": 0, "optimizer_steps": 0, "head_dtypes": []}
    in_loss = []
    build_model, loss = task.build_model, task.loss

    def watched_build_model():
        model = build_model()
        if head_dtypes:
            model.head.register_forward_hook(record_head_dtype)
        return model

    def record_head_dtype(module, args, out) -> None:
        if in_loss:  # training forwards only (validation samples run the model too)
            seen["head_dtypes"].append(out.dtype)

    def watched_loss(model, batch, generator):
        seen["models"].append(model)
        seen["micro_batches"] += 1
        in_loss.append(True)
        try:
            return loss(model, batch, generator)
        finally:
            in_loss.clear()

    def count_step(optimizer, args, kwargs):
        seen["optimizer_steps"] += 1

    task.build_model, task.loss = watched_build_model, watched_loss
    from torch.optim.optimizer import register_optimizer_step_post_hook

    hook = register_optimizer_step_post_hook(count_step)
    try:
        seen["result"] = train(config, task)
    finally:
        hook.remove()
    return seen


def losses(output_dir):
    """step -> logged loss; every step must appear exactly once, in order (a resumed run that
    started again from step 0 would log its steps twice)."""
    lines = (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), f"steps logged out of order or twice: {steps}"
    return {r["step"]: r["loss"] for r in records}


def resumed_step(printed: str) -> int:
    """The step a run said it resumed at (``resumed from .../checkpoint-N at step N``)."""
    match = re.search(r"resumed from \S*checkpoint-(\d+) at step (\d+)", printed)
    assert match, f"the run did not report a resume:\n{printed[-2000:]}"
    assert match.group(1) == match.group(2), match.group(0)
    return int(match.group(2))


def run_full_and_split(make_recipe, capsys) -> tuple[str, dict]:
    """Run ``make_recipe("full")`` to its end and ``make_recipe("split")`` to step 2, then
    resume the split one from its latest checkpoint: what the resumed run printed and its last
    validation record (the caller compares the two runs' losses)."""
    run(make_recipe("full"))
    reset_accelerate()
    recipe = make_recipe("split")
    run(recipe, **{"training.max_steps": 2})
    reset_accelerate()
    capsys.readouterr()
    run(recipe, resume="latest")
    printed = capsys.readouterr().out
    logs = Path(load_run_config(recipe).output_dir) / "logs"
    validation = json.loads((logs / "validations.jsonl").read_text().splitlines()[-1])
    return printed, validation
