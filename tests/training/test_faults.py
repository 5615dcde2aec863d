"""Training survives faults: SIGTERM, SIGKILL in the middle of a checkpoint save; EMA weights
are saved, restored and exported; a finished run leaves a loss curve and its last samples."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from safetensors.torch import load_file
from training_recipes import losses, reset_accelerate, resumed_step, run, t2i_recipe

from mmgen.training.checkpoints import FAULT_PAUSE_ENV, list_checkpoints


def mmgen_command() -> list[str]:
    script = shutil.which("mmgen") or str(Path(sys.executable).parent / "mmgen")
    return [script]


def start_training(recipe: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        mmgen_command() + ["train", "model", "--config", str(recipe)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def wait_for(condition, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(
                f"training exited early while waiting for {what}:\n{process.stdout.read()}"
            )
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def logged_steps(output_dir: Path) -> int:
    path = output_dir / "logs" / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(trained_vq, tmp_path, capsys):
    tokenizer = trained_vq[0] / "final"
    recipe = t2i_recipe(
        tmp_path,
        tokenizer,
        name="term",
        lr_schedule="constant",
        max_steps=100_000,
        checkpointing_steps=100_000,
        validation_steps=100_000,
    )
    out = tmp_path / "term"
    process = start_training(recipe)
    wait_for(lambda: logged_steps(out) >= 3, 180, "three logged steps", process)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    match = re.search(r"stopped by SIGTERM at step (\d+); checkpoint saved", output)
    assert match, output
    stopped = int(match.group(1))
    assert [p.name for p in list_checkpoints(out)] == [f"checkpoint-{stopped}"]
    assert (out / "checkpoints" / f"checkpoint-{stopped}" / "model.safetensors").is_file()
    assert not (out / "final").exists()  # stopped early: nothing exported

    # resuming continues where it stopped, as if it had never been interrupted
    capsys.readouterr()
    run(recipe, resume="latest", **{"training.max_steps": stopped + 2})
    assert resumed_step(capsys.readouterr().out) == stopped
    reset_accelerate()
    reference = t2i_recipe(tmp_path, tokenizer, name="ref", lr_schedule="constant")
    run(reference, **{"training.max_steps": stopped + 2})
    resumed = losses(out)
    assert sorted(resumed) == list(range(1, stopped + 3))
    assert resumed == pytest.approx(losses(tmp_path / "ref"), rel=1e-6)


def test_sigkill_during_a_checkpoint_save_resumes_from_the_previous_one(
    trained_vq, tmp_path, capsys
):
    tokenizer = trained_vq[0] / "final"
    # cosine schedule and EMA on: the scheduler and the EMA must be restored too
    common = dict(max_steps=6, warmup_steps=2, ema_decay=0.9)
    recipe = t2i_recipe(tmp_path, tokenizer, name="kill", checkpointing_steps=2, **common)
    out = tmp_path / "kill"
    tmp_folder = out / "checkpoints" / ".tmp-checkpoint-4"
    # the process sleeps between writing checkpoint 4's files and renaming its folder
    process = start_training(recipe, env={FAULT_PAUSE_ENV: "4:120"})
    wait_for(lambda: (tmp_folder / "model.safetensors").is_file(), 180, "the save", process)
    time.sleep(1.0)  # inside the pause: every file of the temporary folder is written
    process.kill()  # SIGKILL
    process.communicate(timeout=60)
    assert tmp_folder.is_dir()
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-2"]  # never a half checkpoint

    assert logged_steps(out) == 4  # steps 3 and 4 were logged before the kill
    capsys.readouterr()
    metrics = run(recipe, resume="latest")
    assert resumed_step(capsys.readouterr().out) == 2
    assert metrics == {}
    assert [p.name for p in list_checkpoints(out)] == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-6",
    ]
    assert not tmp_folder.exists()
    reset_accelerate()
    run(t2i_recipe(tmp_path, tokenizer, name="ref", **common))
    assert sorted(losses(out)) == [1, 2, 3, 4, 5, 6]  # 3 and 4 once: logged again after resume
    assert losses(out) == losses(tmp_path / "ref")  # exactly
    weights = "final/transformer/model.safetensors"
    resumed, reference = load_file(out / weights), load_file(tmp_path / "ref" / weights)
    assert all(resumed[k].equal(reference[k]) for k in reference)


def test_ema_weights_are_exported_and_restored_on_resume(trained_vq, tmp_path, capsys):
    tokenizer = trained_vq[0] / "final"
    full = t2i_recipe(tmp_path, tokenizer, name="full", ema_decay=0.9, lr_schedule="constant")
    run(full)
    exported = load_file(tmp_path / "full" / "final" / "transformer" / "model.safetensors")
    raw = load_file(tmp_path / "full" / "checkpoints" / "checkpoint-4" / "model.safetensors")
    assert exported.keys() == raw.keys()
    assert any(not exported[k].equal(raw[k]) for k in exported)  # the average, not the last step

    reset_accelerate()
    split = t2i_recipe(tmp_path, tokenizer, name="split", ema_decay=0.9, lr_schedule="constant")
    run(split, **{"training.max_steps": 2})
    reset_accelerate()
    capsys.readouterr()
    run(split, resume="latest")
    assert resumed_step(capsys.readouterr().out) == 2
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    resumed = load_file(tmp_path / "split" / "final" / "transformer" / "model.safetensors")
    assert all(resumed[k].equal(exported[k]) for k in exported)


def test_ema_decay_outside_zero_one_is_rejected(trained_vq, tmp_path):
    from mmgen.training.config import load_run_config
    from mmgen.utils.config import ConfigError

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", ema_decay=1.0)
    with pytest.raises(ConfigError, match="ema_decay"):
        load_run_config(recipe)


def test_finished_run_writes_loss_curve_and_last_sample_grid(trained_vq, tmp_path):
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="summary", validation_steps=2)
    run(recipe)
    out = tmp_path / "summary"
    curve = Image.open(out / "loss_curve.png")
    assert curve.size == (640, 360)
    assert (
        len(curve.convert("RGB").getcolors(maxcolors=2**16)) > 2
    )  # axes, text and a line were drawn
    newest = sorted((out / "samples").glob("step_*.png"))[-1]
    assert newest.name == "step_0000004.png"
    assert (out / "last_samples.png").read_bytes() == newest.read_bytes()
