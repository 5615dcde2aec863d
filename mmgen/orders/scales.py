"""What the scale-wise orders share (VAR's next-scale, NFIG's next-frequency, FlowAR's
continuous next-scale): one group per scale map of side ``p_k``, every row placed on the
finest grid (a p x p map's (r, c) at (T, T + r * G / p, T + c * G / p) for a G x G grid), and
inputs through the ``latent`` adapter with a one-hot of the scale appended (VAR's level
embedding); scale 1's single row is a zero latent of level 0 (the start slot)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmgen.orders.base import Order
from mmgen.sequence import condition_and_groups_layout, grid_positions
from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError


class ScaleOrder(Order):
    """Base of the scale-wise orders; a subclass validates its tokenizer, then calls
    :meth:`set_scales`."""

    window = 1  # s: scales whose side s divides are read in s x s windows, one row each

    def set_scales(self, scales: tuple[int, ...], channels: int, window: int = 1) -> None:
        """Fix the scale sides (the last is the grid's side), the latent channels C and the
        window side s (``order.window``), and lay the sequence out: the condition, then one
        group per scale, of q_k^2 rows on a q_k x q_k map (q_k = p_k / s when s divides p_k,
        else p_k), each row fed C s^2 latent channels + the level one-hot."""
        side = scales[-1]
        check_int("order.window", window, error=ConfigError)
        if side % window:
            raise ConfigError(f"order.window {window} does not divide the token grid {side}x{side}")
        self.scales, self.channels, self.window = tuple(scales), channels, window
        self.row_channels = channels * window * window
        self.row_sides = tuple(p // window if self._windowed(p) else p for p in self.scales)
        T = self.condition_length
        positions = torch.cat([grid_positions((q, q), T, stride=side / q) for q in self.row_sides])
        self.layout = condition_and_groups_layout(
            T, [q * q for q in self.row_sides], positions.float(),
            flat_positions=self.flat_positions,
        )  # fmt: skip

    def _windowed(self, p: int) -> bool:
        """Whether scale side ``p`` is read in windows (one row per s x s window)."""
        return self.window > 1 and p % self.window == 0

    def _latent_rows(self, latents_BCpp: torch.Tensor) -> torch.Tensor:
        """A scale's (B, C, p, p) map -> its (B, rows, row_channels) rows: each s x s window's
        C s^2 values side by side (``pixel_unshuffle``) when windowed, else one row per
        position, zero-padded to ``row_channels``."""
        if self._windowed(latents_BCpp.shape[-1]):
            latents_BCpp = F.pixel_unshuffle(latents_BCpp, self.window)  # (B, C s^2, q, q)
        rows = latents_BCpp.flatten(2).transpose(1, 2)  # (B, rows, C or C s^2)
        return F.pad(rows, (0, self.row_channels - rows.shape[-1]))

    def _latent_map(self, rows_BnD: torch.Tensor, p: int) -> torch.Tensor:
        """The inverse of :meth:`_latent_rows`: (B, rows, row_channels) -> (B, C, p, p)."""
        B, C, s = rows_BnD.shape[0], self.channels, self.window
        if self._windowed(p):
            q = p // s
            return F.pixel_shuffle(rows_BnD.transpose(1, 2).reshape(B, C * s * s, q, q), s)
        return rows_BnD[..., :C].transpose(1, 2).reshape(B, C, p, p)

    @property
    def num_levels(self) -> int:
        return len(self.scales)

    def input_config(self) -> dict:
        return {"kind": "latent", "in_channels": self.row_channels + self.num_levels}

    def _with_level(self, latents_BnC: torch.Tensor, level: int) -> torch.Tensor:
        onehot = F.one_hot(torch.tensor(level), self.num_levels).to(latents_BnC)
        B, n, _ = latents_BnC.shape
        return torch.cat([latents_BnC, onehot.expand(B, n, -1)], dim=-1)  # (B, n, C + K)

    def _start_rows(self, batch_size: int, device) -> torch.Tensor:
        zeros = torch.zeros(batch_size, 1, self.row_channels, device=device)
        return self._with_level(zeros, 0)
