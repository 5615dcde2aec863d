"""Waveform autoencoder (continuous audio latents, CLEAR-style): 16 kHz mono <-> (B, C, N).

A 1-D conv encoder and decoder with space-to-channel shortcuts (CLEAR's "shortcut connections":
around every strided stage the signal is also reshaped from time into channels and its channel
groups averaged, so each stage learns a residual over a parameter-free resampling). Every conv
is causal (padded on the left only) and every decoder upsampling is a transposed conv whose
kernel equals its stride, so the samples of latent i depend on latents <= i alone: a stream can
decode each latent's samples as soon as the latent exists, and the chunks equal the one-shot
decode (``TextToAudioPipeline.stream``).

diffusers' ``AutoencoderOobleck`` was the first choice; its decoder's receptive field spans
the whole clip (a change in one latent moves samples from the first 0.02 s to the last), so
nothing could be streamed before the last latent.

Latents are normalised per channel (``latent_mean`` / ``latent_std``, fitted by
:meth:`WaveformAutoencoder.calibrate`, saved with the weights), as for :class:`KLModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.utils.checks import check_float, check_int

from .layout import TokenLayout


@dataclass(kw_only=True)
class WaveformConfig:
    """Configuration of :class:`WaveformAutoencoder`.

    Args:
        sample_rate: samples per second of the waveforms.
        channels: width after the input conv.
        strides: downsampling of each encoder stage (their product is the compression).
        channel_multiples: width growth of each stage; each must divide its stride (the
            shortcut averages ``stride / multiple`` channel groups).
        latent_channels: C, the channels of one latent.
        kernel_size: causal conv kernel of the residual units.
        kl_weight: weight of the KL term (per latent element).
        stft_weight: weight of the multi-resolution STFT loss beside the waveform L1.
    """

    sample_rate: int = 16_000
    channels: int = 32
    strides: tuple[int, ...] = (4, 5, 5, 8)
    channel_multiples: tuple[int, ...] = (2, 1, 1, 2)
    latent_channels: int = 16
    kernel_size: int = 7
    kl_weight: float = 1e-4
    stft_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "channels", "latent_channels", "kernel_size"):
            check_int(name, getattr(self, name), 1)
        self.strides, self.channel_multiples = tuple(self.strides), tuple(self.channel_multiples)
        if not self.strides or len(self.strides) != len(self.channel_multiples):
            raise ValueError(
                f"strides {list(self.strides)} and channel_multiples "
                f"{list(self.channel_multiples)} need one entry per stage"
            )
        for i, (stride, multiple) in enumerate(zip(self.strides, self.channel_multiples)):
            check_int(f"strides[{i}]", stride, 1)
            check_int(f"channel_multiples[{i}]", multiple, 1)
            if stride % multiple:
                raise ValueError(f"channel_multiples[{i}]={multiple} must divide "
                                 f"strides[{i}]={stride}")  # fmt: skip
        self.kl_weight = check_float("kl_weight", self.kl_weight)
        self.stft_weight = check_float("stft_weight", self.stft_weight)

    @property
    def hop(self) -> int:
        """Waveform samples per latent (the compression)."""
        return math.prod(self.strides)

    def widths(self) -> list[int]:
        """Channels before the first stage and after each stage."""
        widths = [self.channels]
        for multiple in self.channel_multiples:
            widths.append(widths[-1] * multiple)
        return widths


class CausalConv1d(nn.Conv1d):
    """A conv that sees the present and the past only: ``kernel - 1`` zeros on the left."""

    def forward(self, x_BCT: torch.Tensor) -> torch.Tensor:
        pad = self.dilation[0] * (self.kernel_size[0] - 1)
        return super().forward(F.pad(x_BCT, (pad, 0)))


class ResidualUnit(nn.Module):
    """x + conv1x1(SiLU(causal conv_k(SiLU(x))))."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        self.conv = CausalConv1d(width, width, kernel_size)
        self.mix = nn.Conv1d(width, width, 1)

    def forward(self, x_BCT: torch.Tensor) -> torch.Tensor:
        return x_BCT + self.mix(F.silu(self.conv(F.silu(x_BCT))))


def space_to_channel(x_BCT: torch.Tensor, stride: int, out_channels: int) -> torch.Tensor:
    """(B, C, T) -> (B, out, T / stride): each output step stacks ``stride`` input steps into
    C * stride channels, then averages them in groups down to ``out_channels``."""
    B, C, T = x_BCT.shape
    stacked = x_BCT.reshape(B, C, T // stride, stride).permute(0, 1, 3, 2)  # (B, C, s, T/s)
    stacked = stacked.reshape(B, C * stride, T // stride)
    return stacked.reshape(B, out_channels, C * stride // out_channels, T // stride).mean(2)


def channel_to_space(x_BCT: torch.Tensor, stride: int, out_channels: int) -> torch.Tensor:
    """The shortcut of an upsampling stage, (B, C, T) -> (B, out, T * stride): channels repeated
    up to out * stride, then unstacked into time (the inverse layout of
    :func:`space_to_channel`)."""
    B, C, T = x_BCT.shape
    repeated = x_BCT.repeat_interleave(out_channels * stride // C, dim=1)  # (B, out*s, T)
    return (
        repeated.reshape(B, out_channels, stride, T).permute(0, 1, 3, 2).reshape(B, -1, T * stride)
    )


class DownStage(nn.Module):
    def __init__(self, width: int, out: int, stride: int, kernel_size: int):
        super().__init__()
        self.stride, self.out = stride, out
        self.unit = ResidualUnit(width, kernel_size)
        self.down = nn.Conv1d(width, out, 2 * stride, stride=stride)

    def forward(self, x_BCT: torch.Tensor) -> torch.Tensor:
        x_BCT = self.unit(x_BCT)
        # step j reads input blocks j - 1 and j (``stride`` zeros on the left): aligned with
        # the shortcut's block j, and causal
        down = self.down(F.pad(F.silu(x_BCT), (self.stride, 0)))
        return down + space_to_channel(x_BCT, self.stride, self.out)


class UpStage(nn.Module):
    def __init__(self, width: int, out: int, stride: int, kernel_size: int):
        super().__init__()
        self.stride, self.out = stride, out
        self.up = nn.ConvTranspose1d(width, out, stride, stride=stride)  # kernel = stride
        self.unit = ResidualUnit(out, kernel_size)

    def forward(self, x_BCT: torch.Tensor) -> torch.Tensor:
        x_BCT = self.up(F.silu(x_BCT)) + channel_to_space(x_BCT, self.stride, self.out)
        return self.unit(x_BCT)


@dataclass
class WaveformOutput:
    """Result of :meth:`WaveformAutoencoder.forward`."""

    reconstruction: torch.Tensor
    loss: torch.Tensor
    reconstruction_loss: torch.Tensor
    kl_loss: torch.Tensor


#: magnitude floor of the log-magnitude term. A lower floor (1e-5) weighs the digital silence of
#: ``tones`` so heavily that the decoder collapses to silence (measured: RMS 0.005 after 1,000
#: steps, no clip passing); at 1e-2, about -70 dB under a full-scale sine at these FFT sizes,
#: sound comes first.
STFT_FLOOR = 1e-2


def stft_loss(predicted_BT: torch.Tensor, target_BT: torch.Tensor,
              fft_sizes: tuple[int, ...] = (256, 512, 1024)) -> torch.Tensor:  # fmt: skip
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1 (magnitudes floored
    at :data:`STFT_FLOOR`), averaged over the FFT sizes (Hann windows, hop a quarter of the
    size)."""
    total = 0.0
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft, device=target_BT.device)
        p, t = (
            torch.stft(x.float(), n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
            .abs()
            .clamp_min(STFT_FLOOR)
            for x in (predicted_BT, target_BT)
        )
        convergence = torch.linalg.norm(t - p) / torch.linalg.norm(t).clamp_min(1e-5)
        total = total + convergence + F.l1_loss(p.log(), t.log())
    return total / len(fft_sizes)


class WaveformAutoencoder(nn.Module):
    """Continuous audio tokenizer: waveforms (B, T) in [-1, 1] <-> normalised latents (B, C, N),
    ``N = T / hop`` (T is padded with silence to a whole number of latents).

    Examples:
        >>> model = WaveformAutoencoder(WaveformConfig(channels=8, strides=(4, 4),
        ...                                           channel_multiples=(2, 2)))
        >>> latents = model.encode(torch.zeros(1, 160))  # (1, 16, 10)
        >>> model.decode(latents).shape
        torch.Size([1, 160])
    """

    config_class = WaveformConfig
    codebook_size = 0  # continuous: no codes

    def __init__(self, config: WaveformConfig) -> None:
        super().__init__()
        self.config = config
        c, widths = config, config.widths()
        self.encoder_in = CausalConv1d(1, widths[0], c.kernel_size)
        self.down = nn.ModuleList(
            DownStage(widths[i], widths[i + 1], s, c.kernel_size) for i, s in enumerate(c.strides)
        )
        self.to_posterior = CausalConv1d(widths[-1], 2 * c.latent_channels, 3)
        self.decoder_in = CausalConv1d(c.latent_channels, widths[-1], 3)
        self.up = nn.ModuleList(
            UpStage(widths[i + 1], widths[i], s, c.kernel_size)
            for i, s in reversed(list(enumerate(c.strides)))
        )
        self.decoder_out = CausalConv1d(widths[0], 1, c.kernel_size)
        self.register_buffer("latent_mean", torch.zeros(c.latent_channels))
        self.register_buffer("latent_std", torch.ones(c.latent_channels))

    @property
    def hop(self) -> int:
        return self.config.hop

    @property
    def decoder_context(self) -> int:
        """Latents of history the decoder needs for exact samples: decoding latents
        ``[i - decoder_context, j)`` gives latents ``[i, j)``'s samples exactly as decoding the
        whole line does (what a stream decodes per chunk). The latent conv looks back
        ``kernel - 1`` latents; every later causal conv ``kernel - 1`` samples at its rate."""
        c, rate, lookback = self.config, 1, 0.0
        for stride in reversed(c.strides):
            rate *= stride
            lookback += (c.kernel_size - 1) / rate  # the stage's residual unit
        lookback += (c.kernel_size - 1) / rate  # decoder_out
        return self.decoder_in.kernel_size[0] - 1 + math.ceil(lookback)

    def num_latents(self, num_samples: int) -> int:
        """Latents of a clip of ``num_samples`` samples."""
        return math.ceil(num_samples / self.hop)

    def token_layout(self, num_samples: int) -> TokenLayout:
        """A line of ``num_latents`` continuous tokens of ``latent_channels``."""
        return TokenLayout(grid=(self.num_latents(num_samples),), codebook_size=0,
                           latent_channels=self.config.latent_channels)  # fmt: skip

    def _posterior(self, waveforms_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if waveforms_BT.ndim != 2:
            raise ValueError(f"waveforms must be (B, T), got {tuple(waveforms_BT.shape)}")
        T = waveforms_BT.shape[-1]
        x = F.pad(waveforms_BT, (0, self.num_latents(T) * self.hop - T))[:, None]  # (B, 1, T')
        h = self.encoder_in(x)
        for stage in self.down:
            h = stage(h)
        mean, logvar = self.to_posterior(F.silu(h)).chunk(2, dim=1)  # (B, C, N) each
        return mean, logvar.clamp(-30.0, 20.0)

    def _decode_raw(self, z_BCN: torch.Tensor) -> torch.Tensor:
        h = self.decoder_in(z_BCN)
        for stage in self.up:
            h = stage(h)
        return torch.tanh(self.decoder_out(F.silu(h)))[:, 0]  # (B, N * hop)

    @torch.no_grad()
    def encode(self, waveforms_BT: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, T) -> normalised latents (B, C, N): the posterior mean."""
        mean, _ = self._posterior(waveforms_BT)
        return (mean - self.latent_mean[:, None]) / self.latent_std[:, None]

    def decode(self, latents_BCN: torch.Tensor) -> torch.Tensor:
        """Normalised latents (B, C, N) -> waveforms (B, N * hop) in [-1, 1]; the samples of
        latent i depend on latents <= i only."""
        z = latents_BCN * self.latent_std[:, None] + self.latent_mean[:, None]
        return self._decode_raw(z.to(self.latent_std.dtype))

    @torch.no_grad()
    def calibrate(self, waveforms_BT: torch.Tensor, batch_size: int = 64) -> None:
        """Fit the per-channel mean and std of the posterior means over ``waveforms``."""
        z = torch.cat([self._posterior(waveforms_BT[i : i + batch_size])[0]
                       for i in range(0, len(waveforms_BT), batch_size)])  # fmt: skip
        self.latent_mean.copy_(z.mean(dim=(0, 2)))
        self.latent_std.copy_(z.std(dim=(0, 2)).clamp_min(1e-6))

    def forward(self, waveforms_BT: torch.Tensor,
                generator: torch.Generator | None = None) -> WaveformOutput:  # fmt: skip
        """Reconstruct from a posterior sample (noise from ``generator``): L1 + STFT + KL."""
        mean, logvar = self._posterior(waveforms_BT)
        where = generator.device if generator is not None else mean.device
        noise = torch.randn(mean.shape, generator=generator, device=where).to(mean)
        decoded = self._decode_raw(mean + (0.5 * logvar).exp() * noise)[:, : waveforms_BT.shape[-1]]
        reconstruction_loss = F.l1_loss(decoded, waveforms_BT)
        if self.config.stft_weight:
            reconstruction_loss = reconstruction_loss + self.config.stft_weight * stft_loss(
                decoded, waveforms_BT
            )
        kl_loss = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()  # per element
        return WaveformOutput(
            reconstruction=decoded.clamp(-1.0, 1.0),
            loss=reconstruction_loss + self.config.kl_weight * kl_loss,
            reconstruction_loss=reconstruction_loss,
            kl_loss=kl_loss,
        )
