"""Continuous next-scale (FlowAR): group k is scale k of a continuous latent, denoised jointly.

Scale k is a plain downsample of the finest latent, ``Y_k = area_down(X, p_k)`` (no residual
quantiser), with sides doubling by default (1, 2, 4, 8 for an 8 x 8 latent). Scale k + 1 is
fed the upsampled scale k, ``up(Y_k, p_{k+1})``, through the ``latent`` adapter with a one-hot
of its scale appended (as next-scale does); scale 1's single row is a zero latent of level 0.
The group flow head denoises each scale's p_k^2 latents together, conditioned on the
backbone's hidden states of that scale. The mask and positions are VAR's (rows on the finest
grid, full attention within a scale, causal across scales); the finest scale is the output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmgen.orders.base import GenerationState
from mmgen.orders.scales import ScaleOrder
from mmgen.utils.config import ConfigError

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")


def doubling_scales(side: int) -> tuple[int, ...]:
    """1, 2, 4, ..., side (``side`` a power of two)."""
    if side < 1 or side & (side - 1):
        raise ConfigError(
            f"order continuous_next_scale: doubling scales need a power-of-two latent grid, "
            f"got {side}x{side}; give order.scales"
        )
    return tuple(2**k for k in range(side.bit_length()))


class ContinuousNextScaleOrder(ScaleOrder):
    """FlowAR's order over a continuous tokenizer (``KLModel``).

    Options:
        scales: sides of the scale maps, increasing, ending at the latent grid's side
            (default: doubling from 1).
        upsample: how scale k is brought to scale k + 1's side: ``bilinear`` (default),
            ``nearest`` or ``bicubic``.
        window: s (default 1). Every scale whose side s divides is read in s x s windows, one
            row per window holding the window's s^2 latents side by side (C s^2 channels, in
            and out of the group flow head), so a p x p scale costs (p / s)^2 rows; the others
            (the 1 x 1 start) keep one row per latent, zero-padded to C s^2 channels (the head
            learns the padding as zeros and it is dropped). 1, 2, 4, 8, 16: 341 rows; s = 2: 86.
    """

    name = "continuous_next_scale"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 scales: list[int] | None = None, upsample: str = "bilinear",
                 window: int = 1):  # fmt: skip
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        layout = self.token_layout
        if not layout.is_continuous or layout.scales is not None:
            raise ConfigError(
                "order continuous_next_scale needs a single-grid continuous tokenizer "
                f"(KLModel); {type(tokenizer).__name__} gives codes"
            )
        gh, gw = layout.grid
        if gh != gw:
            raise ConfigError(f"order continuous_next_scale needs a square grid, got {gh}x{gw}")
        self.scales = doubling_scales(gh) if scales is None else tuple(scales)
        if (list(self.scales) != sorted(set(self.scales)) or self.scales[0] < 1
                or self.scales[-1] != gh):  # fmt: skip
            raise ConfigError(
                f"order.scales must increase strictly and end at the grid side {gh}, "
                f"got {list(self.scales)}"
            )
        if upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"order.upsample must be one of {list(UPSAMPLE_MODES)}, "
                              f"got {upsample!r}")  # fmt: skip
        self.upsample = upsample
        self.set_scales(self.scales, layout.latent_channels, window)

    def config(self) -> dict:
        config = {"name": self.name, "scales": list(self.scales), "upsample": self.upsample}
        return config | ({"window": self.window} if self.window > 1 else {})

    def head_config(self) -> dict:
        return {"kind": "group_flow", "latent_channels": self.row_channels,
                "group_shapes": [[q, q] for q in self.row_sides]}  # fmt: skip

    def _up(self, map_BCpp: torch.Tensor, side: int) -> torch.Tensor:
        """(B, C, p, p) -> the rows (B, rows, C s^2) of the map brought to ``side``."""
        corners = None if self.upsample == "nearest" else False
        up = F.interpolate(map_BCpp, size=(side, side), mode=self.upsample, align_corners=corners)
        return self._latent_rows(up)

    def scale_maps(self, latents_BNC: torch.Tensor) -> list[torch.Tensor]:
        """Flat finest latents (B, N, C) -> each scale's (B, C, p, p) downsample ``Y_k``."""
        from mmgen.tokenizers.multiscale_vq import area_down

        finest = self.token_layout.unflatten(latents_BNC.float())  # (B, C, h, w)
        return [area_down(finest, p) for p in self.scales]

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        maps = self.scale_maps(codes_BN)
        inputs = [self._start_rows(codes_BN.shape[0], codes_BN.device)]
        for k, p in enumerate(self.scales[1:], start=1):
            inputs.append(self._with_level(self._up(maps[k - 1], p), k))
        targets = torch.cat([self._latent_rows(m) for m in maps], dim=1)
        return torch.cat(inputs, dim=1), targets  # (B, rows, C s^2 + K), (B, rows, C s^2)

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self._start_rows(state.codes.shape[0], state.codes.device)
        return self._with_level(self._up(state.extra["previous"], self.scales[g]), g)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        latents = self._latent_map(sampled, self.scales[g])  # (B, C, p, p)
        state.extra["previous"] = latents
        if g == self.num_levels - 1:  # the finest scale is the image's latent
            state.codes = latents.flatten(2).transpose(1, 2).float()  # (B, N, C) raster
