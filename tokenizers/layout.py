"""What a tokenizer hands the engine: the shape of its tokens, read by orders and pipelines."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TokenLayout:
    """The token layout of one image, or of a clip of ``frames`` images (every image tokenizer
    reports one per image; a video order sets ``frames``).

    Attributes:
        grid: (h, w) finest token grid; (N,) for a line of audio latents.
        codebook_size: codes per token (0 for a continuous tokenizer).
        scales: side of each scale's map, coarse to fine, for multi-scale tokenizers (VAR);
            None for a single grid.
        latent_channels: channels of the latent the codes stand for (the input width of a
            continuous projection); None when the tokenizer exposes no latent.
        frames: frames of a clip, each tokenized on its own (per-frame latents, frame-major
            flat order); None for an image.
    """

    grid: tuple[int, int]
    codebook_size: int
    scales: tuple[int, ...] | None = None
    latent_channels: int | None = None
    frames: int | None = None

    @property
    def tokens_per_frame(self) -> int:
        """Tokens of one image (the grid, or every scale's map together), or of one clip of
        audio (a 1-D ``grid`` of latents)."""
        if self.scales is not None:
            return sum(s * s for s in self.scales)
        return math.prod(self.grid)

    @property
    def num_tokens(self) -> int:
        """Tokens per image, or per clip (``frames`` x the tokens of one frame)."""
        return self.tokens_per_frame * (self.frames or 1)

    @property
    def is_continuous(self) -> bool:
        """Continuous latents (a KL autoencoder), not codes."""
        return self.codebook_size == 0

    def token_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of a batch of flat tokens: (B, N) codes or (B, N, C) latents."""
        if self.is_continuous:
            return (batch_size, self.num_tokens, self.latent_channels)
        return (batch_size, self.num_tokens)

    @property
    def token_dtype(self) -> torch.dtype:
        """What orders take: long codes, or float32 latents."""
        import torch

        return torch.float32 if self.is_continuous else torch.long

    def flatten(self, encoded: torch.Tensor) -> torch.Tensor:
        """What the tokenizer's ``encode`` gave -> the engine's flat tokens: codes (B, h, w) or
        (B, N) -> (B, N) ids; latents (B, C, h, w) -> (B, h * w, C), raster order. A clip's
        per-frame latents (B, F, C, h, w) -> (B, F * h * w, C), frame after frame."""
        if self.frames is not None:
            if not self.is_continuous:
                raise NotImplementedError("clips of discrete codes are not supported yet")
            return encoded.flatten(3).transpose(2, 3).flatten(1, 2)
        if self.is_continuous:
            return encoded.flatten(2).transpose(1, 2)
        return encoded.flatten(1)

    def unflatten(self, tokens: torch.Tensor) -> torch.Tensor:
        """Flat tokens -> what the tokenizer's ``decode`` takes (the inverse of :meth:`flatten`):
        (B, N) ids -> (B, h, w) on a single grid (multi-scale decoders take (B, N) as is);
        (B, h * w, C) latents -> (B, C, h, w); a clip's (B, F * h * w, C) -> (B, F, C, h, w);
        audio's (B, N, C) -> (B, C, N)."""
        if len(self.grid) == 1:
            return tokens.transpose(1, 2)
        gh, gw = self.grid
        if self.frames is not None:
            B, C = tokens.shape[0], tokens.shape[-1]
            return tokens.reshape(B, -1, gh, gw, C).permute(0, 1, 4, 2, 3)
        if self.is_continuous:
            return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, gh, gw)
        if self.scales is None:
            return tokens.view(-1, gh, gw)
        return tokens


class ConvGrid:
    """The token grid of a conv encoder with ``len(config.block_out_channels) - 1``
    downsamplings by 2 (mixed into the image tokenizers)."""

    @property
    def downsample_factor(self) -> int:
        """Image pixels per token along each side."""
        return 2 ** (len(self.config.block_out_channels) - 1)

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Token grid (h, w) for an image of ``height`` x ``width`` pixels."""
        ds = self.downsample_factor
        if height % ds or width % ds:
            raise ValueError(
                f"image size {height}x{width} is not divisible by the downsample factor {ds}"
            )
        return height // ds, width // ds
