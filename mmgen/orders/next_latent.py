"""Next-latent (CLEAR): after the prompt, audio latents one chunk of ``chunk`` latents at a time.

The tokenizer is a :class:`~mmgen.tokenizers.waveform.WaveformAutoencoder`: a clip of S samples
is a line of N = ceil(S / hop) continuous latents (B, N, C). Group g holds latents
``[g * n, (g + 1) * n)``; row i is fed latent ``i - n`` (the same offset in the chunk before,
zeros with a start flag for the first chunk) through the ``latent`` adapter, and the per-token
flow MLP head predicts its own latent from the row's hidden state (CLEAR: one lightweight
rectified-flow head per latent). ``chunk: 1`` is plain next-latent. Rows sit at 1-D positions
(t = h = w = their index), continuing the prompt's.
"""

from __future__ import annotations

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout
from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError


class NextLatentOrder(Order):
    """CLEAR's order over a line of audio latents (see the module docstring).

    Args:
        image_size: here the clip's length in samples.

    Options:
        chunk: latents per group (one backbone call each).
    """

    name = "next_latent"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 chunk: int = 1):  # fmt: skip
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        layout = self.token_layout
        if not layout.is_continuous or len(layout.grid) != 1:
            raise ConfigError(
                "order next_latent needs a continuous 1-D tokenizer (WaveformAutoencoder); "
                f"{type(tokenizer).__name__} gives {layout.grid} tokens"
            )
        check_int("order.chunk", chunk, error=ConfigError)
        N = layout.num_tokens
        if N % chunk:
            raise ConfigError(f"order.chunk {chunk} does not divide the clip's {N} latents")
        self.chunk, self.num_samples = chunk, image_size
        T = condition_length
        positions = torch.arange(T, T + N)[:, None].expand(N, 3).clone()  # 1-D: t = h = w
        self.layout = condition_and_groups_layout(
            T, [chunk] * (N // chunk), positions, flat_positions=flat_positions
        )

    @staticmethod
    def tokenizer_layout(tokenizer, size):
        return tokenizer.token_layout(size)

    def config(self) -> dict:
        return {"name": self.name, "chunk": self.chunk}

    @property
    def channels(self) -> int:
        return self.token_layout.latent_channels

    def input_config(self) -> dict:
        return {"kind": "latent", "in_channels": self.channels + 1}

    def head_config(self) -> dict:
        return {"kind": "flow_mlp", "latent_channels": self.channels}

    def _fed(self, latents_BnC: torch.Tensor, start: bool) -> torch.Tensor:
        flag = torch.full_like(latents_BnC[..., :1], 1.0 if start else 0.0)
        return torch.cat([latents_BnC, flag], dim=-1)  # (B, n, C + 1)

    def _start(self, batch_size: int, device) -> torch.Tensor:
        zeros = torch.zeros(batch_size, self.chunk, self.channels, device=device)
        return self._fed(zeros, start=True)

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        latents = codes_BN.float()  # (B, N, C)
        previous = self._fed(latents[:, : -self.chunk], start=False)
        return torch.cat([self._start(codes_BN.shape[0], codes_BN.device), previous], 1), latents

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self._start(state.codes.shape[0], state.codes.device)
        n = self.chunk
        return self._fed(state.codes[:, (g - 1) * n : g * n], start=False)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        state.codes[:, g * self.chunk : (g + 1) * self.chunk] = sampled  # (B, n, C)
