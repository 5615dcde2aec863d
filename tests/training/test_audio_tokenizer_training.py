"""Training the waveform autoencoder on ``tones`` through ``mmgen train tokenizer``."""

import json

from training_recipes import run, write

from mmgen.cli import main
from mmgen.utils.serialization import load_component


def test_the_waveform_autoencoder_trains_on_tones_and_reports_verifier_and_latent_rate(
    tmp_path, capsys
):
    recipe = write(tmp_path / "tones.yaml", {
        "task": "tokenizer",
        "model_class": "WaveformAutoencoder",
        "output_dir": str(tmp_path / "ae"),
        "data": {"name": "tones", "num_samples": 16},
        "model": {"channels": 8, "strides": [4, 5, 5, 8], "channel_multiples": [2, 1, 1, 2],
                  "latent_channels": 4},
        "training": {"batch_size": 4, "max_steps": 2, "warmup_steps": 1, "log_steps": 1,
                     "checkpointing_steps": 2, "validation_steps": 2},
    })  # fmt: skip
    run(recipe)
    metrics = json.loads((tmp_path / "ae" / "final" / "eval.json").read_text())
    assert metrics["latents_per_second"] == 20.0 and metrics["original_pass_rate"] == 1.0
    assert 0 <= metrics["reconstruction_pass_rate"] <= 1
    model = load_component(tmp_path / "ae" / "final")
    assert model.latent_std.ne(1).any()  # calibrated at export
    capsys.readouterr()
    assert main(["eval", "tokenizer", "--model", str(tmp_path / "ae" / "final"), "--task",
                 "tones", "--num-images", "8"]) == 0  # fmt: skip
    assert "latents_per_second: 20.0" in capsys.readouterr().out
