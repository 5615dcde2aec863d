import pytest
import torch
from conftest import TINY_VQ
from mmgen.tokenizers.multiscale_vq import MultiScaleVQConfig, MultiScaleVQModel, area_down

from mmgen.utils.config import ConfigError

SCALES = (1, 2, 4, 8)


def tiny(**overrides):
    torch.manual_seed(0)
    return MultiScaleVQModel(MultiScaleVQConfig(**TINY_VQ, scales=SCALES, **overrides)).eval()


def images(n=2):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1


def test_flat_ids_hold_every_scale_coarse_to_fine():
    model = tiny()
    ids = model.encode(images())
    assert ids.shape == (2, 1 + 4 + 16 + 64)
    assert [s.stop - s.start for s in model.scale_slices()] == [1, 4, 16, 64]
    assert [m.shape for m in model.split_scales(ids)] == [(2, p, p) for p in SCALES]
    assert model.decode(ids).shape == (2, 3, 16, 16)


def test_decoding_the_ids_gives_the_forward_reconstruction():
    """f_hat rebuilt from the ids (generation's path) equals the residual quantiser's."""
    model = tiny()
    x = images()
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model.decode(out.ids), out.reconstruction, atol=1e-5, rtol=0)


def test_residual_quantisation_shrinks_the_residual_scale_by_scale():
    model = tiny(lookup="euclidean")
    f = model._latents(images(4)).detach()
    ids = model._quantise(f, None, training=False).ids
    errors, f_hat = [], torch.zeros_like(f)
    for k, m in enumerate(model.split_scales(ids)):
        f_hat = f_hat + model.scale_residual(k, m, 8)
        errors.append((f - f_hat).pow(2).mean().item())
    assert errors[-1] < errors[0]


def test_next_scale_inputs_are_the_accumulated_f_hat_downsampled():
    model = tiny()
    ids = model.encode(images())
    inputs = model.next_scale_inputs(ids)  # (B, 4 + 16 + 64, C)
    maps = model.split_scales(ids)
    f_hat = model.scale_residual(0, maps[0], 8) + model.scale_residual(1, maps[1], 8)
    expected = area_down(f_hat, 4).flatten(2).transpose(1, 2)  # scale 3's input
    torch.testing.assert_close(inputs[:, 4:20], expected)


def test_each_scale_uses_the_phi_whose_tick_is_nearest_k_over_K_minus_1():
    model = MultiScaleVQModel(MultiScaleVQConfig(**TINY_VQ, scales=(1, 2, 3, 4, 6, 8)))
    assert [list(model.phis).index(model.phi(k)) for k in range(6)] == [0, 0, 1, 2, 3, 3]


def test_euclidean_lookup_matches_magnitude_and_cosine_only_direction():
    model = tiny(lookup="euclidean")
    with torch.no_grad():
        model.quantize.embedding.weight.zero_()
        model.quantize.embedding.weight[0, 0] = 1.0  # short code along axis 0
        model.quantize.embedding.weight[1, 0] = 4.0  # long code, same direction
        model.quantize.embedding.weight[2:, 1] = -1.0  # elsewhere
    rest = torch.zeros(2, model.config.codebook_dim)
    rest[0, 0], rest[1, 0] = 1.1, 3.9
    assert model._nearest_codes(rest).tolist() == [0, 1]
    model.config.lookup = "cosine"
    assert model._nearest_codes(rest).tolist()[0] == model._nearest_codes(rest).tolist()[1]


def test_bad_scales_and_lookup_are_config_errors():
    with pytest.raises(ConfigError, match="scales must increase"):
        MultiScaleVQConfig(**TINY_VQ, scales=(1, 4, 2, 8))
    with pytest.raises(ConfigError, match="lookup must be"):
        MultiScaleVQConfig(**TINY_VQ, lookup="manhattan")
