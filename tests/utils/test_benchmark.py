"""The recipe-step timing that bench_train --recipe / --cpu and bench_orders share."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmgen.utils.benchmark import recipe_task, training_step_speed

REPO = Path(__file__).resolve().parents[2]


def word_shuffle_recipe(tmp_path):
    recipe = {
        "task": "text_to_image",
        "output_dir": str(tmp_path / "run"),
        "tokenizer": "shapes-t2i/vq",
        "order": {"name": "token_shuffle", "window": 2},
        "text_tokenizer": {"kind": "word"},
        "text_max_length": 12,
        "model": {"preset": "debug"},
        "training": {"batch_size": 2},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_recipe_task_stands_in_a_vocabulary_and_times_its_step(tmp_path):
    task = recipe_task(str(word_shuffle_recipe(tmp_path)))
    assert task.layout.length == 12 + 64  # word prompt + 16x16 codes merged 2x2
    vocab = set(task.condition_tokenizer.tokenizer.get_vocab())
    assert {"circle", "left", "four", "purple"} <= vocab
    r = training_step_speed(task, steps=1, compile=False)
    assert r["rows_per_s"] == pytest.approx(r["samples_per_s"] * 76) and r["step_s"] > 0
    assert r["parameters"] == task.build_model().num_parameters()


def test_bench_train_recipe_prints_each_variant(tmp_path):
    command = [sys.executable, str(REPO / "tools" / "bench_train.py"), "--recipe",
               str(word_shuffle_recipe(tmp_path)), "--variants", "fp32-eager,bf16-eager",
               "--steps", "1"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "batch 2 x 76 rows (token_shuffle)" in done.stdout
    lines = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.strip()}
    assert lines["fp32-eager"][-1] == "1.00x" and lines["bf16-eager"][-1].endswith("x")
