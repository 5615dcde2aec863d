"""Next-token (LlamaGen): one group per code in raster order; row i is fed code i - 1."""

from __future__ import annotations

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout, grid_positions


class NextTokenOrder(Order):
    """Raster next-token order over a single-grid tokenizer.

    Image row i sits at the position of the code it predicts, (T, T + r, T + c); its input is
    the previous code, the start token (id ``num_codes``) for the first.
    """

    name = "next_token"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False):
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        grid = self.token_layout.grid
        T = condition_length
        self.layout = condition_and_groups_layout(
            T, [1] * (grid[0] * grid[1]), grid_positions(grid, T), flat_positions=flat_positions
        )

    @property
    def start_id(self) -> int:
        return self.token_layout.codebook_size

    def input_config(self) -> dict:
        return {"kind": "token", "num_codes": self.token_layout.codebook_size}

    def head_config(self) -> dict:
        return {"kind": "categorical", "num_codes": self.token_layout.codebook_size}

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        start = torch.full_like(codes_BN[:, :1], self.start_id)
        return torch.cat([start, codes_BN[:, :-1]], dim=1), codes_BN  # (B, N) each

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return torch.full_like(state.codes[:, :1], self.start_id)  # (B, 1)
        return state.codes[:, g - 1 : g]

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        state.codes[:, g : g + 1] = sampled  # (B, 1)
