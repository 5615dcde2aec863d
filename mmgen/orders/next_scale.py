"""Next-scale (VAR): group k is scale k, all its p_k^2 codes predicted at once.

The input of scale k + 1 is ``area_down(f_hat_k, p_{k+1})`` (the tokenizer's accumulated
latent after scales <= k) through the ``latent`` input adapter, with a one-hot of the scale
appended (VAR's level embedding); scale 1's single row is a zero latent of level 0 (the start
slot: VAR feeds its class embedding there, here the row attends the condition prefix). Rows sit
on the finest grid: a p x p map's (r, c) at (T, T + r * G / p, T + c * G / p) for a G x G grid.
The mask is VAR's: a row attends rows of its own and earlier scales (group-causal).

Option ``window`` (s, default 1): every scale whose side s divides is read in s x s windows, one
row per window (Token-Shuffle's idea on VAR's maps): the row is fed the window's s^2 latent
vectors side by side (``pixel_unshuffle``) and predicts its s^2 codes with the
multi-categorical head, so a p x p scale costs (p / s)^2 rows. Scales s does not divide (the
1 x 1 start) keep one row per code, fed zero-padded and predicting one code (the other s^2 - 1
targets are ignored). VAR's 1, 2, 4, 8, 16 pyramid has 341 rows; with s = 2, 86.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmgen.models.heads import IGNORE_INDEX
from mmgen.orders.base import GenerationState
from mmgen.orders.scales import ScaleOrder
from mmgen.utils.config import ConfigError


class NextScaleOrder(ScaleOrder):
    """VAR's order over a multi-scale residual VQ (``MultiScaleVQModel``); option ``window``."""

    name = "next_scale"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 window: int = 1):  # fmt: skip
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        layout = self.token_layout
        if layout.scales is None:
            raise ConfigError(
                f"order {self.name} needs a multi-scale tokenizer (MultiScaleVQModel); "
                f"{type(tokenizer).__name__} reports no scales"
            )
        gh, gw = layout.grid
        if gh != gw or layout.scales[-1] != gh:
            raise ConfigError(
                f"tokenizer scales {list(layout.scales)} must end at the token grid side "
                f"({gh}x{gw})"
            )
        self.set_scales(layout.scales, layout.latent_channels, window)

    def config(self) -> dict:
        return {"name": self.name, "window": self.window} if self.window > 1 else super().config()

    def head_config(self) -> dict:
        num_codes = self.token_layout.codebook_size
        if self.window == 1:
            return {"kind": "categorical", "num_codes": num_codes}
        return {"kind": "multi_categorical", "num_codes": num_codes, "window": self.window}

    # ---------------------------------------------------------------- maps <-> rows

    def _code_rows(self, ids_Bpp: torch.Tensor) -> torch.Tensor:
        """A scale's (B, p, p) codes -> the head's targets when s > 1: (B, rows, s^2), each
        window's codes in raster order (``IGNORE_INDEX`` padding rows that hold one code)."""
        B, p, s = ids_Bpp.shape[0], ids_Bpp.shape[-1], self.window
        if self._windowed(p):
            return F.pixel_unshuffle(ids_Bpp[:, None], s).flatten(2).transpose(1, 2)
        return F.pad(ids_Bpp.reshape(B, p * p, 1), (0, s * s - 1), value=IGNORE_INDEX)

    def _codes_of_rows(self, rows: torch.Tensor, p: int) -> torch.Tensor:
        """The inverse of :meth:`_code_rows`: the head's samples for one scale -> (B, p, p)."""
        B, s = rows.shape[0], self.window
        if s == 1:
            return rows.reshape(B, p, p)
        if self._windowed(p):
            q = p // s
            return F.pixel_shuffle(rows.transpose(1, 2).reshape(B, s * s, q, q), s)[:, 0]
        return rows[..., 0].reshape(B, p, p)

    # ---------------------------------------------------------------- teacher forcing

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
        B, C = codes_BN.shape[0], self.channels
        parts, start = [self._start_rows(B, codes_BN.device)], 0
        for k, p in enumerate(self.scales[1:], start=1):
            maps = rest[:, start : start + p * p].transpose(1, 2).reshape(B, C, p, p)
            parts.append(self._with_level(self._latent_rows(maps), k))
            start += p * p
        targets = self.given_samples(codes_BN)
        return torch.cat(parts, dim=1), targets  # (B, rows, C s^2 + K), (B, rows[, s^2])

    def given_samples(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat codes of the first scales -> the head's samples (the targets) for them."""
        if self.window == 1:
            return tokens
        rows, start, B = [], 0, tokens.shape[0]
        for p in self.scales:
            if start >= tokens.shape[1]:
                break
            rows.append(self._code_rows(tokens[:, start : start + p * p].reshape(B, p, p)))
            start += p * p
        return torch.cat(rows, dim=1)

    # ---------------------------------------------------------------- generation

    def start(self, batch_size, device):
        state = super().start(batch_size, device)
        side = self.scales[-1]
        state.extra["f_hat"] = torch.zeros(batch_size, self.channels, side, side, device=device)
        return state

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self._start_rows(state.codes.shape[0], state.codes.device)
        from mmgen.tokenizers.multiscale_vq import area_down

        latents = area_down(state.extra["f_hat"], self.scales[g]).float()  # (B, C, p, p)
        return self._with_level(self._latent_rows(latents), g)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        p, side = self.scales[g], self.scales[-1]
        start = sum(q * q for q in self.scales[:g])
        ids = self._codes_of_rows(sampled, p)  # (B, p, p)
        state.codes[:, start : start + p * p] = ids.reshape(-1, p * p)
        vq = self._tokenizer_on(sampled.device)
        h = vq.scale_residual(g, ids, side).float()
        state.extra["f_hat"] = state.extra["f_hat"] + h
