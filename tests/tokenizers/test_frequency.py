"""Frequency bands (NFIG): they sum back to the input, band 0 is the mean, each band holds only
its own frequencies."""

import pytest
import torch
from mmgen.tokenizers.frequency import band_masks, frequency_bands

SIDES = (1, 2, 4, 8, 16)


def test_the_bands_sum_back_to_the_input_and_band_zero_is_the_mean():
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    bands = frequency_bands(x, SIDES)
    assert bands.shape == (5, 2, 3, 16, 16)
    assert torch.allclose(bands.sum(0), x, atol=1e-5)
    mean = x.mean(dim=(-2, -1), keepdim=True).expand_as(x)
    assert torch.allclose(bands[0], mean, atol=1e-5)


def test_each_band_holds_only_its_frequencies_and_the_masks_partition_the_spectrum():
    masks = band_masks(16, SIDES)
    assert torch.equal(masks.sum(0), torch.ones(16, 16)) and set(masks.unique().tolist()) == {0, 1}
    x = torch.randn(1, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    bands = frequency_bands(x, SIDES)
    for i in range(len(SIDES)):
        spectrum = torch.fft.fft2(bands[i]).abs()[0, 0]
        assert spectrum[masks[i] == 0].max() < 1e-4  # nothing outside its band
    # a 4 x 4 map's worth of detail: everything through band 2 survives area-down to 4 x 4
    low = bands[:3].sum(0)
    down_up = torch.nn.functional.interpolate(
        torch.nn.functional.interpolate(low, size=4, mode="area"), size=16, mode="nearest"
    )
    assert (down_up - low).abs().mean() < (x - low).abs().mean()


def test_bad_sides_are_refused():
    with pytest.raises(ValueError, match="increase strictly"):
        band_masks(16, (1, 4, 2))
    with pytest.raises(ValueError, match="square"):
        frequency_bands(torch.zeros(1, 1, 8, 16), (1, 8))


def tiny_frequency_vq():
    from conftest import TINY_VQ
    from mmgen.tokenizers.frequency_vq import FrequencyVQConfig, FrequencyVQModel

    torch.manual_seed(0)
    return FrequencyVQModel(FrequencyVQConfig(**TINY_VQ, scales=(1, 2, 4, 8)))


def test_the_tokenizer_bands_of_a_latent_sum_back_to_it_before_quantisation():
    vq = tiny_frequency_vq()
    f = vq._latents(torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    windows = vq.band_windows(8, f.device)  # (K, 8, 8) cumulative: bands 0..k
    bands = torch.diff(windows, dim=0, prepend=torch.zeros(1, 8, 8))
    assert torch.equal(bands, band_masks(8, vq.scales)) and torch.equal(
        windows[-1], torch.ones(8, 8)
    )
    split = frequency_bands(f, vq.scales)  # (K, B, C, 8, 8)
    torch.testing.assert_close(split.sum(0), f.float(), atol=1e-5, rtol=0)


def test_each_scale_quantises_the_residuals_bands_up_to_it():
    """Scale k's target is area_down(bands 0..k of the residual, p_k): the mean at 1 x 1 and
    the whole residual at the last scale (VAR's target there), a low-passed map between."""
    import torch.nn.functional as F

    vq = tiny_frequency_vq()
    rest = torch.randn(2, 8, 8, 8, generator=torch.Generator().manual_seed(1))
    bands = frequency_bands(rest, vq.scales)
    for k, p in enumerate(vq.scales):
        expected = F.interpolate(bands[: k + 1].sum(0), size=(p, p), mode="area")
        torch.testing.assert_close(vq.scale_target(rest, k), expected, atol=1e-5, rtol=0)
    assert torch.allclose(vq.scale_target(rest, 0)[..., 0, 0], rest.mean(dim=(-2, -1)), atol=1e-5)
    plain = F.interpolate(rest, size=(2, 2), mode="area")  # VAR's target at 2 x 2 differs
    assert not torch.allclose(vq.scale_target(rest, 1), plain, atol=1e-3)
    ids = vq.encode(torch.zeros(1, 3, 16, 16))
    assert ids.shape == (1, 1 + 4 + 16 + 64) and vq.decode(ids).shape == (1, 3, 16, 16)


def test_next_frequency_needs_the_frequency_tokenizer():
    from conftest import make_tiny_tokenizer

    from mmgen.orders import build_order
    from mmgen.utils.config import ConfigError

    order = build_order({"name": "next_frequency"}, tiny_frequency_vq(), 16, 5)
    assert [b - a for a, b in order.layout.image_groups] == [1, 4, 16, 64]
    assert order.head_config()["kind"] == "categorical"
    with pytest.raises(ConfigError, match="needs a frequency-band tokenizer"):
        build_order({"name": "next_frequency"}, make_tiny_tokenizer({"name": "next_scale"}), 16, 5)


def test_the_tokenizer_task_trains_and_saves_a_frequency_vq(tmp_path):
    from mmgen.tokenizers.frequency_vq import FrequencyVQModel
    from training_recipes import reset_accelerate, run, vq_recipe

    from mmgen.utils.serialization import load_component

    reset_accelerate()
    model = {"block_out_channels": [8, 8, 8], "norm_num_groups": 4, "latent_channels": 8,
             "codebook_size": 16, "scales": [1, 2, 4, 8, 16]}  # fmt: skip
    metrics = run(vq_recipe(tmp_path), model_class="FrequencyVQModel", model=model)
    reset_accelerate()
    assert 0 <= metrics["reconstruction_pass_rate"] <= 1 and metrics["codebook_utilisation"] > 0
    loaded = load_component(tmp_path / "vq" / "final")
    assert isinstance(loaded, FrequencyVQModel) and loaded.scales == (1, 2, 4, 8, 16)
