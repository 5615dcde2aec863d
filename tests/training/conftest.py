"""Fixtures of the training tests: fresh accelerate singletons, one tiny trained tokenizer."""

import pytest
from training_recipes import reset_accelerate, run, vq_recipe


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate()
    yield
    reset_accelerate()


@pytest.fixture(scope="session")
def trained_vq(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("vq")
    metrics = run(vq_recipe(tmp_path))
    reset_accelerate()
    return tmp_path / "vq", metrics


# a ds8 multi-scale tokenizer: 64x64 shapes -> 8x8, scales 1, 2, 4, 8
TINY_MSVQ = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "latent_channels": 8,
             "codebook_size": 16, "scales": [1, 2, 4, 8]}  # fmt: skip


@pytest.fixture(scope="session")
def trained_msvq(tmp_path_factory):
    """A tiny multi-scale VQ (next-scale's tokenizer) trained for two steps."""
    reset_accelerate()
    tmp_path = tmp_path_factory.mktemp("msvq")
    run(vq_recipe(tmp_path), model_class="MultiScaleVQModel", model=TINY_MSVQ)
    reset_accelerate()
    return tmp_path / "vq" / "final"


@pytest.fixture(scope="session")
def trained_kl(tmp_path_factory):
    """A tiny ds8 KL autoencoder (continuous orders' tokenizer: 64x64 -> 8x8 x 4 latents)
    trained for two steps and calibrated."""
    reset_accelerate()
    tmp_path = tmp_path_factory.mktemp("kl")
    kl = {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "latent_channels": 4}
    run(vq_recipe(tmp_path), model_class="KLModel", model=kl)
    reset_accelerate()
    return tmp_path / "vq" / "final"
