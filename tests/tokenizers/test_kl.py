"""The KL autoencoder: continuous latents, normalised per channel, trained and saved like the VQ."""

import torch
from mmgen.tokenizers.kl import KLConfig, KLModel
from training_recipes import reset_accelerate, run, vq_recipe

from mmgen.utils.serialization import load_component, save_module

TINY_KL = dict(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=4)


def images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth (B, 3, 16, 16) images in [-1, 1] (4 x 4 noise, bicubic up)."""
    coarse = torch.randn(n, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=16, mode="bicubic").tanh()


def test_layout_shapes_and_calibrated_latents_are_standardised(tmp_path):
    torch.manual_seed(0)
    model = KLModel(KLConfig(**TINY_KL))
    layout = model.token_layout(16, 16)
    assert (layout.grid, layout.codebook_size, layout.latent_channels) == ((8, 8), 0, 4)
    x = images(32)
    model.calibrate(x)
    latents = model.encode(x)  # (B, C, h, w)
    assert latents.shape == (32, 4, 8, 8)
    assert latents.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (latents.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    # decode undoes the normalisation: the same images as decoding the raw posterior mean
    raw = model.vae.decode(model.vae.encode(x[:2]).latent_dist.mode()).sample.clamp(-1, 1)
    assert torch.allclose(model.decode(latents[:2]), raw, atol=1e-5)
    save_module(model, tmp_path / "kl")
    loaded = load_component(tmp_path / "kl")
    assert torch.equal(loaded.encode(x[:2]), model.encode(x[:2]))  # normalisation saved


def test_the_loss_is_reproducible_from_a_generator_and_training_lowers_it():
    torch.manual_seed(0)
    model = KLModel(KLConfig(**TINY_KL))
    x = images(8)
    a = model(x, generator=torch.Generator().manual_seed(1)).loss
    b = model(x, generator=torch.Generator().manual_seed(1)).loss
    assert torch.equal(a, b)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for step in range(30):
        out = model(x, generator=torch.Generator().manual_seed(step))
        first = first if first is not None else out.reconstruction_loss.item()
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert out.reconstruction_loss.item() < 0.7 * first and out.kl_loss.item() >= 0


def test_the_tokenizer_task_trains_calibrates_and_evaluates_a_kl_model(tmp_path):
    reset_accelerate()
    metrics = run(vq_recipe(tmp_path), model_class="KLModel",
                  model={"block_out_channels": [8, 8], "norm_num_groups": 4,
                         "latent_channels": 4})  # fmt: skip
    reset_accelerate()
    assert metrics["codebook_utilisation"] is None and 0 <= metrics["reconstruction_pass_rate"]
    model = load_component(tmp_path / "vq" / "final")
    assert isinstance(model, KLModel) and not torch.equal(model.latent_std, torch.ones(4))
