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
