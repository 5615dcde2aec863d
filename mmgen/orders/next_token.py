"""Next-token (LlamaGen): one group per code in raster order; row i is fed code i - 1.

Over a continuous tokenizer (KL latents) the same order feeds row i the latent of token i - 1
through the ``latent`` adapter (a zero latent first) and predicts its own latent with the
per-token flow head (MAR's head in raster order, as CLEAR does for audio).
"""

from __future__ import annotations

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout, grid_positions


class NextTokenOrder(Order):
    """Raster next-token order over a single-grid tokenizer.

    Image row i sits at the position of the code it predicts, (T, T + r, T + c); its input is
    the previous code, the start token (id ``num_codes``) for the first (continuous tokens:
    the previous latent, zeros for the first).
    """

    name = "next_token"
    takes_context_noise = True

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False):
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        grid = self.token_layout.grid
        T = condition_length
        self.layout = condition_and_groups_layout(
            T, [1] * (grid[0] * grid[1]), grid_positions(grid, T), flat_positions=flat_positions
        )

    def input_config(self) -> dict:
        tl = self.token_layout
        if tl.is_continuous:
            return {"kind": "latent", "in_channels": tl.latent_channels}
        return {"kind": "token", "num_codes": tl.codebook_size}

    def head_config(self) -> dict:
        tl = self.token_layout
        if tl.is_continuous:
            return {"kind": "flow_mlp", "latent_channels": tl.latent_channels}
        return {"kind": "categorical", "num_codes": tl.codebook_size}

    def start_row(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the first row is fed, (B, 1) start ids or (B, 1, C) zero latents, for a batch
        of flat tokens like ``tokens``."""
        if self.token_layout.is_continuous:
            return torch.zeros_like(tokens[:, :1])
        return torch.full_like(tokens[:, :1], self.token_layout.codebook_size)

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        return torch.cat([self.start_row(codes_BN), codes_BN[:, :-1]], dim=1), codes_BN

    def noised_inputs(self, inputs, sigma_B, generator):
        """Codes: each fed code replaced by a random one with probability ``sigma_B[b]``;
        latents: N(0, sigma_B[b]^2) noise on every fed latent (not the start row's zeros)."""
        if not self.token_layout.is_continuous:
            return self.replaced_codes(inputs, sigma_B, generator)
        from mmgen.generation.flow import draw_noise

        noise = draw_noise(inputs[:, 1:].shape, generator, inputs.device)  # (B, L - 1, C)
        fed = inputs[:, 1:] + sigma_B.view(-1, 1, 1).to(inputs.dtype) * noise
        return torch.cat([inputs[:, :1], fed], dim=1)

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self.start_row(state.codes)  # (B, 1) or (B, 1, C)
        return state.codes[:, g - 1 : g]

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        state.codes[:, g : g + 1] = sampled  # (B, 1) or (B, 1, C)
