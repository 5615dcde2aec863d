"""VQ image tokenizer (LlamaGen-style): conv encoder -> 1x1 conv to a low-dim, l2-normalised
codebook lookup -> 1x1 conv -> conv decoder.

The encoder and decoder are diffusers' ``Encoder`` / ``Decoder``; diffusers is imported inside
:class:`VQModel` so that ``import mmgen`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.utils.checks import check_float, check_int

from .layout import ConvGrid, TokenLayout
from .quantizer import QuantizerOutput, VectorQuantizer


@dataclass(kw_only=True)
class VQConfig:
    """Configuration of :class:`VQModel`.

    Args:
        in_channels: image channels.
        block_out_channels: encoder block widths (decoder mirrors them); there are
            ``len(block_out_channels) - 1`` downsamplings, so the default is ds4. Each width must
            be divisible by ``norm_num_groups``. Lists (from JSON/YAML) are turned into tuples.
        layers_per_block: resnet layers per encoder block (the decoder uses one more).
        norm_num_groups: GroupNorm groups.
        latent_channels: encoder output channels before the 1x1 projection to ``codebook_dim``.
        codebook_size: number of codes K.
        codebook_dim: code dimension (LlamaGen uses 8).
        commitment_beta: weight of the commitment loss.
        usage_decay: EMA decay of the per-code usage share, in [0, 1).
        dead_code_threshold: usage share below which a code is restarted; in
            [0, 1 / codebook_size). None (the default) means half the uniform share,
            ``0.5 / codebook_size``, so every codebook size gets a valid threshold.
        mid_block_attention: self-attention in the encoder/decoder mid blocks.
    """

    in_channels: int = 3
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    layers_per_block: int = 1
    norm_num_groups: int = 32
    latent_channels: int = 64
    codebook_size: int = 512
    codebook_dim: int = 8
    commitment_beta: float = 0.25
    usage_decay: float = 0.99
    dead_code_threshold: float | None = None
    mid_block_attention: bool = False

    def __post_init__(self) -> None:
        check_int("in_channels", self.in_channels, 1)
        if isinstance(self.block_out_channels, (str, bytes)) or not isinstance(
            self.block_out_channels, (list, tuple)
        ):
            raise ValueError(
                f"block_out_channels must be a sequence of ints, got {self.block_out_channels!r}"
            )
        self.block_out_channels = tuple(self.block_out_channels)
        if not self.block_out_channels:
            raise ValueError("block_out_channels must not be empty")
        for i, width in enumerate(self.block_out_channels):
            check_int(f"block_out_channels[{i}]", width, 1)
        check_int("layers_per_block", self.layers_per_block, 1)
        check_int("norm_num_groups", self.norm_num_groups, 1)
        for i, width in enumerate(self.block_out_channels):
            if width % self.norm_num_groups:
                raise ValueError(
                    f"block_out_channels[{i}]={width} is not divisible by "
                    f"norm_num_groups={self.norm_num_groups}"
                )
        check_int("latent_channels", self.latent_channels, 1)
        check_int("codebook_size", self.codebook_size, 1)
        check_int("codebook_dim", self.codebook_dim, 2)
        self.commitment_beta = check_float("commitment_beta", self.commitment_beta)
        if self.commitment_beta < 0:
            raise ValueError(f"commitment_beta must be >= 0, got {self.commitment_beta}")
        self.usage_decay = check_float("usage_decay", self.usage_decay)
        if not 0.0 <= self.usage_decay < 1.0:
            raise ValueError(f"usage_decay must be in [0, 1), got {self.usage_decay}")
        if self.dead_code_threshold is None:
            from mmgen.tokenizers.quantizer import default_dead_code_threshold

            self.dead_code_threshold = default_dead_code_threshold(self.codebook_size)
        self.dead_code_threshold = check_float("dead_code_threshold", self.dead_code_threshold)
        if not 0.0 <= self.dead_code_threshold * self.codebook_size < 1.0:
            raise ValueError(
                f"dead_code_threshold must be in [0, 1/codebook_size) = "
                f"[0, {1 / self.codebook_size:g}), got {self.dead_code_threshold}"
            )
        if not isinstance(self.mid_block_attention, bool):
            raise ValueError(
                f"mid_block_attention must be a bool, got {self.mid_block_attention!r}"
            )


@dataclass
class VQOutput:
    """Result of :meth:`VQModel.forward`.

    Attributes:
        reconstruction: (B, C, H, W) decoded images, clamped to [-1, 1].
        loss: scalar ``reconstruction_loss + codebook_loss + commitment_beta * commitment_loss``.
        reconstruction_loss: scalar ``mse + l1`` (means) of the unclamped decoder output.
        codebook_loss: scalar, see :class:`~mmgen.tokenizers.quantizer.QuantizerOutput`.
        commitment_loss: scalar, see :class:`~mmgen.tokenizers.quantizer.QuantizerOutput`.
        perplexity: scalar code perplexity of this batch.
        ids: (B, h, w) long code ids.
    """

    reconstruction: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor
    ids: torch.Tensor


class VQModel(ConvGrid, nn.Module):
    """VQ image tokenizer: images in [-1, 1] <-> (B, h, w) code ids.

    Submodule names (``encoder``, ``quant_conv``, ``quantize``, ``post_quant_conv``,
    ``decoder``) follow LlamaGen's VQModel.

    Examples:
        >>> model = VQModel(VQConfig(block_out_channels=(32, 32), codebook_size=64))
        >>> ids = model.encode(torch.zeros(1, 3, 16, 16))  # (1, 8, 8)
        >>> images = model.decode(ids)  # (1, 3, 16, 16)
    """

    config_class = VQConfig

    def __init__(self, config: VQConfig) -> None:
        super().__init__()
        # Imported here: diffusers is slow to import and only the tokenizer needs it.
        from diffusers.models.autoencoders.vae import Decoder, Encoder

        self.config = config
        num_blocks = len(config.block_out_channels)
        self.encoder = Encoder(
            in_channels=config.in_channels,
            out_channels=config.latent_channels,
            down_block_types=("DownEncoderBlock2D",) * num_blocks,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            act_fn="silu",
            double_z=False,
            mid_block_add_attention=config.mid_block_attention,
        )
        self.quant_conv = nn.Conv2d(config.latent_channels, config.codebook_dim, 1)
        self.quantize = VectorQuantizer(
            config.codebook_size,
            config.codebook_dim,
            usage_decay=config.usage_decay,
            dead_code_threshold=config.dead_code_threshold,
        )
        self.post_quant_conv = nn.Conv2d(config.codebook_dim, config.latent_channels, 1)
        self.decoder = Decoder(
            in_channels=config.latent_channels,
            out_channels=config.in_channels,
            up_block_types=("UpDecoderBlock2D",) * num_blocks,
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
            act_fn="silu",
            mid_block_add_attention=config.mid_block_attention,
        )

    def token_layout(self, height: int, width: int) -> TokenLayout:
        """The codes of a ``height`` x ``width`` image: one (h, w) grid of ``codebook_size``."""
        return TokenLayout(
            grid=self.grid_shape(height, width),
            codebook_size=self.codebook_size,
            latent_channels=self.config.codebook_dim,
        )

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _latents(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        self.grid_shape(images_B3HW.shape[-2], images_B3HW.shape[-1])
        return self.quant_conv(self.encoder(images_B3HW))

    def _decode_latents(self, quantized_BChw: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.post_quant_conv(quantized_BChw))

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> code ids (B, h, w) long. Updates no statistics."""
        return self.quantize.encode(self._latents(images_B3HW))

    def decode(self, ids_Bhw: torch.Tensor) -> torch.Tensor:
        """Code ids (B, h, w) -> images (B, C, H, W), clamped to [-1, 1]."""
        quantized_BChw = self.quantize.lookup(ids_Bhw).to(self.post_quant_conv.weight.dtype)
        return self._decode_latents(quantized_BChw).clamp(-1.0, 1.0)

    def quantise_latents(
        self, latents_BChw: torch.Tensor, generator: torch.Generator | None
    ) -> QuantizerOutput:
        """The training quantisation of encoder latents (subclasses change the scheme)."""
        return self.quantize(latents_BChw, generator=generator)

    def forward(
        self, images_B3HW: torch.Tensor, generator: torch.Generator | None = None
    ) -> VQOutput:
        """Reconstruct ``images_B3HW`` (in [-1, 1]) and compute the training losses.

        In training mode the quantiser's usage statistics are updated, and with a ``generator``
        dead codes are restarted (see :class:`~mmgen.tokenizers.quantizer.VectorQuantizer`).
        """
        q = self.quantise_latents(self._latents(images_B3HW), generator)
        decoded = self._decode_latents(q.quantized)
        reconstruction_loss = F.mse_loss(decoded, images_B3HW) + F.l1_loss(decoded, images_B3HW)
        loss = (
            reconstruction_loss + q.codebook_loss + self.config.commitment_beta * q.commitment_loss
        )
        return VQOutput(
            reconstruction=decoded.clamp(-1.0, 1.0),
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            codebook_loss=q.codebook_loss,
            commitment_loss=q.commitment_loss,
            perplexity=q.perplexity,
            ids=q.ids,
        )
