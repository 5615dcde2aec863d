"""``task: match_scorer``: trains on the pipeline's codes (positives, word swaps, rendered near
misses, near-miss prompts), resumes exactly, and exports the pipeline with the scorer and
num_candidates."""

import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from training_recipes import (
    losses,
    resumed_step,
    run,
    run_full_and_split,
    tiny_training,
    write,
)

from mmgen.data.near_miss import near_miss_prompt
from mmgen.data.shapes import parse_prompt
from mmgen.models.match_scorer import MatchScorer, corrupt_condition_ids
from mmgen.pipelines.text_to_image import TextToImagePipeline
from mmgen.training.config import load_run_config
from mmgen.training.tasks import build_task
from mmgen.utils.config import ConfigError

PIPELINE = "shapes-t2i-shuffle"  # a built-in: its 16x16 codes and word prompts


class QuietAccelerator:
    """What a task's prepare_data reads of an accelerator: one CPU process, no printing."""

    device = torch.device("cpu")
    is_main_process = is_local_main_process = True

    def print(self, *args):
        pass


def scorer_recipe(tmp_path, name="scorer", **fields):
    recipe = {
        "task": "match_scorer",
        "output_dir": str(tmp_path / name),
        "pipeline": PIPELINE,
        "cache_dir": str(tmp_path / "cache"),
        "data": {"name": "shapes", "num_samples": 40},
        "scorer": {"near_misses": 24, "held_out": 8, "near_miss_prompts": True},
        "model": {"dim": 16, "depth": 1, "num_heads": 2},
        "training": tiny_training(validation_steps=2),
        "sampling": {"num_candidates": 2},
        **fields,
    }
    return write(tmp_path / f"{name}.yaml", recipe)


def test_the_export_is_the_pipeline_with_its_scorer(tmp_path):
    run(scorer_recipe(tmp_path))
    final = tmp_path / "scorer" / "final"
    pipe = TextToImagePipeline.from_pretrained(final)
    base = TextToImagePipeline.from_pretrained(PIPELINE)
    assert isinstance(pipe.scorer, MatchScorer) and pipe.sampling.num_candidates == 2
    assert pipe.sampling.guidance_scale == base.sampling.guidance_scale
    for a, b in zip(pipe.transformer.state_dict().values(), base.transformer.state_dict().values()):
        assert torch.equal(a, b)
    assert (final / "scorer" / "training_config.yaml").is_file()
    records = (tmp_path / "scorer" / "logs" / "validations.jsonl").read_text().splitlines()
    last = json.loads(records[-1])
    assert {"swap_accuracy", "near_miss_accuracy", "near_miss_prompt_accuracy"} <= set(last)
    images = pipe("a red circle", generator=torch.Generator().manual_seed(0),
                  show_progress=False).images  # fmt: skip
    assert images[0].size == (64, 64)


def test_positives_and_near_misses_share_prompts_and_come_from_the_cache(tmp_path):
    config = load_run_config(scorer_recipe(tmp_path))
    task = build_task(config)

    assert task.prepare_data(QuietAccelerator()) == 24 - 8
    assert task.near_miss_codes.shape == (24, 256) and task.codes.shape == (40, 256)
    assert not torch.equal(task.near_miss_codes, task.codes[:24])
    entries = sorted(p.name for p in (tmp_path / "cache" / "encoded").iterdir())
    assert len(entries) == 2  # the plain set and its near misses, each encoded once
    batch = task.get_batch(torch.tensor([0, 3]), torch.device("cpu"))
    assert torch.equal(batch["near_miss_codes"], task.near_miss_codes[[0, 3]].long())
    model = task.build_model()
    loss, stats = task.loss(model, batch, torch.Generator().manual_seed(0))
    assert stats["tokens"] == 8 * (1 + 12 + 64)
    # by hand: positives weigh as much as the three kinds of negative together
    ids, codes = batch["condition_ids"], batch["codes"]
    generator = torch.Generator().manual_seed(0)
    swapped = corrupt_condition_ids(ids, task.special_ids, generator)
    prompts = [parse_prompt(task.captions[i]) for i in (0, 3)]
    assert batch["prompts"] == [p.text for p in prompts]
    misses = task.pipe.text_tokenizer([near_miss_prompt(p, generator).text for p in prompts])
    positive = F.softplus(-model(ids, codes)).sum()
    negatives = (F.softplus(model(swapped, codes)).sum()
                 + F.softplus(model(ids, batch["near_miss_codes"])).sum()
                 + F.softplus(model(misses, codes)).sum())  # fmt: skip
    torch.testing.assert_close(loss, (3 * positive + negatives) / 8)


def test_near_misses_from_data_are_training_images_of_near_miss_prompts(tmp_path):
    scorer = {"held_out": 20, "near_miss_prompts": False, "near_misses_from_data": True}
    data = {"name": "shapes", "num_samples": 150}
    config = load_run_config(scorer_recipe(tmp_path, data=data, scorer=scorer))
    task = build_task(config)
    assert task.prepare_data(QuietAccelerator()) == 130
    indices = torch.arange(0, 130, 4)  # 33 prompts
    batch = task.get_batch(indices, torch.device("cpu"))
    others, found = task.near_miss_image_indices(batch["prompts"],
                                                 torch.Generator().manual_seed(0))  # fmt: skip
    assert 0 < int(found.sum()) < len(indices)  # 130 images hold some near misses, not all
    for prompt, other, hit in zip(batch["prompts"], others.tolist(), found.tolist()):
        if hit:  # a training image whose own prompt is one change away from this one
            assert other < 130 and task.captions[other] != prompt
            assert task.captions[other] in {
                near_miss_prompt(parse_prompt(prompt), g).text
                for g in (torch.Generator().manual_seed(s) for s in range(200))
            }
    model = task.build_model()
    loss, _ = task.loss(model, batch, torch.Generator().manual_seed(0))
    # by hand: swaps, then images of near-miss prompts (weight 0 where none was found)
    ids, codes = batch["condition_ids"], batch["codes"]
    generator = torch.Generator().manual_seed(0)
    swapped = corrupt_condition_ids(ids, task.special_ids, generator)
    others, found = task.near_miss_image_indices(batch["prompts"], generator)
    assert not found.all()  # so that the weight-0 rows are tested
    positive = F.softplus(-model(ids, codes)).sum()
    negatives = (F.softplus(model(swapped, codes)).sum()
                 + (F.softplus(model(ids, task.codes[others].long())) * found).sum())  # fmt: skip
    torch.testing.assert_close(loss, (2 * positive + negatives) / (3 * len(indices)))
    accuracies = task.held_out_accuracies(model)
    assert 0 <= accuracies["data_near_miss_accuracy"] <= 1


def test_relation_accuracy_counts_the_relation_stated_wrongly(tmp_path):
    data = {"name": "shapes", "num_samples": 150}
    task = build_task(load_run_config(scorer_recipe(tmp_path, data=data,
                                                    scorer={"held_out": 40})))  # fmt: skip
    task.prepare_data(QuietAccelerator())
    prompts = [task.captions[i] for i in task.held_out.tolist()]
    rows, wrong = task.wrong_relation_rows(prompts)
    assert rows and len(wrong) == len(rows) and all(w != prompts[k] for k, w in zip(rows, wrong))
    truth = {task.codes[i].numpy().tobytes(): task.condition_ids[i] for i in range(150)}

    class Oracle(torch.nn.Module):  # scores 1 for an image's own prompt, else 0
        def forward(self, ids, codes):
            true_ids = torch.stack([truth[c.to(task.codes.dtype).numpy().tobytes()]
                                    for c in codes])  # fmt: skip
            return (ids == true_ids).all(1).float()

    oracle, blind = Oracle(), lambda ids, codes: torch.zeros(len(ids))
    blind.parameters = oracle.parameters = lambda: iter([torch.zeros(1)])
    assert task.held_out_accuracies(oracle)["relation_accuracy"] == 1.0
    assert task.held_out_accuracies(blind)["relation_accuracy"] == 0.0


def test_a_caption_scorer_trains_on_the_prompts_cross_entropy_and_reranks(tmp_path):
    model = {"dim": 24, "depth": 1, "num_heads": 2, "objective": "caption",
             "fixed_positions": True}  # fmt: skip
    path = scorer_recipe(tmp_path, model=model, scorer={"held_out": 8})
    task = build_task(load_run_config(path))
    task.prepare_data(QuietAccelerator())
    batch = task.get_batch(torch.tensor([0, 3, 5]), torch.device("cpu"))
    scorer = task.build_model()
    loss, _ = task.loss(scorer, batch, torch.Generator().manual_seed(0))
    ids, codes = batch["condition_ids"], batch["codes"]  # by hand: the mean over prompt ids
    logits = scorer.out(scorer.norm(scorer.hidden(ids, codes)[:, scorer.num_windows : -1]))
    expected = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], ignore_index=0)
    torch.testing.assert_close(loss, expected)
    run(path)
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "scorer" / "final")
    assert pipe.scorer.config.objective == "caption" and pipe.scorer.config.pad_id == 0
    records = (tmp_path / "scorer" / "logs" / "validations.jsonl").read_text().splitlines()
    assert {"swap_accuracy", "relation_accuracy"} <= set(json.loads(records[-1]))
    images = pipe("a red circle", generator=torch.Generator().manual_seed(0),
                  show_progress=False).images  # fmt: skip
    assert images[0].size == (64, 64)


def test_resume_continues_exactly(tmp_path, capsys):
    # a constant schedule, so stopping early by lowering max_steps does not change the lr curve
    def recipe(name):
        path = scorer_recipe(tmp_path, name)
        config = yaml.safe_load(path.read_text())
        config["training"]["lr_schedule"] = "constant"
        return write(path, config)

    printed, validation = run_full_and_split(recipe, capsys)
    assert resumed_step(printed) == 2
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    full = json.loads(
        (tmp_path / "full" / "logs" / "validations.jsonl").read_text().splitlines()[-1]
    )
    assert validation == {**full, "wall_s": validation["wall_s"]}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"pipeline": None}, "needs 'pipeline'"),
        ({"model": {"grid": [8, 8]}}, "come from the pipeline"),
        ({"scorer": {"near_misses": 8, "held_out": 8}}, "leaves no training examples"),
        ({"scorer": {"near_misses": -1}}, "scorer.near_misses must be an int >= 0"),
        (
            {"model": {"objective": "caption"}, "scorer": {"near_miss_prompts": True}},
            "scorer.near_miss_prompts: negatives are for model.objective 'match'",
        ),
        (
            {"model": {"objective": "caption"}, "scorer": {"near_misses_from_data": True}},
            "scorer.near_misses_from_data: negatives are for model.objective 'match'",
        ),
        ({"model": {"objective": "rank"}}, "model: objective 'rank'"),
    ],
)
def test_bad_scorer_recipes_name_the_key(tmp_path, fields, message):
    with pytest.raises(ConfigError, match=message):
        config = load_run_config(scorer_recipe(tmp_path, **fields))
        task = build_task(config)
        task.prepare_data(QuietAccelerator())


@pytest.mark.parametrize("key", ["near_miss_prompts", "near_misses_from_data"])
def test_near_miss_prompts_are_for_shapes_only(tmp_path, key):
    folder = {"name": "imagefolder", "path": str(tmp_path), "resolution": 64}
    config = load_run_config(scorer_recipe(tmp_path, data=folder, scorer={key: True}))
    with pytest.raises(ConfigError, match=f"scorer.{key} is for shapes"):
        build_task(config)


def test_near_misses_are_for_shapes_only(tmp_path):
    with pytest.raises(ConfigError, match="data.near_miss is for shapes"):
        load_run_config(write(tmp_path / "r.yaml", {
            "task": "class_to_image", "output_dir": str(tmp_path), "tokenizer": "digits-c2i/vq",
            "data": {"name": "digits", "resolution": 32, "near_miss": True}}))  # fmt: skip


def test_a_recipe_cannot_train_on_near_misses(tmp_path):
    with pytest.raises(ConfigError, match="data.near_miss is drawn by a match_scorer run"):
        load_run_config(write(tmp_path / "r.yaml", {
            "task": "text_to_image", "output_dir": str(tmp_path), "tokenizer": "shapes-t2i/vq",
            "data": {"name": "shapes", "near_miss": True}}))  # fmt: skip
