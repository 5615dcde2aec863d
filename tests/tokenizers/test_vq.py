import subprocess
import sys

import pytest
import torch
from mmgen.tokenizers.vq import VQConfig, VQModel, VQOutput


def _tiny_config(**overrides) -> VQConfig:
    fields = dict(
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=8,
        codebook_size=32,
        codebook_dim=4,
    )
    fields.update(overrides)
    return VQConfig(**fields)


def _tiny_model(seed=0, **overrides) -> VQModel:
    torch.manual_seed(seed)
    return VQModel(_tiny_config(**overrides))


def _images(batch=2, size=8, seed=0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _rectangle_images(batch=4, size=16, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    images = torch.full((batch, 3, size, size), -1.0)
    for b in range(batch):
        y0, x0 = torch.randint(0, size // 2, (2,), generator=g).tolist()
        y1, x1 = (torch.randint(size // 2 + 1, size + 1, (2,), generator=g)).tolist()
        images[b, :, y0:y1, x0:x1] = torch.rand(3, 1, 1, generator=g) * 2 - 1
    return images


def test_encode_decode_forward_shapes():
    model = _tiny_model().eval()
    assert model.downsample_factor == 2
    assert model.codebook_size == 32
    images = _images(batch=2, size=8)
    ids = model.encode(images)
    assert ids.shape == (2, 4, 4) and ids.dtype == torch.long
    assert 0 <= ids.min() and ids.max() < 32
    decoded = model.decode(ids)
    assert decoded.shape == (2, 3, 8, 8)
    assert decoded.min() >= -1 and decoded.max() <= 1
    out = model(images)
    assert isinstance(out, VQOutput)
    assert out.reconstruction.shape == (2, 3, 8, 8)
    assert out.ids.shape == (2, 4, 4)
    for name in ("loss", "reconstruction_loss", "codebook_loss", "commitment_loss", "perplexity"):
        assert getattr(out, name).shape == (), name


def test_non_square_images_and_grid_shape():
    model = _tiny_model(block_out_channels=(8, 8, 16)).eval()
    assert model.downsample_factor == 4
    assert model.grid_shape(16, 8) == (4, 2)
    images = torch.rand(1, 3, 16, 8) * 2 - 1
    assert model.encode(images).shape == (1, 4, 2)
    assert model.decode(model.encode(images)).shape == (1, 3, 16, 8)
    with pytest.raises(ValueError, match="divisible"):
        model.grid_shape(16, 6)
    with pytest.raises(ValueError, match="divisible"):
        model.encode(torch.zeros(1, 3, 10, 8))


def test_default_config_is_ds4():
    model = VQModel(VQConfig())
    assert model.downsample_factor == 4
    assert model.grid_shape(64, 32) == (16, 8)


def test_encode_then_decode_matches_forward_reconstruction_in_eval():
    model = _tiny_model().eval()
    images = _images()
    with torch.no_grad():
        out = model(images)
    ids = model.encode(images)
    assert torch.equal(ids, out.ids)
    torch.testing.assert_close(model.decode(ids), out.reconstruction, atol=1e-5, rtol=1e-5)


def test_loss_is_weighted_sum_of_parts():
    model = _tiny_model(commitment_beta=0.5).eval()
    images = _images()
    out = model(images)
    torch.testing.assert_close(
        out.loss, out.reconstruction_loss + out.codebook_loss + 0.5 * out.commitment_loss
    )


def test_reconstruction_gradient_reaches_encoder_through_straight_through_estimator():
    model = _tiny_model()
    model(_images()).reconstruction_loss.backward()
    for module in (model.encoder.conv_in, model.quant_conv, model.decoder.conv_in):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0
    # The reconstruction loss alone does not train the codebook (only the codebook loss does).
    grad = model.quantize.embedding.weight.grad
    assert grad is None or grad.abs().sum() == 0


def test_encode_does_not_update_usage_even_in_training_mode():
    model = _tiny_model().train()
    before = model.quantize.usage.clone()
    model.encode(_images())
    assert torch.equal(model.quantize.usage, before)
    model(_images())
    assert not torch.equal(model.quantize.usage, before)


def test_forward_restarts_dead_codes_only_with_generator():
    model = _tiny_model().train()
    with torch.no_grad():
        model.quantize.usage[:4] = 0.0
    before = model.quantize.embedding.weight.detach().clone()
    model(_images())
    assert torch.equal(model.quantize.embedding.weight, before)
    model(_images(), generator=torch.Generator().manual_seed(0))
    assert not torch.equal(model.quantize.embedding.weight[:4], before[:4])
    assert torch.equal(model.quantize.embedding.weight[4:], before[4:])


@pytest.fixture
def single_thread():
    # Tiny convs are overhead-bound; extra threads only add contention on small CI machines.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_tiny_vq_overfits_one_batch(single_thread):
    model = _tiny_model(block_out_channels=(16, 32), norm_num_groups=8, latent_channels=16)
    model.train()
    images = _rectangle_images(batch=4, size=16)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(100):
        out = model(images, generator=generator)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.reconstruction_loss.item())
    first = sum(losses[:5]) / 5
    last = sum(losses[-5:]) / 5
    assert last < 0.3 * first, (first, last)


def test_config_accepts_lists_and_rejects_nonsense():
    config = VQConfig(block_out_channels=[32, 64])
    assert config.block_out_channels == (32, 64)
    bad = [
        ("codebook_size", dict(codebook_size=0)),
        ("codebook_dim", dict(codebook_dim=1)),
        ("in_channels", dict(in_channels=0)),
        ("block_out_channels", dict(block_out_channels=())),
        ("block_out_channels", dict(block_out_channels=(32, -64))),
        ("block_out_channels", dict(block_out_channels="32")),
        ("norm_num_groups", dict(block_out_channels=(32, 48))),
        ("layers_per_block", dict(layers_per_block=0)),
        ("latent_channels", dict(latent_channels=2.5)),
        ("commitment_beta", dict(commitment_beta=-1.0)),
        ("usage_decay", dict(usage_decay=1.0)),
        ("dead_code_threshold", dict(dead_code_threshold=0.01)),
        ("mid_block_attention", dict(mid_block_attention="yes")),
    ]
    for field, kwargs in bad:
        with pytest.raises(ValueError, match=field):
            VQConfig(**kwargs)
    with pytest.raises(TypeError, match="codebook_szie"):
        VQConfig(codebook_szie=16)
    with pytest.raises(TypeError):
        VQConfig(3)  # keyword-only


def test_mid_block_attention_builds_and_runs():
    model = _tiny_model(mid_block_attention=True).eval()
    assert model(_images()).reconstruction.shape == (2, 3, 8, 8)


def test_importing_vq_does_not_import_diffusers():
    code = "import sys, mmgen.tokenizers.vq; assert 'diffusers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_dead_code_threshold_is_valid_for_any_codebook_size():
    for size in (16, 512, 1024, 16384):
        config = VQConfig(codebook_size=size)
        assert config.dead_code_threshold == 0.5 / size
