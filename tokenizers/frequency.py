"""Frequency bands of a latent map (NFIG's FR-VAE idea): ``f_i = IFFT(FFT(f) * M_i)``.

The masks partition the spectrum by square low-pass windows: band i keeps the frequencies a
``sides[i] x sides[i]`` map can hold and the previous bands could not (``|k_h|, |k_w| <
sides[i] / 2`` cycles per map, minus band i-1's window). Band 0 with side 1 is the DC term (each
channel's mean); the last band takes everything left, so the bands sum back to the input.
"""

from __future__ import annotations

import torch


def lowpass_mask(size: int, side: int, device=None) -> torch.Tensor:
    """(size, size) 0/1 mask of the frequencies a ``side x side`` map holds (fft2 layout)."""
    k = torch.fft.fftfreq(size, d=1.0 / size, device=device).abs()  # integer cycles per map
    keep = k < side / 2 if side > 1 else k == 0
    return (keep[:, None] & keep[None, :]).float()


def band_masks(size: int, sides: tuple[int, ...], device=None) -> torch.Tensor:
    """(K, size, size) masks, one per band, that sum to ones."""
    if not sides or any(b <= a for a, b in zip(sides, sides[1:])) or sides[-1] > size:
        raise ValueError(f"sides must increase strictly up to the map size {size}, got {sides}")
    windows = [lowpass_mask(size, s, device) for s in sides[:-1]]
    windows.append(torch.ones(size, size, device=device))  # the last band: all that is left
    masks, below = [], torch.zeros(size, size, device=device)
    for window in windows:
        masks.append(window - below)
        below = window
    return torch.stack(masks)


def frequency_bands(x_BChw: torch.Tensor, sides: tuple[int, ...]) -> torch.Tensor:
    """(B, C, h, h) -> (K, B, C, h, h) bands, low to high, whose sum is ``x``."""
    size = x_BChw.shape[-1]
    if x_BChw.shape[-2] != size:
        raise ValueError(f"frequency bands need a square map, got {tuple(x_BChw.shape[-2:])}")
    spectrum = torch.fft.fft2(x_BChw.float())  # (B, C, h, h) complex
    masks = band_masks(size, tuple(sides), x_BChw.device)  # (K, h, h)
    return torch.fft.ifft2(spectrum[None] * masks[:, None, None]).real
