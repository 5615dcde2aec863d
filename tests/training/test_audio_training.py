"""Training text-to-audio (next-latent) through ``mmgen train``: tones clips and a user's audio
folder, exact resume, the validation scored like the eval, the saved pipeline generating clips."""

import json

import numpy as np
import pytest
import torch
from training_recipes import (
    losses,
    reset_accelerate,
    resumed_step,
    run,
    run_full_and_split,
    write,
)

from mmgen import TextToAudioPipeline
from mmgen.pipelines.ar_image import ARImagePipeline


@pytest.fixture(scope="module")
def trained_waveform(tmp_path_factory):
    """A tiny waveform autoencoder (1 s -> 20 latents of 4 channels) trained two steps."""
    reset_accelerate()
    tmp_path = tmp_path_factory.mktemp("waveform")
    run(write(tmp_path / "ae.yaml", {
        "task": "tokenizer",
        "model_class": "WaveformAutoencoder",
        "output_dir": str(tmp_path / "ae"),
        "data": {"name": "tones", "num_samples": 8},
        "model": {"channels": 8, "strides": [4, 5, 5, 8], "channel_multiples": [2, 1, 1, 2],
                  "latent_channels": 4},
        "training": {"batch_size": 4, "max_steps": 1, "warmup_steps": 1, "log_steps": 1,
                     "checkpointing_steps": 1, "validation_steps": 100},
    }))  # fmt: skip
    reset_accelerate()
    return tmp_path / "ae" / "final"


def t2a_recipe(tmp_path, tokenizer, name="t2a", data=None, **training):
    return write(tmp_path / f"{name}.yaml", {
        "task": "text_to_audio",
        "output_dir": str(tmp_path / name),
        "tokenizer": str(tokenizer),
        "order": {"name": "next_latent", "chunk": 2},
        "text_tokenizer": {"kind": "word"},
        "text_max_length": 7,
        "data": data or {"name": "tones", "num_samples": 8},
        "model": {"preset": "debug", "rope": "1d", "head": {"width": 32, "depth": 1}},
        "validation_num_prompts": 2,
        "validation_prompts": ["play C4 E4"],
        "sampling": {"num_inference_steps": 2},
        "training": {"batch_size": 4, "max_steps": 4, "warmup_steps": 1, "log_steps": 1,
                     "checkpointing_steps": 2, "validation_steps": 100,
                     "lr_schedule": "constant", **training},
    })  # fmt: skip


def test_next_latent_trains_resumes_exactly_and_the_run_generates_clips(
    trained_waveform, tmp_path, capsys
):
    printed, validation = run_full_and_split(
        lambda name: t2a_recipe(tmp_path, trained_waveform, name=name), capsys
    )
    assert resumed_step(printed) == 2
    assert "encoded data: 8 examples" in printed  # the second run hit the shared cache
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    assert 0 <= validation["validation_pass_rate"] <= 1  # scored like `mmgen eval tones`
    assert (tmp_path / "split" / "samples" / "step_0000004.png").is_file()  # spectrograms
    report = tmp_path / "split" / "validations" / "step_0000004" / "report.json"
    assert json.loads(report.read_text())["num_prompts"] == 2
    pipe = ARImagePipeline.from_pretrained(tmp_path / "split" / "final")
    assert isinstance(pipe, TextToAudioPipeline) and pipe.num_samples == 16000
    assert pipe.order.config() == {"name": "next_latent", "chunk": 2}
    out = pipe(["play C4 G4"], generator=torch.Generator().manual_seed(0))
    assert out.sample_rate == 16000 and out.audios[0].shape == (16000,)
    assert out.audios[0].dtype == np.float32 and np.abs(out.audios[0]).max() <= 1
    with pytest.warns(UserWarning, match="H9"):  # a note outside the task's set is named
        pipe("play C4 H9", generator=torch.Generator().manual_seed(0))


def test_an_audio_folder_trains_the_same_way(trained_waveform, tmp_path):
    from mmgen.data.tones import TonesDataset
    from mmgen.utils.audio import write_wav

    folder = tmp_path / "sounds"
    clips, lines = TonesDataset(3, seed=5), []
    for i in range(3):
        item = clips[i]
        write_wav(folder / f"clip{i}.wav", item["audio"][:8000].numpy(), 16000)
        lines.append(json.dumps({"file_name": f"clip{i}.wav", "text": item["prompt"]}))
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    data = {"name": "audiofolder", "path": str(folder), "seconds": 0.5}
    run(t2a_recipe(tmp_path, trained_waveform, name="user", data=data, max_steps=2,
                   validation_steps=2))  # fmt: skip
    assert sorted(losses(tmp_path / "user")) == [1, 2]
    samples = tmp_path / "user" / "samples"
    assert (samples / "step_0000002.png").is_file()
    from mmgen.utils.audio import read_wav

    audio, rate = read_wav(samples / "step_0000002_0.wav")  # the validation prompt's clip
    assert rate == 16000 and audio.shape == (8000,)
    pipe = TextToAudioPipeline.from_pretrained(tmp_path / "user" / "final")
    assert pipe.num_samples == 8000
