"""End-to-end training through the public recipe format (tiny configs, a few steps)."""

import json

import pytest
import torch
import yaml
from training_recipes import (
    TINY_TRAINING,
    losses,
    reset_accelerate,
    run,
    t2i_recipe,
    vq_recipe,
    write,
)

from mmgen import TextToImagePipeline
from mmgen.training.config import load_run_config
from mmgen.utils.config import ConfigError


def test_tokenizer_training_exports_model_and_quality_report(trained_vq):
    folder, metrics = trained_vq
    assert (folder / "final" / "model.safetensors").is_file()
    report = json.loads((folder / "final" / "eval.json").read_text())
    assert set(report) >= {"reconstruction_pass_rate", "codebook_utilisation"}
    assert report == pytest.approx(metrics)
    assert (folder / "samples" / "step_0000002.png").is_file()
    assert (folder / "checkpoints" / "checkpoint-2").is_dir()


def test_text_to_image_training_end_to_end(trained_vq, tmp_path):
    run(t2i_recipe(tmp_path, trained_vq[0] / "final", checkpoints_total_limit=1))
    out = tmp_path / "t2i"
    assert sorted(losses(out)) == [1, 2, 3, 4]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-4"]  # limit 1
    assert (out / "samples" / "step_0000004.png").is_file()
    pipe = TextToImagePipeline.from_pretrained(out / "final")
    saved = yaml.safe_load((out / "final" / "training_config.yaml").read_text())
    assert saved["task"] == "text_to_image"
    images = pipe("a red circle", output_type="np", generator=torch.Generator().manual_seed(0))
    assert images.images.shape == (1, 64, 64, 3)


def test_resume_from_latest_reproduces_uninterrupted_losses(trained_vq, tmp_path):
    # a constant schedule, so stopping early by lowering max_steps does not change the lr curve
    tokenizer = trained_vq[0] / "final"
    run(t2i_recipe(tmp_path, tokenizer, name="full", lr_schedule="constant"))
    reset_accelerate()
    recipe = t2i_recipe(tmp_path, tokenizer, name="split", lr_schedule="constant")
    run(recipe, **{"training.max_steps": 2})
    reset_accelerate()
    run(recipe, resume="latest")
    assert losses(tmp_path / "split") == losses(tmp_path / "full")


def test_unknown_recipe_key_is_rejected_by_name(tmp_path):
    path = write(
        tmp_path / "bad.yaml",
        {
            "task": "tokenizer",
            "output_dir": str(tmp_path),
            "training": {"batchsize": 4},
        },
    )
    with pytest.raises(ConfigError, match="bad.yaml.*'batchsize'.*section 'training'"):
        load_run_config(path)


def test_gradient_accumulation_and_bf16_mixed_precision_run(trained_vq, tmp_path):
    recipe = t2i_recipe(
        tmp_path,
        trained_vq[0] / "final",
        name="accum",
        gradient_accumulation_steps=2,
        mixed_precision="bf16",
        max_steps=2,
    )
    run(recipe)
    logged = losses(tmp_path / "accum")
    assert sorted(logged) == [1, 2]
    assert all(0 < value < 10 for value in logged.values())


def test_digits_tokenizer_and_class_to_image_end_to_end(tmp_path, capsys):
    from mmgen import ClassToImagePipeline
    from mmgen.cli import main

    vq = write(
        tmp_path / "dvq.yaml",
        {
            "task": "tokenizer",
            "output_dir": str(tmp_path / "dvq"),
            "data": {"name": "digits", "resolution": 32},
            "model": {
                "in_channels": 1,
                "block_out_channels": [8, 8],
                "norm_num_groups": 4,
                "latent_channels": 8,
                "codebook_size": 16,
            },
            "training": TINY_TRAINING,
        },
    )
    metrics = run(vq)
    assert set(metrics) >= {"reconstruction_accuracy", "original_accuracy", "mse"}
    assert metrics["original_accuracy"] > 0.95  # the verifier classifier on real held-out digits
    reset_accelerate()
    c2i = write(
        tmp_path / "c2i.yaml",
        {
            "task": "class_to_image",
            "output_dir": str(tmp_path / "c2i"),
            "tokenizer": str(tmp_path / "dvq" / "final"),
            "data": {"name": "digits", "resolution": 32},
            "model": {"preset": "debug"},
            "training": TINY_TRAINING,
        },
    )
    run(c2i)
    assert (tmp_path / "c2i" / "samples" / "step_0000002.png").is_file()
    pipe = ClassToImagePipeline.from_pretrained(tmp_path / "c2i" / "final")
    assert pipe(3, output_type="np", generator=torch.Generator().manual_seed(0)).images.shape == (
        1,
        32,
        32,
        1,
    )
    main(
        [
            "eval",
            "digits",
            "--model",
            str(tmp_path / "c2i" / "final"),
            "--num-per-class",
            "2",
            "--out-dir",
            str(tmp_path / "ev"),
        ]
    )
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["num_images"] == 20 and 0 <= report["accuracy"] <= 1
    assert report["real_accuracy"] > 0.95 and report["frechet_distance"] > report["frechet_floor"]
    assert "frechet distance" in capsys.readouterr().out


def test_recipe_task_and_data_must_agree(tmp_path):
    path = write(
        tmp_path / "bad.yaml",
        {
            "task": "class_to_image",
            "output_dir": str(tmp_path),
            "tokenizer": "x",
            "data": {"name": "shapes"},
        },
    )
    with pytest.raises(ConfigError, match="class_to_image trains on data.name 'digits'"):
        load_run_config(path)


def test_report_to_tensorboard_writes_loss_and_throughput_scalars(trained_vq, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="tb")
    run(recipe, report_to="tensorboard")
    event_files = list((tmp_path / "tb" / "logs").rglob("events.out.tfevents.*"))
    assert event_files
    events = EventAccumulator(str(event_files[0].parent))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss", "samples_per_s", "tokens_per_s"} <= tags
    assert [e.step for e in events.Scalars("loss")] == [1, 2, 3, 4]


def test_compiled_training_matches_eager_losses(trained_vq, tmp_path):
    tokenizer = trained_vq[0] / "final"
    run(t2i_recipe(tmp_path, tokenizer, name="eager", max_steps=3))
    reset_accelerate()
    run(t2i_recipe(tmp_path, tokenizer, name="compiled", max_steps=3, compile=True))
    compiled = yaml.safe_load((tmp_path / "compiled" / "config.yaml").read_text())
    assert compiled["training"]["compile"] is True
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-4)
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "compiled" / "final")  # plain weights
    assert not any(k.startswith("_orig_mod") for k in pipe.transformer.state_dict())


def test_deterministic_tokenizer_runs_are_bit_identical_on_two_threads(tmp_path):
    from safetensors.torch import load_file

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        weights = []
        for name in ("a", "b"):
            folder = tmp_path / name
            folder.mkdir()
            recipe = vq_recipe(folder, max_steps=40, deterministic=True, checkpointing_steps=40,
                               validation_steps=40, log_steps=10)  # fmt: skip
            run(recipe)
            reset_accelerate()
            weights.append(load_file(folder / "vq" / "final" / "model.safetensors"))
    finally:
        torch.set_num_threads(threads)
    assert not torch.are_deterministic_algorithms_enabled()  # restored after the run
    assert all(weights[0][k].equal(weights[1][k]) for k in weights[0])
