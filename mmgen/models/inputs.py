"""Input adapters: what an order feeds the generated rows -> (B, n, D) embeddings.

The condition segment has its own embedding in :class:`~mmgen.models.transformer.ARTransformer`;
an adapter embeds the rest. Picked by the transformer config's ``input`` dict (``kind`` + options).
"""

from __future__ import annotations

import torch
from torch import nn

from mmgen.models.blocks import SwiGLU


class ResidualMLP(nn.Module):
    """``x + SwiGLU(RMSNorm(x))``: Token-Shuffle's residual MLP block."""

    def __init__(self, dim: int, hidden_dim: int | None = None):
        super().__init__()
        self.norm = nn.RMSNorm(dim)
        self.mlp = SwiGLU(dim, hidden_dim or 2 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(x))


class TokenInput(nn.Module):
    """Code ids (B, n) -> embeddings; id ``num_codes`` is the start token (LlamaGen's input)."""

    def __init__(self, dim: int, num_codes: int):
        super().__init__()
        self.num_codes = num_codes
        self.embed = nn.Embedding(num_codes + 1, dim)

    @property
    def start_id(self) -> int:
        return self.num_codes

    def forward(self, ids_Bn: torch.Tensor) -> torch.Tensor:
        return self.embed(ids_Bn)  # (B, n, D)


class LatentInput(nn.Module):
    """Continuous inputs (B, n, C) -> embeddings through one ``nn.Linear`` (VAR's ``word_embed``).

    An order may append indicator channels to the latent (next-scale appends a one-hot of the
    scale, which makes the linear map VAR's ``word_embed`` plus its level embedding, and a start
    slot a zero latent of level 0); ``in_channels`` counts them.
    """

    def __init__(self, dim: int, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.proj = nn.Linear(in_channels, dim)

    def forward(self, latents_BnC: torch.Tensor) -> torch.Tensor:
        return self.proj(latents_BnC.to(self.proj.weight.dtype))  # (B, n, D)


class ShuffleInput(nn.Module):
    """Token-Shuffle's merge: (B, n, s^2) code ids of s x s windows -> one (B, n, D) row each.

    Each code is embedded (id ``num_codes`` is the start token), compressed ``D -> D / s^2`` by
    an MLP, the window's s^2 parts concatenated back to D channels, then a residual MLP block.
    """

    def __init__(self, dim: int, num_codes: int, window: int):
        super().__init__()
        parts = window * window
        if dim % parts:
            raise ValueError(f"dim {dim} is not divisible by window^2 = {parts}")
        self.num_codes, self.window = num_codes, window
        self.embed = nn.Embedding(num_codes + 1, dim)
        self.compress = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim // parts))
        self.mix = ResidualMLP(dim)

    @property
    def start_id(self) -> int:
        return self.num_codes

    def forward(self, ids_Bnp: torch.Tensor) -> torch.Tensor:
        B, n, parts = ids_Bnp.shape
        x = self.compress(self.embed(ids_Bnp))  # (B, n, s^2, D / s^2)
        return self.mix(x.reshape(B, n, -1))  # (B, n, D)


INPUT_KINDS = {
    "token": "mmgen.models.inputs:TokenInput",
    "latent": "mmgen.models.inputs:LatentInput",
    "shuffle": "mmgen.models.inputs:ShuffleInput",
}


def build_input(spec: dict, dim: int) -> nn.Module:
    """The adapter a config's ``input`` dict names (see ``INPUT_KINDS``)."""
    from mmgen.models.plugins import build_plugin

    return build_plugin(spec, dim, INPUT_KINDS, "input")
