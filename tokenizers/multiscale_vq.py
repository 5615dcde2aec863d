"""Multi-scale residual VQ image tokenizer (VAR): one image -> K code maps of growing size.

Quantisation, as in VAR's ``VectorQuantizer2`` (``../shared/reference/image-ar.md``). With the
encoder output ``f`` (B, C, h, w), ``f_rest = f`` and ``f_hat = 0``, for every scale k with side
``p_k``:

    r_k   = Q(area_down(f_rest, p_k))          # nearest code, l2-normalised lookup
    h_k   = phi_k(bicubic_up(e[r_k], h))        # no resize at the last scale (p_K = h)
    f_hat = f_hat + h_k;   f_rest = f_rest - h_k

``phi_k(x) = (1 - a) x + a conv3x3(x)`` with a = 0.5; ``num_phi`` convs are shared by all scales,
scale k using the one whose tick is nearest ``k / (K - 1)``. The codebook is shared by all
scales; lookup compares l2-normalised vectors (VAR's ``using_znorm``) while ``e[r]`` is the raw
code vector, so residual steps keep a learned magnitude.

Code ids are flat: (B, sum p_k^2), the scales concatenated coarse to fine, each in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.utils.checks import check_int

from .layout import TokenLayout
from .quantizer import QuantizerOutput
from .vq import VQConfig, VQModel


@dataclass(kw_only=True)
class MultiScaleVQConfig(VQConfig):
    """Configuration of :class:`MultiScaleVQModel` (every :class:`VQConfig` field, plus):

    Args:
        scales: side of each scale's code map, strictly increasing, the last equal to the
            encoder's grid side (e.g. ``(1, 2, 3, 4, 6, 8)`` for an 8 x 8 grid).
        num_phi: refinement convs shared across the scales (VAR uses 4).
        phi_ratio: weight ``a`` of the conv in ``phi(x) = (1 - a) x + a conv(x)``.
        lookup: ``"cosine"`` (l2-normalised residual against l2-normalised codes, VAR's
            ``using_znorm``) or ``"euclidean"`` (nearest raw code vector, VAR's default), which
            also matches the residual's magnitude.
    """

    scales: tuple[int, ...] = (1, 2, 3, 4, 6, 8)
    num_phi: int = 4
    phi_ratio: float = 0.5
    lookup: str = "cosine"

    def __post_init__(self) -> None:
        super().__post_init__()
        from mmgen.utils.config import ConfigError

        self.scales = tuple(self.scales)
        if not self.scales or any(
            isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.scales
        ):
            raise ConfigError(f"scales must be a non-empty list of ints >= 1, got {self.scales}")
        if any(b <= a for a, b in zip(self.scales, self.scales[1:])):
            raise ConfigError(f"scales must increase strictly, got {list(self.scales)}")
        check_int("num_phi", self.num_phi, error=ConfigError)
        if not 0.0 <= self.phi_ratio <= 1.0:
            raise ConfigError(f"phi_ratio must be in [0, 1], got {self.phi_ratio}")
        if self.lookup not in ("cosine", "euclidean"):
            raise ConfigError(f"lookup must be 'cosine' or 'euclidean', got {self.lookup!r}")


class Phi(nn.Conv2d):
    """``(1 - a) x + a conv3x3(x)``: VAR's residual refinement of an upsampled code map."""

    def __init__(self, channels: int, ratio: float):
        super().__init__(channels, channels, 3, padding=1)
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(1 - self.ratio) + super().forward(x).mul(self.ratio)


def area_down(x_BChw: torch.Tensor, side: int) -> torch.Tensor:
    """Area-downsample (B, C, h, w) to (B, C, side, side); identity at full size."""
    if x_BChw.shape[-1] == side and x_BChw.shape[-2] == side:
        return x_BChw
    return F.interpolate(x_BChw, size=(side, side), mode="area")


class MultiScaleVQModel(VQModel):
    """VAR's multi-scale residual VQ on mmgen's VQ encoder/decoder.

    Examples:
        >>> cfg = MultiScaleVQConfig(block_out_channels=(32, 32), scales=(1, 2, 4, 8))
        >>> model = MultiScaleVQModel(cfg)
        >>> ids = model.encode(torch.zeros(1, 3, 16, 16))  # (1, 1 + 4 + 16 + 64)
        >>> images = model.decode(ids)  # (1, 3, 16, 16)
    """

    config_class = MultiScaleVQConfig

    def __init__(self, config: MultiScaleVQConfig) -> None:
        super().__init__(config)
        self.phis = nn.ModuleList(
            Phi(config.codebook_dim, config.phi_ratio) for _ in range(config.num_phi)
        )

    # ------------------------------------------------------------------ layout

    @property
    def scales(self) -> tuple[int, ...]:
        return self.config.scales

    def token_layout(self, height: int, width: int) -> TokenLayout:
        """The grid, scales, codebook and latent channels (the order checks they fit)."""
        grid = self.grid_shape(height, width)
        return TokenLayout(
            grid=grid,
            codebook_size=self.codebook_size,
            scales=self.scales,
            latent_channels=self.config.codebook_dim,
        )

    def scale_slices(self) -> list[slice]:
        """Where each scale's ids sit in the flat (B, sum p^2) ids."""
        out, start = [], 0
        for side in self.scales:
            out.append(slice(start, start + side * side))
            start += side * side
        return out

    def phi(self, k: int) -> Phi:
        """The shared refinement conv for scale k: tick nearest ``k / (K - 1)``."""
        P, K = len(self.phis), len(self.scales)
        ticks = torch.linspace(1 / (3 * P), 1 - 1 / (3 * P), P)
        at = k / max(K - 1, 1)
        return self.phis[int((ticks - at).abs().argmin())]

    # ------------------------------------------------------------------ codes <-> f_hat

    def code_vectors(self, ids_Bpp: torch.Tensor) -> torch.Tensor:
        """(B, p, p) ids -> (B, C, p, p) raw code vectors."""
        return self.quantize.embedding(ids_Bpp).permute(0, 3, 1, 2)

    def scale_residual(self, k: int, ids_Bpp: torch.Tensor, side: int) -> torch.Tensor:
        """``h_k = phi_k(bicubic_up(e[r_k], side))``: scale k's contribution to f_hat."""
        h = self.code_vectors(ids_Bpp).to(self.post_quant_conv.weight.dtype)
        if h.shape[-1] != side:
            h = F.interpolate(h, size=(side, side), mode="bicubic")
        return self.phi(k)(h)

    def split_scales(self, ids_BN: torch.Tensor) -> list[torch.Tensor]:
        """Flat (B, N) ids -> one (B, p_k, p_k) map per scale."""
        B = ids_BN.shape[0]
        return [ids_BN[:, s].reshape(B, p, p) for s, p in zip(self.scale_slices(), self.scales)]

    def ids_to_f_hat(self, ids_BN: torch.Tensor) -> torch.Tensor:
        """Flat ids -> (B, C, h, w) accumulated ``f_hat``."""
        side = self.scales[-1]
        f_hat = None
        for k, ids in enumerate(self.split_scales(ids_BN)):
            h = self.scale_residual(k, ids, side)
            f_hat = h if f_hat is None else f_hat + h
        return f_hat

    def next_scale_inputs(self, ids_BN: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing inputs of scales 2..K: ``area_down(f_hat_k, p_{k+1})`` for every
        k < K, flattened to (B, sum_{k>=2} p_k^2, C) (VAR's ``idxBl_to_var_input``)."""
        side = self.scales[-1]
        f_hat, inputs = None, []
        for k, ids in enumerate(self.split_scales(ids_BN)[:-1]):
            h = self.scale_residual(k, ids, side)
            f_hat = h if f_hat is None else f_hat + h
            inputs.append(area_down(f_hat, self.scales[k + 1]).flatten(2).transpose(1, 2))
        if not inputs:
            return ids_BN.new_zeros(ids_BN.shape[0], 0, self.config.codebook_dim).float()
        return torch.cat(inputs, dim=1)

    # ------------------------------------------------------------------ quantise

    def scale_target(self, f_rest_BChw: torch.Tensor, k: int) -> torch.Tensor:
        """What scale k quantises: the residual brought to its (B, C, p_k, p_k) map
        (VAR: ``area_down``; the frequency tokenizer low-passes it first)."""
        return area_down(f_rest_BChw, self.scales[k])

    def _quantise(
        self, f_BChw: torch.Tensor, generator: torch.Generator | None, *, training: bool
    ) -> QuantizerOutput:
        """Residual quantisation: straight-through f_hat, flat ids (B, N), VQ losses; with
        ``training`` the usage is updated and (given a generator) dead codes restarted."""
        q = self.quantize
        side = f_BChw.shape[-1]
        if f_BChw.shape[-2:] != (side, side) or side != self.scales[-1]:
            raise ValueError(
                f"encoder grid {tuple(f_BChw.shape[-2:])} does not end the scales "
                f"{list(self.scales)}"
            )
        with torch.autocast(device_type=f_BChw.device.type, enabled=False):
            f = f_BChw.float()
            f_rest, f_hat = f.detach().clone(), torch.zeros_like(f)
            if training and generator is not None:
                z = F.normalize(f.detach().permute(0, 2, 3, 1).reshape(-1, f.shape[1]), dim=-1)
                q._restart_dead_codes(z, generator)
            ids, counts = [], torch.zeros(q.codebook_size, device=f.device)
            for k, p in enumerate(self.scales):
                rest = self.scale_target(f_rest, k)  # (B, C, p, p)
                ids_N = self._nearest_codes(rest.permute(0, 2, 3, 1).reshape(-1, f.shape[1]))
                counts += torch.bincount(ids_N, minlength=q.codebook_size).float()
                ids_Bpp = ids_N.view(f.shape[0], p, p)
                h = self.scale_residual(k, ids_Bpp, side).float()
                f_hat = f_hat + h
                f_rest = f_rest - h.detach()
                ids.append(ids_Bpp.flatten(1))
            if training:
                q._update_usage(counts)
            probs = counts / counts.sum()
            perplexity = torch.exp(-torch.special.xlogy(probs, probs).sum())
            # VAR: beta * |sg(f_hat) - f|^2 trains the encoder, |f_hat - sg(f)|^2 the codebook
            commitment_loss = F.mse_loss(f, f_hat.detach())
            codebook_loss = F.mse_loss(f_hat, f.detach())
            f_st = f + (f_hat - f).detach()  # straight-through to the encoder
        return QuantizerOutput(
            quantized=f_st.to(f_BChw.dtype),
            ids=torch.cat(ids, dim=1),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity,
        )

    @torch.no_grad()
    def _nearest_codes(self, rest_NC: torch.Tensor) -> torch.Tensor:
        """(N,) nearest code of each residual row, by the configured lookup."""
        weight = self.quantize.embedding.weight.float()  # (K, C)
        if self.config.lookup == "cosine":
            return self.quantize._nearest(F.normalize(rest_NC, dim=-1), F.normalize(weight, dim=-1))
        # |r - e|^2 = |r|^2 - 2 r.e + |e|^2: the largest 2 r.e - |e|^2
        return (2 * rest_NC @ weight.T - weight.pow(2).sum(-1)).argmax(dim=1)

    def quantise_latents(self, latents_BChw, generator):
        return self._quantise(latents_BChw, generator, training=self.training)

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> flat ids (B, sum p_k^2). Updates no statistics."""
        return self._quantise(self._latents(images_B3HW), None, training=False).ids

    def decode(self, ids_BN: torch.Tensor) -> torch.Tensor:
        """Flat ids (B, sum p_k^2) -> images (B, C, H, W), clamped to [-1, 1]."""
        return self._decode_latents(self.ids_to_f_hat(ids_BN)).clamp(-1.0, 1.0)
