"""Two processes (torchrun + accelerate, CPU, gloo) train exactly like one process with
gradient accumulation 2 on the same data."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_recipes import losses, run, t2i_recipe

from mmgen.training.summary import read_metrics as records

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("order", ["next_token", "next_scale"])
def test_two_processes_match_one_process_with_gradient_accumulation(
    order, trained_vq, trained_msvq, tmp_path
):
    import yaml

    tokenizer = trained_msvq if order == "next_scale" else trained_vq[0] / "final"
    # condition dropout on, so that per-slot random draws are part of what must match
    common = dict(max_steps=4, lr_schedule="constant", condition_dropout=0.5, validation_steps=4)
    two = t2i_recipe(tmp_path, tokenizer, name="two_processes", **common)
    # next-scale: each rank builds its inputs with the tokenizer
    two.write_text(yaml.safe_dump({**yaml.safe_load(two.read_text()), "order": {"name": order}}))
    # torchrun starts the processes; accelerate sees WORLD_SIZE=2 on CPU: MULTI_CPU over gloo
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1",
        "--master_port", str(free_port()),
        str(REPO / "tools" / "train.py"),
        "--config", str(two),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    one = t2i_recipe(
        tmp_path, tokenizer, name="one_process", gradient_accumulation_steps=2, **common
    )
    run(one, order={"name": order})
    two_losses, one_losses = losses(tmp_path / "two_processes"), losses(tmp_path / "one_process")
    assert sorted(two_losses) == [1, 2, 3, 4]
    assert {r["num_processes"] for r in records(tmp_path / "two_processes")} == {2}
    assert {r["num_processes"] for r in records(tmp_path / "one_process")} == {1}
    assert two_losses == pytest.approx(one_losses, rel=1e-5)
    # the weights moved (a real run, not four copies of step 1)
    assert len({round(v, 6) for v in one_losses.values()}) == 4


def fsdp_command(recipe, *extra) -> list[str]:
    """``accelerate launch`` with the shipped FSDP config, two processes on this CPU."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "configs" / "accelerate" / "fsdp.yaml"),
        "--num_processes", "2",
        "--main_process_port", str(free_port()),
        str(REPO / "tools" / "train.py"),
        "--config", str(recipe), *extra,
    ]  # fmt: skip


def run_launch(command):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)


def launch_fsdp(recipe, *extra) -> str:
    """Train ``recipe`` under FSDP on two CPU processes; what they printed."""
    done = run_launch(fsdp_command(recipe, *extra))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def test_fsdp_on_cpu_trains_like_one_process_and_resumes_from_sharded_checkpoints(
    trained_vq, tmp_path
):
    from mmgen import TextToImagePipeline

    tokenizer = trained_vq[0] / "final"
    common = dict(max_steps=4, lr_schedule="constant", condition_dropout=0.5, validation_steps=4)
    printed = launch_fsdp(t2i_recipe(tmp_path, tokenizer, name="fsdp", **common))
    assert "FSDP2 on CPU over gloo: 2 processes, state dict SHARDED_STATE_DICT" in printed
    # each process wrote its own shards of the weights and the optimizer state
    checkpoint = tmp_path / "fsdp" / "checkpoints" / "checkpoint-4"
    shards = sorted(p.name for p in (checkpoint / "pytorch_model_fsdp_0").iterdir())
    assert [s for s in shards if s.endswith(".distcp")] == ["__0_0.distcp", "__1_0.distcp"]

    one = t2i_recipe(tmp_path, tokenizer, name="one", gradient_accumulation_steps=2, **common)
    run(one)
    fsdp_losses, one_losses = losses(tmp_path / "fsdp"), losses(tmp_path / "one")
    assert sorted(fsdp_losses) == [1, 2, 3, 4]
    assert {r["num_processes"] for r in records(tmp_path / "fsdp")} == {2}
    assert fsdp_losses == pytest.approx(one_losses, rel=1e-5)
    assert len({round(v, 6) for v in one_losses.values()}) == 4  # the weights moved

    # stopped after step 2, resumed from its sharded checkpoint: steps 3 and 4 as unbroken
    split = t2i_recipe(tmp_path, tokenizer, name="split", **common)
    launch_fsdp(split, "--max_train_steps", "2")
    printed = launch_fsdp(split, "--resume_from_checkpoint", "latest")
    assert "checkpoint-2 at step 2" in printed
    assert losses(tmp_path / "split") == pytest.approx(fsdp_losses, rel=1e-6)

    # the export holds plain weights: one process loads them and generates
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "fsdp" / "final")
    reference = TextToImagePipeline.from_pretrained(tmp_path / "one" / "final")
    for name, tensor in reference.transformer.state_dict().items():
        torch.testing.assert_close(pipe.transformer.state_dict()[name], tensor, rtol=1e-4,
                                   atol=1e-5)  # fmt: skip
    image = pipe("a red circle", generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (pipe.image_size, pipe.image_size)


def test_fsdp_refuses_ema_with_a_clear_error(trained_vq, tmp_path):
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="ema", ema_decay=0.9)
    done = run_launch(fsdp_command(recipe))
    assert done.returncode != 0
    assert "training.ema_decay > 0 is not supported with FSDP" in done.stderr
