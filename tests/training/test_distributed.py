"""Two processes (torchrun + accelerate, CPU, gloo) train exactly like one process with
gradient accumulation 2 on the same data."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
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
