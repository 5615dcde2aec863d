"""The video commands: ``mmgen generate video`` (.mp4 / .gif files), ``mmgen eval moving-shapes``
and ``tools/generate_video.py``."""

import json
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
from PIL import Image

from mmgen.cli import main
from tests.conftest import make_tiny_pipeline, make_tiny_video_pipeline


def test_generate_video_writes_one_file_per_video(tmp_path, capsys):
    make_tiny_video_pipeline().save_pretrained(tmp_path / "pipe")
    base = ["generate", "video", "--model", str(tmp_path / "pipe"), "--prompt", "a red circle"]
    assert main([*base, "--num-images", "2", "--num-frames", "4", "--out",
                 str(tmp_path / "clip.gif")]) == 0  # fmt: skip
    for name in ("clip_0.gif", "clip_1.gif"):
        with Image.open(tmp_path / name) as gif:
            assert gif.n_frames == 4 and gif.size == (8, 8)
    assert "wrote 2 video(s) of 4 frames" in capsys.readouterr().out
    assert main([*base, "--num-images", "1", "--flexrope-slope", "0.5", "--fps", "4", "--out",
                 str(tmp_path / "one.mp4")]) == 0  # fmt: skip
    assert iio.imread(tmp_path / "one.mp4").shape[0] == 3  # the model's 3 frames
    assert main([*base, "--out", str(tmp_path / "clip.png")]) == 2
    assert ".mp4 or .gif" in capsys.readouterr().err


def test_image_and_video_models_are_told_apart(tmp_path, capsys):
    make_tiny_video_pipeline().save_pretrained(tmp_path / "video")
    make_tiny_pipeline().save_pretrained(tmp_path / "image")
    assert main(["generate", "image", "--model", str(tmp_path / "video"), "--prompt", "x"]) == 2
    assert "mmgen generate video" in capsys.readouterr().err
    assert main(["generate", "video", "--model", str(tmp_path / "image"), "--prompt", "x",
                 "--out", str(tmp_path / "c.gif")]) == 2  # fmt: skip
    assert "not a video model" in capsys.readouterr().err
    assert main(["generate", "image", "--model", str(tmp_path / "image"), "--prompt", "x",
                 "--num-frames", "3"]) == 2  # fmt: skip


def test_eval_moving_shapes_prints_kinds_and_writes_report_and_contact_sheet(tmp_path, capsys):
    make_tiny_video_pipeline().save_pretrained(tmp_path / "pipe")
    out = tmp_path / "eval"
    command = ["eval", "moving-shapes", "--model", str(tmp_path / "pipe"), "--num-prompts", "4",
               "--batch-size", "2", "--num-inference-steps", "2"]  # fmt: skip
    command += ["--out-dir", str(out)]
    assert main(command) == 0
    report = json.loads((out / "report.json").read_text())
    assert sum(report["counts"].values()) == 4
    assert set(report["kinds"]) == {"one_object", "two_objects"}
    assert report["sampling"]["num_inference_steps"] == 2
    assert all(len(r["frames"]) == 3 for r in report["results"])
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.width == 3 * (8 + 4)  # one row per clip, a column per frame
    printed = capsys.readouterr().out
    assert "two_objects" in printed and "overall" in printed
    assert main([*command, "--given-frames", "1"]) == 2  # true clips are 64x64, this model 8x8
    assert "frames must be 8x8" in capsys.readouterr().err


def test_tools_generate_video_takes_the_cli_options(tmp_path):
    tools = Path(__file__).resolve().parent.parent / "tools"
    make_tiny_video_pipeline().save_pretrained(tmp_path / "pipe")
    subprocess.run([sys.executable, str(tools / "generate_video.py"), "--model",
                    str(tmp_path / "pipe"), "--prompt", "a red circle", "--out",
                    str(tmp_path / "c.gif")], check=True, capture_output=True)  # fmt: skip
    with Image.open(tmp_path / "c.gif") as gif:
        assert gif.n_frames == 3


def test_bench_video_length_measures_every_frame_of_long_rollouts(tmp_path, capsys):
    import importlib.util

    make_tiny_video_pipeline().save_pretrained(tmp_path / "pipe")
    tools = Path(__file__).resolve().parent.parent / "tools"
    spec = importlib.util.spec_from_file_location("bench_video_length",
                                                  tools / "bench_video_length.py")  # fmt: skip
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.main(["--model", str(tmp_path / "pipe"), "--lengths", "6", "--slopes", "0",
                          "0.5", "--long-windows", "2", "--num-prompts", "2",
                          "--num-inference-steps", "2", "--out-dir",
                          str(tmp_path / "docs")])  # fmt: skip
    runs = results["runs"]
    assert [(r["flexrope_slope"], r["long_window"]) for r in runs] == [(0.0, None), (0.5, None),
                                                                        (0.0, 2)]  # fmt: skip
    assert all(len(r["per_frame_pass_rate"]) == 6 for r in runs)
    # the plain order's cache holds all 24 + 6 x 16 rows; FAR-Long W=2 retires old frame rows
    assert runs[0]["kv_rows"] == 120 and runs[2]["kv_rows"] < runs[0]["kv_rows"]
    assert json.loads((tmp_path / "docs" / "video_length.json").read_text())["runs"] == runs
    with Image.open(tmp_path / "docs" / "video_length_6.png") as plot:
        assert plot.size == (640, 360)
    printed = capsys.readouterr().out
    assert "FlexRoPE slope 0.5" in printed and "FAR-Long W=2" in printed
