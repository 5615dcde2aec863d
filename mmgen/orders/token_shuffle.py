"""Token-Shuffle: each s x s window of codes is one row; one group per window, raster order.

Row j (window j) is fed the s^2 codes of window j - 1 (start tokens for the first), merged into
one embedding by the ``shuffle`` input adapter, and predicts its own s^2 codes with the
multi-categorical head. s = 1 is plain next-token.
"""

from __future__ import annotations

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout, grid_positions
from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError


class TokenShuffleOrder(Order):
    """Next-token over s x s windows (Token-Shuffle). Option ``window`` (s, default 2)."""

    name = "token_shuffle"
    takes_context_noise = True

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 window: int = 2):  # fmt: skip
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        check_int("order.window", window, error=ConfigError)
        if self.token_layout.scales is not None:
            raise ConfigError("order token_shuffle needs a single-grid tokenizer, not scales")
        gh, gw = self.token_layout.grid
        if gh % window or gw % window:
            raise ConfigError(f"order.window {window} does not divide the token grid {gh}x{gw}")
        self.window = window
        self.windows = (gh // window, gw // window)
        n = self.windows[0] * self.windows[1]
        T = condition_length
        self.layout = condition_and_groups_layout(
            T, [1] * n, grid_positions(self.windows, T), flat_positions=flat_positions
        )

    def config(self) -> dict:
        return {"name": self.name, "window": self.window}

    @property
    def start_id(self) -> int:
        return self.token_layout.codebook_size

    def input_config(self) -> dict:
        return {"kind": "shuffle", "num_codes": self.token_layout.codebook_size,
                "window": self.window}  # fmt: skip

    def head_config(self) -> dict:
        return {"kind": "multi_categorical", "num_codes": self.token_layout.codebook_size,
                "window": self.window}  # fmt: skip

    def shuffle(self, codes_BN: torch.Tensor) -> torch.Tensor:
        """Raster (B, h * w) -> windows (B, n, s^2), each window's codes in raster order."""
        s, (wh, ww) = self.window, self.windows
        B = codes_BN.shape[0]
        x = codes_BN.reshape(B, wh, s, ww, s).permute(0, 1, 3, 2, 4)  # (B, wh, ww, s, s)
        return x.reshape(B, wh * ww, s * s)

    def unshuffle(self, windows_Bnp: torch.Tensor) -> torch.Tensor:
        """Windows (B, n, s^2) -> raster (B, h * w); the inverse of :meth:`shuffle`."""
        s, (wh, ww) = self.window, self.windows
        B = windows_Bnp.shape[0]
        x = windows_Bnp.reshape(B, wh, ww, s, s).permute(0, 1, 3, 2, 4)  # (B, wh, s, ww, s)
        return x.reshape(B, wh * s * ww * s)

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        windows = self.shuffle(codes_BN)  # (B, n, s^2)
        start = torch.full_like(windows[:, :1], self.start_id)
        return torch.cat([start, windows[:, :-1]], dim=1), windows

    def noised_inputs(self, inputs, sigma_B, generator):
        """Each fed code replaced by a random one with probability ``sigma_B[b]``."""
        return self.replaced_codes(inputs, sigma_B, generator)

    def start(self, batch_size, device):
        state = super().start(batch_size, device)
        n = self.windows[0] * self.windows[1]
        state.extra["windows"] = state.codes.new_zeros(batch_size, n, self.window**2)
        return state

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        windows = state.extra["windows"]
        if g == 0:
            return torch.full_like(windows[:, :1], self.start_id)  # (B, 1, s^2)
        return windows[:, g - 1 : g]

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        state.extra["windows"][:, g : g + 1] = sampled  # (B, 1, s^2)
        state.codes = self.unshuffle(state.extra["windows"])
