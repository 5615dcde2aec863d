"""KL autoencoder (continuous latents): images <-> (B, C, h, w) latents normalised per channel.

The network is diffusers' ``AutoencoderKL``; mmgen adds per-channel normalisation of the
latents (``latent_mean`` / ``latent_std`` buffers, fitted on training images by
:meth:`KLModel.calibrate` and saved with the weights), so that flow heads see zero-mean,
unit-variance targets (Stable Diffusion's scaling factor and shift, per channel as in
diffusers' ``latents_mean`` / ``latents_std``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.utils.checks import check_float, check_int

from .layout import ConvGrid, TokenLayout


@dataclass(kw_only=True)
class KLConfig:
    """Configuration of :class:`KLModel`.

    Args:
        in_channels: image channels.
        block_out_channels: encoder block widths (``len - 1`` downsamplings: the default is ds4).
        layers_per_block: resnet layers per block.
        norm_num_groups: GroupNorm groups (each width must divide by it).
        latent_channels: C, the channels of the latent grid.
        kl_weight: weight of the KL term (per latent element) against the reconstruction loss.
        mid_block_attention: self-attention in the mid blocks.
    """

    in_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 32
    latent_channels: int = 4
    kl_weight: float = 1e-4
    mid_block_attention: bool = False

    def __post_init__(self) -> None:
        check_int("in_channels", self.in_channels, 1)
        self.block_out_channels = tuple(self.block_out_channels)
        if not self.block_out_channels:
            raise ValueError("block_out_channels must not be empty")
        for i, width in enumerate(self.block_out_channels):
            check_int(f"block_out_channels[{i}]", width, 1)
            if width % self.norm_num_groups:
                raise ValueError(
                    f"block_out_channels[{i}]={width} is not divisible by "
                    f"norm_num_groups={self.norm_num_groups}"
                )
        check_int("layers_per_block", self.layers_per_block, 1)
        check_int("latent_channels", self.latent_channels, 1)
        self.kl_weight = check_float("kl_weight", self.kl_weight)
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {self.kl_weight}")


@dataclass
class KLOutput:
    """Result of :meth:`KLModel.forward`: the reconstruction (clamped), the total loss, and its
    parts (``reconstruction_loss`` = mse + l1, ``kl_loss`` per latent element)."""

    reconstruction: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    kl_loss: torch.Tensor


class KLModel(ConvGrid, nn.Module):
    """Continuous image tokenizer: images in [-1, 1] <-> normalised (B, C, h, w) latents.

    Examples:
        >>> model = KLModel(KLConfig(block_out_channels=(32, 32), latent_channels=4))
        >>> latents = model.encode(torch.zeros(1, 3, 16, 16))  # (1, 4, 8, 8)
        >>> images = model.decode(latents)  # (1, 3, 16, 16)
    """

    config_class = KLConfig
    codebook_size = 0  # continuous: no codes

    def __init__(self, config: KLConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL  # slow to import: only the tokenizer needs it

        self.config = config
        n = len(config.block_out_channels)
        self.vae = AutoencoderKL(
            in_channels=config.in_channels,
            out_channels=config.in_channels,
            down_block_types=("DownEncoderBlock2D",) * n,
            up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            latent_channels=config.latent_channels,
            norm_num_groups=config.norm_num_groups,
            mid_block_add_attention=config.mid_block_attention,
        )
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    def token_layout(self, height: int, width: int) -> TokenLayout:
        """One (h, w) grid of ``latent_channels``-channel continuous tokens."""
        return TokenLayout(
            grid=self.grid_shape(height, width),
            codebook_size=0,
            latent_channels=self.config.latent_channels,
        )

    def _normalise(self, z_BChw: torch.Tensor) -> torch.Tensor:
        return (z_BChw - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def _posterior(self, images_B3HW: torch.Tensor):
        self.grid_shape(images_B3HW.shape[-2], images_B3HW.shape[-1])
        return self.vae.encode(images_B3HW).latent_dist

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> normalised latents (B, C', h, w): the posterior
        mean (deterministic)."""
        return self._normalise(self._posterior(images_B3HW).mode())

    def decode(self, latents_BChw: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C', h, w) -> images (B, C, H, W), clamped to [-1, 1]."""
        z = latents_BChw * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        return self.vae.decode(z.to(self.latent_std.dtype)).sample.clamp(-1.0, 1.0)

    @torch.no_grad()
    def calibrate(self, images_B3HW: torch.Tensor, batch_size: int = 64) -> None:
        """Fit the per-channel mean and std of the posterior means over ``images``."""
        z = torch.cat([self._posterior(images_B3HW[i : i + batch_size]).mode()
                       for i in range(0, len(images_B3HW), batch_size)])  # fmt: skip
        self.latent_mean.copy_(z.mean(dim=(0, 2, 3)))
        self.latent_std.copy_(z.std(dim=(0, 2, 3)).clamp_min(1e-6))

    def forward(
        self, images_B3HW: torch.Tensor, generator: torch.Generator | None = None
    ) -> KLOutput:
        """Reconstruct from a posterior sample (noise from ``generator``) and compute the loss."""
        posterior = self._posterior(images_B3HW)
        mean, std = posterior.mean, posterior.std
        where = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=where).to(mean)
        decoded = self.vae.decode(mean + std * noise).sample
        reconstruction_loss = F.mse_loss(decoded, images_B3HW) + F.l1_loss(decoded, images_B3HW)
        kl_loss = posterior.kl().mean() / mean[0].numel()  # per latent element
        return KLOutput(
            reconstruction=decoded.clamp(-1.0, 1.0),
            loss=reconstruction_loss + self.config.kl_weight * kl_loss,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
        )
