"""Validations are logged with the run's wall time (every session of a resumed run) and drawn
as validation_curve.png."""

import json

import torch
from PIL import Image
from training_recipes import reset_accelerate, run, t2i_recipe


def validations(output_dir):
    path = output_dir / "logs" / "validations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_validation_curve_across_a_resume(tmp_path, trained_vq):
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", validation_steps=2)
    output_dir = tmp_path / "t2i"
    run(recipe, **{"training.max_steps": 2})
    (first,) = validations(output_dir)
    assert first["step"] == 2 and first["wall_s"] > 0 and "validation_pass_rate" in first
    # the second session starts from the checkpoint's clock, not from zero: make that clock
    # read an hour, so a session that restarted it could not log a time past it
    clock_path = output_dir / "checkpoints" / "checkpoint-2" / "custom_checkpoint_0.pkl"
    clock = torch.load(clock_path, weights_only=True)
    torch.save({**clock, "wall_s": 3600.0}, clock_path)
    reset_accelerate()
    run(recipe, resume="latest", **{"training.max_steps": 4})
    records = validations(output_dir)
    assert [r["step"] for r in records] == [2, 4]
    assert records[1]["wall_s"] > 3600.0
    with Image.open(output_dir / "validation_curve.png") as image:
        assert image.size == (640, 360)
    # a run restarted from its step-2 checkpoint logs step 4's validation once
    reset_accelerate()
    run(
        recipe, resume=str(output_dir / "checkpoints" / "checkpoint-2"), **{"training.max_steps": 4}
    )
    assert [r["step"] for r in validations(output_dir)] == [2, 4]


def test_validation_scored_like_eval(tmp_path, trained_vq):
    import json as _json

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", validation_steps=2)
    run(recipe, validation_num_prompts=8, **{"training.max_steps": 2})
    output_dir = tmp_path / "t2i"
    (record,) = validations(output_dir)
    report = _json.loads((output_dir / "validations" / "step_0000002" / "report.json").read_text())
    assert report["num_prompts"] == 8 and report["seed"] == 1
    assert record["validation_pass_rate"] == round(report["overall"], 4)
    families = {k for k, v in report["families"].items() if v is not None}
    assert {f"validation_{f}" for f in families} <= set(record)
    assert (output_dir / "samples" / "step_0000002.png").is_file()


def test_train_state_clock_carries_over_a_resume():
    import torch

    from mmgen.training.trainer import TrainState

    saved = TrainState(0).state_dict() | {"wall_s": 1000.0}
    resumed = TrainState(0)
    resumed.load_state_dict(saved)
    assert 1000.0 <= resumed.wall_s < 1010.0
    legacy = {"step": 3, "generator": torch.Generator().get_state()}  # before wall_s existed
    resumed.load_state_dict(legacy)
    assert resumed.wall_s < 10.0 and resumed.step == 3
