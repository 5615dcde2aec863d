"""The audio commands: ``mmgen generate audio`` (.wav files), ``mmgen eval tones`` and
``tools/generate_audio.py``."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmgen.cli import main
from mmgen.utils.audio import read_wav
from tests.conftest import make_tiny_audio_pipeline, make_tiny_pipeline


def test_generate_audio_writes_the_pipelines_clips_as_wav(tmp_path, capsys):
    pipe = make_tiny_audio_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    base = ["generate", "audio", "--model", str(tmp_path / "pipe"), "--prompt", "play C4 E4",
            "--num-inference-steps", "2"]  # fmt: skip
    assert main([*base, "--num-images", "2", "--seed", "3", "--out",
                 str(tmp_path / "tune.wav")]) == 0  # fmt: skip
    assert "wrote 2 clip(s) of 0.01 s at 16000 Hz" in capsys.readouterr().out
    expected = pipe("play C4 E4", num_audios_per_prompt=2, num_inference_steps=2,
                    generator=torch.Generator().manual_seed(3)).audios  # fmt: skip
    for i in range(2):
        audio, rate = read_wav(tmp_path / f"tune_{i}.wav")
        assert rate == 16000 and audio.shape == (200,)
        assert np.abs(audio - expected[i]).max() <= 1 / 32767  # 16-bit PCM of the same clip
    assert main([*base, "--out", str(tmp_path / "tune.mp3")]) == 2
    assert ".wav" in capsys.readouterr().err
    assert main([*base, "--top-k", "5"]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_image_and_audio_models_are_told_apart(tmp_path, capsys):
    make_tiny_audio_pipeline().save_pretrained(tmp_path / "audio")
    make_tiny_pipeline().save_pretrained(tmp_path / "image")
    assert main(["generate", "image", "--model", str(tmp_path / "audio"), "--prompt", "x"]) == 2
    assert "mmgen generate audio" in capsys.readouterr().err
    assert main(["generate", "audio", "--model", str(tmp_path / "image"), "--prompt", "x"]) == 2
    assert "not a audio model" not in (err := capsys.readouterr().err)
    assert "not an audio model" in err and "mmgen generate image" in err


def test_eval_tones_prints_note_counts_and_writes_report_and_spectrograms(tmp_path, capsys):
    make_tiny_audio_pipeline().save_pretrained(tmp_path / "pipe")
    out = tmp_path / "eval"
    assert main(["eval", "tones", "--model", str(tmp_path / "pipe"), "--num-prompts", "6",
                 "--batch-size", "4", "--num-inference-steps", "2", "--out-dir",
                 str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert sum(report["counts"].values()) == 6 and report["num_prompts"] == 6
    assert set(report["by_notes"]) == {"1_note", "2_notes", "3_notes", "4_notes"}
    assert report["sampling"]["num_inference_steps"] == 2
    assert report["overall"] == 0  # 200-sample clips hold no 0.25 s note window
    assert all(r["reason"].startswith("sounding windows") for r in report["results"])
    with Image.open(out / "spectrograms.png") as sheet:
        assert sheet.width > 0
    printed = capsys.readouterr().out
    assert "4_notes" in printed and "overall" in printed


def test_tools_generate_audio_takes_the_cli_options(tmp_path):
    tools = Path(__file__).resolve().parent.parent / "tools"
    make_tiny_audio_pipeline().save_pretrained(tmp_path / "pipe")
    subprocess.run([sys.executable, str(tools / "generate_audio.py"), "--model",
                    str(tmp_path / "pipe"), "--prompt", "play C4", "--num-inference-steps", "2",
                    "--out", str(tmp_path / "c.wav")], check=True, capture_output=True)  # fmt: skip
    assert read_wav(tmp_path / "c.wav")[0].shape == (200,)


def test_bench_audio_times_the_first_chunk_and_the_real_time_factor(tmp_path, capsys):
    import importlib.util

    make_tiny_audio_pipeline().save_pretrained(tmp_path / "pipe")
    tools = Path(__file__).resolve().parent.parent / "tools"
    spec = importlib.util.spec_from_file_location("bench_audio", tools / "bench_audio.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.main(["--model", str(tmp_path / "pipe"), "--repeats", "1", "--json",
                    str(tmp_path / "audio.json")])  # fmt: skip
    assert r["chunks"] == 5  # 10 latents in chunks of 2
    assert 0 < r["first_chunk_s"] <= r["stream_total_s"]
    assert r["rtf_stream"] == r["stream_total_s"] / (200 / 16000)
    assert json.loads((tmp_path / "audio.json").read_text())["chunks"] == 5
    assert "CLEAR (GPU)" in capsys.readouterr().out
