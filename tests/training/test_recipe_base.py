"""Recipe inheritance: a recipe with ``base:`` states only what it changes; mappings merge key
by key, other values replace, and a cycle of bases is a clear error."""

import pytest

from mmgen.training.config import load_recipe, load_run_config
from mmgen.utils.config import ConfigError

BASE = """\
task: text_to_image
output_dir: runs/base
tokenizer: shapes-t2i/vq
data: {name: shapes, num_samples: 1000, seed: 3}
model: {dim: 64, num_layers: 2, num_heads: 2}
training: {batch_size: 8, learning_rate: 0.001, max_steps: 10}
sampling: {guidance_scale: 2.0, temperature: 0.8}
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_child_changes_only_what_it_states(tmp_path):
    write(tmp_path / "base.yaml", BASE)
    child = write(
        tmp_path / "stages" / "child.yaml",
        "base: ../base.yaml\noutput_dir: runs/child\ntraining: {learning_rate: 0.0005}\n"
        "init_from: runs/base/final/transformer\n",
    )
    config = load_run_config(child)
    assert config.output_dir == "runs/child"
    assert config.init_from == "runs/base/final/transformer"
    assert config.training.learning_rate == 0.0005
    assert (config.training.batch_size, config.training.max_steps) == (8, 10)  # inherited
    assert (config.data.num_samples, config.data.seed) == (1000, 3)
    assert "base" not in load_recipe(child)


def test_bases_chain_and_lists_and_nulls_replace(tmp_path):
    write(tmp_path / "a.yaml", BASE + "order: {name: next_scale, window: 2}\n")
    write(tmp_path / "b.yaml", "base: a.yaml\nmodel: {dim: 128}\norder: {window: 1}\n")
    write(tmp_path / "c.yaml", "base: b.yaml\nsampling: {temperature: null}\nextra: [3, 4]\n")
    write(tmp_path / "d.yaml", "base: c.yaml\nextra: [5]\n")
    data = load_recipe(tmp_path / "d.yaml")
    assert data["model"] == {"dim": 128, "num_layers": 2, "num_heads": 2}
    assert data["order"] == {"name": "next_scale", "window": 1}
    assert data["sampling"] == {"guidance_scale": 2.0, "temperature": None}
    assert data["extra"] == [5]


def test_a_cycle_of_bases_names_the_recipes(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n" + BASE)
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ConfigError, match=r"cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_recipe(tmp_path / "a.yaml")


def test_a_bad_or_missing_base_is_a_clear_error(tmp_path):
    bad = write(tmp_path / "bad.yaml", "base: [a.yaml]\n" + BASE)
    with pytest.raises(ConfigError, match="base must be a recipe path or name"):
        load_recipe(bad)
    missing = write(tmp_path / "missing.yaml", "base: no_such_recipe.yaml\n" + BASE)
    with pytest.raises(FileNotFoundError, match="no_such_recipe"):
        load_recipe(missing)


def test_a_shipped_stage_recipe_resolves_through_its_bases():
    stage1 = load_run_config("shapes_t2i_scale")
    stage3 = load_run_config("shapes_t2i_scale_stage3")  # base: stage 2, whose base is stage 1
    assert stage3.output_dir == "runs/shapes_t2i_scale_ft3"
    assert stage3.training.learning_rate == 0.00025
    assert stage3.training.max_steps == 2500  # stage 2's
    assert stage3.data == stage1.data and stage3.model == stage1.model
    assert stage3.sampling == stage1.sampling
