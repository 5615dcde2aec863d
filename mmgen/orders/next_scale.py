"""Next-scale (VAR): group k is scale k, all its p_k^2 codes predicted at once.

The input of scale k + 1 is ``area_down(f_hat_k, p_{k+1})`` (the tokenizer's accumulated
latent after scales <= k) through the ``latent`` input adapter, with a one-hot of the scale
appended (VAR's level embedding); scale 1's single row is a zero latent of level 0 (the start
slot: VAR feeds its class embedding there, here the row attends the condition prefix). Rows sit
on the finest grid: a p x p map's (r, c) at (T, T + r * G / p, T + c * G / p) for a G x G grid.
The mask is VAR's: a row attends rows of its own and earlier scales (group-causal).
"""

from __future__ import annotations

import torch

from mmgen.orders.base import GenerationState
from mmgen.orders.scales import ScaleOrder
from mmgen.utils.config import ConfigError


class NextScaleOrder(ScaleOrder):
    """VAR's order over a multi-scale residual VQ (``MultiScaleVQModel``)."""

    name = "next_scale"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False):
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        layout = self.token_layout
        if layout.scales is None:
            raise ConfigError(
                "order next_scale needs a multi-scale tokenizer (MultiScaleVQModel); "
                f"{type(tokenizer).__name__} reports no scales"
            )
        gh, gw = layout.grid
        if gh != gw or layout.scales[-1] != gh:
            raise ConfigError(
                f"tokenizer scales {list(layout.scales)} must end at the token grid side "
                f"({gh}x{gw})"
            )
        self.set_scales(layout.scales, layout.latent_channels)

    def head_config(self) -> dict:
        return {"kind": "categorical", "num_codes": self.token_layout.codebook_size}

    def _tokenizer_on(self, device):
        vq = self.tokenizer
        if next(vq.parameters()).device != torch.device(device):
            vq.to(device)
        return vq

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        vq = self._tokenizer_on(codes_BN.device)
        with torch.no_grad():
            rest = vq.next_scale_inputs(codes_BN).float()  # (B, N - 1, C)
        parts, start = [self._start_rows(codes_BN.shape[0], codes_BN.device)], 0
        for k, p in enumerate(self.scales[1:], start=1):
            parts.append(self._with_level(rest[:, start : start + p * p], k))
            start += p * p
        return torch.cat(parts, dim=1), codes_BN  # (B, N, C + K), (B, N)

    def start(self, batch_size, device):
        state = super().start(batch_size, device)
        side = self.scales[-1]
        state.extra["f_hat"] = torch.zeros(batch_size, self.channels, side, side, device=device)
        return state

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self._start_rows(state.codes.shape[0], state.codes.device)
        from mmgen.tokenizers.multiscale_vq import area_down

        p = self.scales[g]
        latents = area_down(state.extra["f_hat"], p).flatten(2).transpose(1, 2)  # (B, p^2, C)
        return self._with_level(latents.float(), g)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        p, side = self.scales[g], self.scales[-1]
        start = sum(q * q for q in self.scales[:g])
        state.codes[:, start : start + p * p] = sampled  # (B, p^2)
        vq = self._tokenizer_on(sampled.device)
        h = vq.scale_residual(g, sampled.reshape(-1, p, p), side).float()
        state.extra["f_hat"] = state.extra["f_hat"] + h
