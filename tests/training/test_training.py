"""End-to-end training through the public recipe format (tiny configs, a few steps)."""

import json

import pytest
import torch
import yaml
from training_recipes import (
    TINY_TRAINING,
    losses,
    reset_accelerate,
    resumed_step,
    run,
    t2i_recipe,
    vq_recipe,
    watch_training,
    write,
)

from mmgen import TextToImagePipeline
from mmgen.training.config import load_run_config
from mmgen.utils.config import ConfigError


def test_tokenizer_training_exports_model_and_quality_report(trained_vq, capsys):
    from mmgen.cli import main

    folder, metrics = trained_vq
    assert (folder / "final" / "model.safetensors").is_file()
    report = json.loads((folder / "final" / "eval.json").read_text())
    assert set(report) >= {"reconstruction_pass_rate", "codebook_utilisation", "mse"}
    # the report describes the saved weights: `mmgen eval tokenizer` on the exported folder
    # (loaded from disk) measures the same numbers
    capsys.readouterr()
    main(["eval", "tokenizer", "--model", str(folder / "final"), "--num-images", "400"])
    printed = dict(line.split(": ") for line in capsys.readouterr().out.splitlines())
    for key in ("reconstruction_pass_rate", "original_pass_rate", "codebook_utilisation", "mse"):
        assert float(printed[key]) == pytest.approx(report[key], abs=1e-4), key
    assert report["original_pass_rate"] == 1.0 and 0 <= report["reconstruction_pass_rate"] <= 1
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


@pytest.mark.parametrize(("limit", "kept"), [(2, [3, 4]), (3, [2, 3, 4]), (None, [1, 2, 3, 4])])
def test_checkpoints_total_limit_keeps_the_newest_checkpoints(trained_vq, tmp_path, limit, kept):
    from mmgen.training.checkpoints import list_checkpoints

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", checkpointing_steps=1,
                        checkpoints_total_limit=limit)  # fmt: skip
    run(recipe)
    assert [p.name for p in list_checkpoints(tmp_path / "t2i")] == [f"checkpoint-{s}" for s in kept]
    assert not list((tmp_path / "t2i" / "checkpoints").glob(".tmp-*"))


def test_resume_from_latest_reproduces_uninterrupted_losses(trained_vq, tmp_path, capsys):
    # a constant schedule, so stopping early by lowering max_steps does not change the lr curve
    tokenizer = trained_vq[0] / "final"
    run(t2i_recipe(tmp_path, tokenizer, name="full", lr_schedule="constant"))
    reset_accelerate()
    recipe = t2i_recipe(tmp_path, tokenizer, name="split", lr_schedule="constant")
    run(recipe, **{"training.max_steps": 2})
    reset_accelerate()
    capsys.readouterr()
    run(recipe, resume="latest")
    assert resumed_step(capsys.readouterr().out) == 2
    split = losses(tmp_path / "split")  # each step logged once: steps 3, 4 by the resumed run
    assert sorted(split) == [1, 2, 3, 4]
    assert split == losses(tmp_path / "full")


def test_resume_latest_without_a_checkpoint_says_it_starts_a_new_run(trained_vq, tmp_path,
                                                                       capsys):  # fmt: skip
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="fresh", max_steps=2)
    run(recipe, resume="latest")
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if "resume_from_checkpoint" in line]
    assert lines == [
        f"resume_from_checkpoint latest: no checkpoint in {tmp_path / 'fresh' / 'checkpoints'}, "
        "starting a new run"
    ]
    assert sorted(losses(tmp_path / "fresh")) == [1, 2]
    reset_accelerate()
    with pytest.raises(FileNotFoundError, match="no checkpoint folder at .*checkpoint-7"):
        run(recipe, resume=str(tmp_path / "fresh" / "checkpoints" / "checkpoint-7"))


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


def test_bf16_mixed_precision_runs_the_training_forward_under_autocast(trained_vq, tmp_path):
    tokenizer = trained_vq[0] / "final"
    bf16 = watch_training(t2i_recipe(tmp_path, tokenizer, name="bf16", mixed_precision="bf16",
                                     max_steps=2), head_dtypes=True)  # fmt: skip
    reset_accelerate()
    fp32 = watch_training(t2i_recipe(tmp_path, tokenizer, name="fp32", max_steps=2),
                          head_dtypes=True)  # fmt: skip
    assert len(bf16["head_dtypes"]) == 2 and set(bf16["head_dtypes"]) == {torch.bfloat16}
    assert set(fp32["head_dtypes"]) == {torch.float32}
    low, full = losses(tmp_path / "bf16"), losses(tmp_path / "fp32")
    assert sorted(low) == [1, 2]
    assert low == pytest.approx(full, rel=2e-2)  # the same training, in lower precision


def test_gradient_accumulation_steps_the_optimizer_once_per_step(trained_vq, tmp_path):
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", name="accum",
                        gradient_accumulation_steps=2, max_steps=3)  # fmt: skip
    seen = watch_training(recipe)
    assert seen["micro_batches"] == 6  # two micro-batches of 4 per step
    assert seen["optimizer_steps"] == 3  # one update per step, not per micro-batch
    assert sorted(losses(tmp_path / "accum")) == [1, 2, 3]


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
    from torch._dynamo.eval_frame import OptimizedModule
    from torch._dynamo.utils import counters

    tokenizer = trained_vq[0] / "final"
    run(t2i_recipe(tmp_path, tokenizer, name="eager", max_steps=3))
    reset_accelerate()
    torch._dynamo.reset()
    counters.clear()
    seen = watch_training(t2i_recipe(tmp_path, tokenizer, name="compiled", max_steps=3,
                                     compile=True))  # fmt: skip
    # the loss ran a torch.compile'd module, and dynamo built graphs for it
    assert seen["models"] and all(isinstance(m, OptimizedModule) for m in seen["models"])
    assert counters["stats"]["unique_graphs"] >= 1
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


def test_condition_dropout_feeds_the_empty_prompt_to_the_training_loss(trained_vq, tmp_path):
    from accelerate import Accelerator

    from mmgen.training.tasks import build_task

    # dropout 0.999: every row of this seed's draw is dropped (1.0 is not a valid recipe value)
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", condition_dropout=0.999)
    config = load_run_config(recipe)
    task = build_task(config)
    task.prepare_data(Accelerator(cpu=True))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = task.build_model()
        torch.nn.init.normal_(model.head.proj.weight, std=0.3)  # a zero head ignores its input
    batch = task.get_batch(torch.arange(4), torch.device("cpu"))
    empty = {**batch, "condition_ids": task.null_ids.expand_as(batch["condition_ids"]).clone()}
    assert not torch.equal(empty["condition_ids"], batch["condition_ids"])

    def loss(batch):
        return task.loss(model, batch, torch.Generator().manual_seed(0))[0]

    dropped = loss(batch)  # every prompt dropped
    config.training.condition_dropout = 0.0
    assert torch.equal(dropped, loss(empty))  # exactly the loss on empty prompts
    assert not torch.equal(dropped, loss(batch))  # and not the loss on the real prompts


def test_a_bare_no_for_mixed_precision_in_yaml_means_no(tmp_path):
    # YAML 1.1 reads `mixed_precision: no` as the boolean false
    path = tmp_path / "plain.yaml"
    path.write_text(f"task: tokenizer\noutput_dir: {tmp_path}\ntraining:\n  mixed_precision: no\n")
    assert load_run_config(path).training.mixed_precision == "no"
    path.write_text(f"task: tokenizer\noutput_dir: {tmp_path}\ntraining:\n  mixed_precision: yes\n")
    with pytest.raises(ConfigError, match="training.mixed_precision must be one of"):
        load_run_config(path)


def test_context_noise_replaces_a_next_token_runs_fed_codes_reproducibly(trained_vq, tmp_path):
    """Over codes the fed codes are replaced at random: against a run whose rate is ~0 (the
    same generator draws, no code replaced) the losses change from step 2 (step 1's is the
    zero-initialised head's uniform one either way), and two noised runs log the same losses
    (the draws come from the run's generator)."""
    tokenizer = trained_vq[0] / "final"
    kept = losses_of(t2i_recipe(tmp_path, tokenizer, name="kept", max_steps=2,
                                context_noise=1e-9))  # fmt: skip
    noised = losses_of(t2i_recipe(tmp_path, tokenizer, name="noised", max_steps=2,
                                  context_noise=0.5))  # fmt: skip
    again = losses_of(t2i_recipe(tmp_path, tokenizer, name="again", max_steps=2,
                                 context_noise=0.5))  # fmt: skip
    assert noised[1] == kept[1] and noised[2] != kept[2] and noised == again


def losses_of(recipe):
    run(recipe)
    reset_accelerate()
    return losses(recipe.parent / recipe.stem)


def test_context_noise_is_refused_at_setup_by_an_order_without_it(trained_msvq, tmp_path):
    """Before any data is encoded, a ConfigError naming the key (next-scale has none)."""
    from mmgen.training.tasks import build_task

    recipe = t2i_recipe(tmp_path, trained_msvq, context_noise=0.2)
    with pytest.raises(ConfigError, match="training.context_noise: the next_scale order"):
        build_task(load_run_config(recipe, order={"name": "next_scale"}))


@pytest.mark.parametrize(
    "task, data, training, message",
    [
        ("text_to_image", "shapes", {"first_frame_batch": 8},
         "training.first_frame_batch is for text_to_video"),
        ("text_to_video", "videofolder", {"first_frame_batch": 8, "first_frame_samples": 100},
         "training.first_frame_samples draws one-frame clips of procedural data"),
        ("text_to_video", "moving_shapes", {"first_frame_samples": 100},
         "training.first_frame_samples needs training.first_frame_batch"),
        ("text_to_video", "moving_shapes", {"first_frame_batch": -1},
         r"training.first_frame_batch must be an int >= 0"),
        ("text_to_video", "moving_shapes", {"first_frame_batch": 4, "first_frame_samples": 0},
         r"training.first_frame_samples must be an int >= 1"),
    ],
)  # fmt: skip
def test_a_bad_first_frame_batch_is_a_config_error_naming_the_key(
    tmp_path, task, data, training, message
):
    recipe = {"task": task, "output_dir": str(tmp_path), "tokenizer": "shapes-kl",
              "data": {"name": data, "path": str(tmp_path)}, "training": training}  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=message):
        load_run_config(path)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "shapes", "two_object_weight": 2}, "data.two_object_weight is for moving_shapes"),
        ({"name": "moving_shapes", "two_object_weight": 0},
         r"data.two_object_weight must be an int >= 1"),
        ({"name": "moving_shapes", "family_weights": {"pair": 2}},
         "data.family_weights is for shapes"),
        ({"name": "shapes", "family_weights": {"pairs": 2}},
         r"data.family_weights: unknown families \['pairs'\]"),
        ({"name": "shapes", "family_weights": {"pair": 0}},
         r"data.family_weights\['pair'\] must be an int >= 1, got 0"),
        ({"name": "shapes", "family_weights": ["pair"]},
         r"data.family_weights must map families to ints, got \['pair'\]"),
        ({"name": "shapes", "family_weights": {"pair": 1.5}},
         r"data.family_weights\['pair'\] must be an int >= 1, got 1.5"),
    ],
)  # fmt: skip
def test_a_bad_prompt_weight_is_a_config_error_naming_the_key(tmp_path, data, message):
    path = tmp_path / "recipe.yaml"
    recipe = {"task": "tokenizer", "output_dir": str(tmp_path), "data": data}
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(ConfigError, match=message):
        load_run_config(path)


def test_the_training_data_follows_the_prompt_weights():
    """The recipe's prompt mix reaches the rendered training set (shapes and moving_shapes)."""
    from mmgen.data.shapes import parse_prompt
    from mmgen.training.config import DataConfig
    from mmgen.training.tasks import load_training_images

    weighted = DataConfig(num_samples=40, family_weights={"relation": 97})  # ~0.99 relations
    _, prompts = load_training_images(weighted, show_progress=False)
    assert sum(parse_prompt(p).family == "relation" for p in prompts) >= 36
    clips = DataConfig(name="moving_shapes", num_samples=12, num_frames=1, two_object_weight=99)
    _, prompts = load_training_images(clips, show_progress=False)
    assert sum(" and " in p for p in prompts) >= 11  # two-object prompts join with "and"
