"""Tiny training recipes and helpers shared by the training tests (``pythonpath = tests``)."""

import json

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
            "training": {
                "batch_size": 4,
                "max_steps": 4,
                "warmup_steps": 1,
                "log_steps": 1,
                "checkpointing_steps": 2,
                "validation_steps": 100,
                **training,
            },
        },
    )


def run(path, resume=None, **overrides):
    config = load_run_config(path, **overrides)
    return train(config, build_task(config), resume_from_checkpoint=resume)


def losses(output_dir):
    lines = (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}
