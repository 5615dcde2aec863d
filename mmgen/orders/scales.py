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


class ScaleOrder(Order):
    """Base of the scale-wise orders; a subclass validates its tokenizer, then calls
    :meth:`set_scales`."""

    def set_scales(
        self,
        scales: tuple[int, ...],
        channels: int,
        row_sides: tuple[int, ...] | None = None,
        row_channels: int | None = None,
    ) -> None:
        """Fix the scale sides (the last is the grid's side) and the latent channels, and lay
        the sequence out: the condition, then one group per scale, of ``q_k^2`` rows on a
        q_k x q_k map (``row_sides``; by default q_k = p_k, one row per code), each row fed
        ``row_channels`` latent channels (default ``channels``) + the level one-hot."""
        self.scales, self.channels = tuple(scales), channels
        self.row_channels = row_channels or channels
        row_sides = tuple(row_sides or scales)
        side, T = self.scales[-1], self.condition_length
        positions = torch.cat([grid_positions((q, q), T, stride=side / q) for q in row_sides])
        self.layout = condition_and_groups_layout(
            T, [q * q for q in row_sides], positions.float(), flat_positions=self.flat_positions
        )

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
