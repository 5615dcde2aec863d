"""Training on a user image folder (imagefolder layout) end to end, with one bad entry."""

import json

import pytest
from PIL import Image
from training_recipes import TINY_TRAINING, reset_accelerate, run, write

from mmgen import TextToImagePipeline
from mmgen.cli import main as cli_main
from mmgen.data.folders import DataError
from mmgen.data.shapes import ShapesDataset


@pytest.fixture
def shapes_folder(tmp_path):
    folder = tmp_path / "my_images"
    folder.mkdir()
    data = ShapesDataset(12, seed=3)
    lines = []
    for i in range(12):
        item = data[i]
        image = item["image"].permute(1, 2, 0).numpy()
        Image.fromarray(image).save(folder / f"{i:03d}.png")
        lines.append(json.dumps({"file_name": f"{i:03d}.png", "text": item["prompt"]}))
    lines.append(json.dumps({"file_name": "000.png"}))  # no caption: skipped, counted
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def folder_recipe(tmp_path, folder, task, **extra):
    recipe = {
        "task": task,
        "output_dir": str(tmp_path / task),
        "data": {"name": "imagefolder", "path": str(folder), "resolution": 32},
        "training": TINY_TRAINING,
        **extra,
    }
    if task == "tokenizer":
        recipe["model"] = {"block_out_channels": [8, 8], "norm_num_groups": 4,
                           "latent_channels": 8, "codebook_size": 16}  # fmt: skip
    else:
        recipe["model"] = {"preset": "debug"}
    return write(tmp_path / f"{task}.yaml", recipe)


def test_tokenizer_and_text_to_image_train_on_a_user_folder(shapes_folder, tmp_path):
    with pytest.warns(UserWarning, match=r"skipped 1 of 13 entries: 1 no caption"):
        metrics = run(folder_recipe(tmp_path, shapes_folder, "tokenizer"))
    assert set(metrics) == {"mse", "num_images"} and metrics["num_images"] == 12
    reset_accelerate()
    recipe = folder_recipe(
        tmp_path,
        shapes_folder,
        "text_to_image",
        tokenizer=str(tmp_path / "tokenizer" / "final"),
        text_max_length=56,
        validation_prompts=["a red circle"],
    )
    with pytest.warns(UserWarning, match="skipped 1 of 13"):
        run(recipe)
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "text_to_image" / "final")
    out = pipe("a red circle", output_type="np")
    assert out.images.shape == (1, 32, 32, 3)
    assert (tmp_path / "text_to_image" / "samples" / "step_0000002.png").is_file()
    # the same folder with a word-level vocabulary learned from its captions (codes: cache hit)
    reset_accelerate()
    run(recipe, output_dir=str(tmp_path / "word"), text_tokenizer={"kind": "word"},
        text_max_length=12)  # fmt: skip
    pipe = TextToImagePipeline.from_pretrained(tmp_path / "word" / "final")
    captions = [ShapesDataset(12, seed=3)[i]["prompt"] for i in range(12)]
    words = {w for c in captions for w in c.split()}
    assert set(pipe.text_tokenizer.tokenizer.get_vocab()) == words | {
        "[PAD]",
        "[BOS]",
        "[EOS]",
        "[UNK]",
    }
    with pytest.warns(UserWarning, match="'cat'"):
        pipe("a cat", output_type="latent")


def test_strict_data_flag_refuses_the_bad_entry(shapes_folder, tmp_path):
    recipe = folder_recipe(tmp_path, shapes_folder, "tokenizer")
    with pytest.raises(DataError, match=r"metadata\.jsonl:13: no caption"):
        cli_main(["train", "tokenizer", "--config", str(recipe), "--strict_data", "--debug"])
