"""The ``mmgen`` command's surface: one-line user errors, one flag style, every built-in."""

import subprocess
import sys

import pytest
import torch
from PIL import Image

from mmgen.cli import main
from mmgen.utils.serialization import CheckpointError

# (command line, what the one line on stderr must say)
MISTAKES = [
    (
        ["generate", "image", "--model", "no-such-model", "--prompt", "hi"],
        "'no-such-model' is neither a model folder nor a built-in model",
    ),
    (
        ["train", "model", "--config", "no_such_recipe.yaml"],
        "config file not found: no_such_recipe.yaml",
    ),
    (["generate", "image", "--prompt", "hi", "--device", "cuda:99"], "--device cuda:99: "),
    (["generate", "image", "--prompt", "hi", "--device", "gpu0"], "--device gpu0: not a device"),
    (
        ["generate", "image", "--model", "digits-c2i", "--prompt", "hi"],
        "digits-c2i is a class-to-image model: give --class N (0 to 9)",
    ),
    (
        ["generate", "image", "--model", "shapes-t2i", "--class", "3"],
        "shapes-t2i is a text-to-image model: give --prompt TEXT",
    ),
    (["generate", "image", "--prompt", "hi", "--guidance-scale", "-1"], "guidance_scale"),
    (
        [
            "generate",
            "image",
            "--model",
            "shapes-t2i-scale",
            "--prompt",
            "hi",
            "--num-candidates",
            "4",
        ],
        "num_candidates=4 keeps the best of several images by the pipeline's scorer",
    ),
    (
        ["generate", "video", "--prompt", "hi", "--num-candidates", "2"],
        "--num-candidates reranks images by a pipeline's scorer; a video model has none",
    ),
    (
        ["generate", "audio", "--prompt", "play C4", "--num-candidates", "2"],
        "--num-candidates reranks images by a pipeline's scorer; an audio model has none",
    ),
    (["eval", "tokenizer", "--model", "shapes-t2i/nope"], "shapes-t2i/nope"),
]


@pytest.mark.parametrize(
    "argv, says", MISTAKES, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in enumerate(MISTAKES)]
)
def test_a_user_mistake_is_one_line_and_exit_2(argv, says, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "g.png")] if argv[0] == "generate" else argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert lines[0].startswith("mmgen: error: ") and says in lines[0], captured.err
    assert lines[1:] == ["(run with --debug for the traceback)"]
    assert "Traceback" not in captured.err + captured.out


def test_debug_anywhere_or_in_the_environment_shows_the_traceback(monkeypatch):
    argv = ["generate", "image", "--model", "no-such-model", "--prompt", "hi"]
    with pytest.raises(CheckpointError, match="no-such-model"):
        main([*argv, "--debug"])
    with pytest.raises(CheckpointError, match="no-such-model"):
        main(["--debug", *argv])
    monkeypatch.setenv("MMGEN_DEBUG", "1")
    with pytest.raises(CheckpointError, match="no-such-model"):
        main(argv)


def test_a_real_crash_keeps_its_traceback(monkeypatch):
    from mmgen.cli import commands

    def crash(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(commands.COMMANDS, "list", crash)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["list"])


def test_class_to_image_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "d.png"
    assert (
        main(
            [
                "generate",
                "image",
                "--model",
                "digits-c2i",
                "--class",
                "3",
                "--class",
                "7",
                "--num_images",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert Image.open(out).size == (4 * (32 * 2 + 4), 2 * (32 * 2 + 4))  # 4 per row, 2 rows
    assert "wrote 8 images (2 classes x 4)" in capsys.readouterr().out


def test_eval_tokenizer_takes_a_built_in_component(capsys):
    assert main(["eval", "tokenizer", "--model", "shapes-t2i/vq", "--num-images", "8"]) == 0
    assert "reconstruction_pass_rate: 1.0000" in capsys.readouterr().out


def test_both_flag_spellings_and_defaults_in_help():
    from mmgen.cli import build_parser

    parser = build_parser()
    dashed = parser.parse_args(
        [
            "train",
            "model",
            "--config",
            "c.yaml",
            "--output-dir",
            "o",
            "--max-train-steps",
            "3",
            "--resume-from-checkpoint",
            "latest",
        ]
    )
    underscored = parser.parse_args(
        [
            "train",
            "model",
            "--config",
            "c.yaml",
            "--output_dir",
            "o",
            "--max_train_steps",
            "3",
            "--resume_from_checkpoint",
            "latest",
        ]
    )
    assert vars(dashed) == vars(underscored)
    assert dashed.output_dir == "o" and dashed.max_train_steps == 3
    generate = parser.parse_args(
        [
            "generate",
            "image",
            "--prompt",
            "x",
            "--num_images",
            "2",
            "--top_k",
            "5",
            "--negative_prompt",
            "y",
        ]
    )
    assert (generate.num_images, generate.top_k, generate.negative_prompt) == (2, 5, "y")
    done = subprocess.run(
        [sys.executable, "-m", "mmgen.cli", "generate", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    shown = " ".join(done.stdout.split())  # help text is wrapped to the terminal
    counts = "images per prompt or class (default 4); videos or audio clips per prompt (default 1)"
    models = "(default: shapes-t2i for images, moving-shapes-t2v for videos, tones-t2a for audio)"
    assert counts in shown and models in shown
    assert "of the run (default: 0)" in shown
    assert "--num-images NUM_IMAGES, --num_images NUM_IMAGES" in shown


def test_version_and_list_come_from_the_code(capsys):
    import mmgen
    from mmgen.builtin import BUILTIN_MODELS
    from mmgen.models.heads import HEAD_KINDS
    from mmgen.models.inputs import INPUT_KINDS
    from mmgen.orders.base import ORDERS

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmgen {mmgen.__version__}"
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    for name in [*BUILTIN_MODELS, *ORDERS, *INPUT_KINDS, *HEAD_KINDS, "MultiScaleVQModel"]:
        assert f"  {name} " in listed, name


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible: --device cuda works")
def test_device_cuda_without_a_gpu_says_to_use_the_cpu(capsys):
    assert main(["generate", "image", "--prompt", "hi", "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA GPU is visible here; use --device cpu" in capsys.readouterr().err
