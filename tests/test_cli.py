import json
import subprocess
import sys

from PIL import Image

from mmgen.cli import main
from tests.conftest import make_tiny_pipeline


def test_generate_image_writes_grid(tmp_path, capsys):
    make_tiny_pipeline().save_pretrained(tmp_path / "pipe")
    out = tmp_path / "grid.png"
    main(
        [
            "generate",
            "image",
            "--model",
            str(tmp_path / "pipe"),
            "--prompt",
            "a red circle",
            "--prompt",
            "a blue square",
            "--num-images",
            "3",
            "--seed",
            "0",
            "--out",
            str(out),
        ]
    )
    grid = Image.open(out)
    assert grid.size == (3 * (32 + 4), 2 * (32 + 4))  # 3 per row, 2 rows, 2x scale, 2 px pad
    assert "wrote 6 images" in capsys.readouterr().out


def test_eval_shapes_prints_table_and_writes_report(tmp_path, capsys):
    make_tiny_pipeline().save_pretrained(tmp_path / "pipe")
    main(
        [
            "eval",
            "shapes",
            "--model",
            str(tmp_path / "pipe"),
            "--num-prompts",
            "12",
            "--batch-size",
            "6",
            "--out-dir",
            str(tmp_path / "eval"),
        ]
    )
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert sum(report["counts"].values()) == 12 and len(report["results"]) == 12
    assert set(report["families"]) == {"single", "pair", "count", "relation"}
    assert (tmp_path / "eval" / "samples.png").is_file()
    printed = capsys.readouterr().out
    assert "overall" in printed and "relation" in printed


def test_import_mmgen_does_not_import_heavy_libraries():
    heavy = "('diffusers', 'accelerate', 'timm', 'imageio', 'triton')"
    code = (
        "import sys, mmgen; from mmgen import TextToImagePipeline; "
        f"print([m for m in {heavy} if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "mmgen.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in result.stdout and "generate" in result.stdout and "eval" in result.stdout


def test_tools_scripts_take_the_cli_options(tmp_path):
    from pathlib import Path

    tools = Path(__file__).resolve().parent.parent / "tools"
    make_tiny_pipeline().save_pretrained(tmp_path / "pipe")
    out = tmp_path / "g.png"
    subprocess.run(
        [
            sys.executable,
            str(tools / "generate_image.py"),
            "--model",
            str(tmp_path / "pipe"),
            "--prompt",
            "a red circle",
            "--num-images",
            "2",
            "--out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert Image.open(out).size == (2 * 36, 36)
    for script in ("train.py", "train_tokenizer.py", "eval_shapes.py"):
        result = subprocess.run(
            [sys.executable, str(tools / script), "--help"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "--config" in result.stdout or "--model" in result.stdout


def test_train_refuses_a_recipe_of_the_other_kind(tmp_path, capsys):
    import yaml

    recipe = tmp_path / "c2i.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "task": "class_to_image",
                "output_dir": str(tmp_path),
                "tokenizer": "x",
                "data": {"name": "digits", "resolution": 32},
            }
        )
    )
    assert main(["train", "tokenizer", "--config", str(recipe)]) == 2
    error = capsys.readouterr().err
    assert "'class_to_image' recipe, not a tokenizer recipe" in error
    assert f"mmgen train model --config {recipe}" in error  # the fix


def test_demo_generates_the_built_in_grid(tmp_path, capsys):
    out = tmp_path / "demo.png"
    main(["demo", "--out", str(out)])
    grid = Image.open(out)
    assert grid.size[0] == grid.size[1] > 4 * 64  # 4 prompts x 4 images of 64 x 64
    assert "one row per prompt" in capsys.readouterr().out


def test_demo_train_trains_both_recipes_then_generates(tmp_path):
    out = tmp_path / "grid.png"
    main(["demo", "--train", "--max_train_steps", "2", "--output_dir", str(tmp_path / "runs"),
          "--out", str(out)])  # fmt: skip
    for run in ("vq", "t2i"):
        assert (tmp_path / "runs" / run / "checkpoints" / "checkpoint-2").is_dir()
        assert (tmp_path / "runs" / run / "final").is_dir()
    assert Image.open(out).size[0] == Image.open(out).size[1]


def test_sampling_flags_reach_the_pipeline_only_when_given():
    from mmgen.cli.commands import sampling_kwargs
    from mmgen.cli.parser import build_parser

    parser = build_parser()
    args = ["generate", "image", "--prompt", "a red circle"]
    given = parser.parse_args([*args, "--num-inference-steps", "3", "--temperature", "0.5"])
    assert sampling_kwargs(given) == {"num_inference_steps": 3, "temperature": 0.5}
    assert (
        sampling_kwargs(parser.parse_args(["generate", "image", "--prompt", "a red circle"])) == {}
    )
