"""Frequency-band residual VQ (NFIG's FR-VAE idea): one image -> code maps of its bands, low to
high, on one shared codebook.

It is VAR's residual multi-scale quantiser (:class:`MultiScaleVQModel`) with scale k fed the
residual's frequencies up to band k (``mmgen.tokenizers.frequency``: band i is
``IFFT(FFT(f) * M_i)``), so a ``p_k x p_k`` map quantises exactly what that map can hold, with
no aliasing from the bands above it:

    r_k   = Q(area_down(IFFT(FFT(f_rest) * W_k), p_k))     W_k = M_0 + ... + M_k
    f_hat = f_hat + phi_k(up(e[r_k]));   f_rest = f - f_hat

The lowest band (side 1) is each channel's mean, one code; the last band is everything left.
Taking the residual's bands up to k (not band k alone) lets each scale also correct what the
coarser codes got wrong in the lower bands.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .frequency import band_masks
from .multiscale_vq import MultiScaleVQConfig, MultiScaleVQModel, area_down


@dataclass(kw_only=True)
class FrequencyVQConfig(MultiScaleVQConfig):
    """Configuration of :class:`FrequencyVQModel`: every :class:`MultiScaleVQConfig` field;
    ``scales`` are the band sides (band k is what a ``scales[k]`` map holds beyond band k-1)."""

    scales: tuple[int, ...] = (1, 2, 4, 8)


class FrequencyVQModel(MultiScaleVQModel):
    """NFIG's frequency-band tokenizer on mmgen's VQ encoder/decoder (codes as in VAR: flat,
    coarse band first).

    Examples:
        >>> cfg = FrequencyVQConfig(block_out_channels=(32, 32), scales=(1, 2, 4, 8))
        >>> model = FrequencyVQModel(cfg)
        >>> ids = model.encode(torch.zeros(1, 3, 16, 16))  # (1, 1 + 4 + 16 + 64)
    """

    config_class = FrequencyVQConfig
    #: orders that need frequency bands (``next_frequency``) check this
    frequency_bands = True

    def band_windows(self, side: int, device) -> torch.Tensor:
        """(K, side, side) cumulative masks ``W_k``: the frequencies of bands 0..k."""
        return band_masks(side, self.scales, device).cumsum(dim=0)

    def scale_target(self, f_rest_BChw: torch.Tensor, k: int) -> torch.Tensor:
        side = f_rest_BChw.shape[-1]
        window = self.band_windows(side, f_rest_BChw.device)[k]  # (side, side)
        low = torch.fft.ifft2(torch.fft.fft2(f_rest_BChw.float()) * window).real
        return area_down(low, self.scales[k])
