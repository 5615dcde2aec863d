"""l2-normalised vector quantiser (LlamaGen) with EMA usage tracking and dead-code restarts.

Lookup follows LlamaGen: ``z <- z/|z|``, ``e <- e/|e|``, ``k = argmin_k |z - e_k|``. On the unit
sphere ``|z - e|^2 = 2 - 2 z.e``, so the nearest code is the one with the largest dot product.

Dead codes (codes whose EMA share of assignments fell below ``dead_code_threshold``) are restarted
on randomly chosen encoder vectors of the current batch. All randomness comes from the
``generator`` passed to :meth:`VectorQuantizer.forward`; without one, no code is restarted.

Under ``torch.distributed`` (e.g. DDP) the usage counts are summed over ranks and the restart
vectors are broadcast from rank 0, so every rank keeps the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# Upper bound on the number of elements of one (rows x codebook) similarity block in the lookup.
_MAX_SIMILARITY_ELEMENTS = 1 << 26


@dataclass
class QuantizerOutput:
    """Result of :meth:`VectorQuantizer.forward`.

    Attributes:
        quantized: (B, C, H, W) unit-norm code vectors; gradients pass straight through to the
            (normalised) input.
        ids: (B, H, W) long code indices.
        codebook_loss: scalar ``mean(|sg(z) - e|^2)`` on normalised vectors; trains the codebook.
        commitment_loss: scalar ``mean(|z - sg(e)|^2)`` on normalised vectors; trains the encoder.
        perplexity: scalar ``exp(entropy)`` of this batch's code histogram (no gradient).
    """

    quantized: torch.Tensor
    ids: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    perplexity: torch.Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def default_dead_code_threshold(codebook_size: int) -> float:
    """Half the uniform usage share: a code used at under half its fair share is dead."""
    return 0.5 / codebook_size


class VectorQuantizer(nn.Module):
    """l2-normalised codebook lookup (LlamaGen) with straight-through gradients.

    Args:
        codebook_size (`int`): number of codes K.
        codebook_dim (`int`): code dimension C (at least 2; codes live on the unit sphere).
        usage_decay (`float`, defaults to 0.99): EMA decay of the per-code usage share, in [0, 1).
        dead_code_threshold (`float`, *optional*): a code whose EMA usage share is below this
            is dead. Must satisfy ``0 <= threshold < 1 / codebook_size``; otherwise even a
            perfectly uniform codebook would count as dead. Defaults to half the uniform share,
            ``0.5 / codebook_size`` (:func:`default_dead_code_threshold`), valid for every size.
        restart_noise (`float`, defaults to 1e-3): std of the Gaussian noise added to a batch
            vector before it replaces a dead code (separates codes restarted on the same vector).

    Buffers:
        usage: (K,) EMA of the share of assignments per code. Starts at ``1 / K`` (uniform), and a
            restarted code is reset to ``1 / K``, which gives it a grace period before it can be
            declared dead again. Updated only in training mode.
    """

    def __init__(
        self,
        codebook_size: int,
        codebook_dim: int,
        *,
        usage_decay: float = 0.99,
        dead_code_threshold: float | None = None,
        restart_noise: float = 1e-3,
    ) -> None:
        super().__init__()
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if dead_code_threshold is None:
            dead_code_threshold = default_dead_code_threshold(codebook_size)
        if codebook_dim < 2:
            raise ValueError(f"codebook_dim must be >= 2, got {codebook_dim}")
        if not 0.0 <= usage_decay < 1.0:
            raise ValueError(f"usage_decay must be in [0, 1), got {usage_decay}")
        if not 0.0 <= dead_code_threshold * codebook_size < 1.0:
            raise ValueError(
                f"dead_code_threshold must be in [0, 1/codebook_size) = [0, {1 / codebook_size:g}),"
                f" got {dead_code_threshold}"
            )
        if not restart_noise >= 0.0:
            raise ValueError(f"restart_noise must be >= 0, got {restart_noise}")
        self.codebook_size = codebook_size
        self.codebook_dim = codebook_dim
        self.usage_decay = usage_decay
        self.dead_code_threshold = dead_code_threshold
        self.restart_noise = restart_noise

        # Named like LlamaGen's `quantize.embedding` so checkpoint adapters map 1:1.
        self.embedding = nn.Embedding(codebook_size, codebook_dim)
        with torch.no_grad():
            # Normal then normalise = uniform on the sphere.
            self.embedding.weight.copy_(F.normalize(self.embedding.weight, dim=-1))
        self.register_buffer("usage", torch.full((codebook_size,), 1.0 / codebook_size))

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, codebook_dim={self.codebook_dim}, "
            f"usage_decay={self.usage_decay}, dead_code_threshold={self.dead_code_threshold}"
        )

    # ------------------------------------------------------------------ lookup

    def normalized_codebook(self) -> torch.Tensor:
        """(K, C) unit-norm code vectors (differentiable w.r.t. the codebook)."""
        return F.normalize(self.embedding.weight, dim=-1)

    @staticmethod
    def _nearest(z_NC: torch.Tensor, codes_KC: torch.Tensor) -> torch.Tensor:
        """(N,) index of the nearest unit code for each unit row of ``z_NC``."""
        rows = max(1, _MAX_SIMILARITY_ELEMENTS // codes_KC.shape[0])
        return torch.cat([(chunk @ codes_KC.T).argmax(dim=1) for chunk in z_NC.split(rows)])

    def _flatten(self, z_BCHW: torch.Tensor) -> torch.Tensor:
        if z_BCHW.ndim != 4 or z_BCHW.shape[1] != self.codebook_dim:
            raise ValueError(
                f"expected (B, {self.codebook_dim}, H, W) input, got shape {tuple(z_BCHW.shape)}"
            )
        # float32: a bf16 argmax would pick wrong codes for nearly tied similarities.
        return F.normalize(
            z_BCHW.float().permute(0, 2, 3, 1).reshape(-1, self.codebook_dim), dim=-1
        )

    @torch.no_grad()
    def encode(self, z_BCHW: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) encoder output -> (B, H, W) code ids. Pure: no usage update, no restart."""
        B, _, H, W = z_BCHW.shape
        with torch.autocast(device_type=z_BCHW.device.type, enabled=False):
            ids_N = self._nearest(self._flatten(z_BCHW), self.normalized_codebook().float())
        return ids_N.view(B, H, W)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, H, W) code ids -> (B, C, H, W) unit-norm code vectors."""
        return F.embedding(ids, self.normalized_codebook()).permute(0, 3, 1, 2).contiguous()

    # ------------------------------------------------------------------ training

    def forward(
        self, z_BCHW: torch.Tensor, generator: torch.Generator | None = None
    ) -> QuantizerOutput:
        """Quantise ``z_BCHW`` (B, C, H, W).

        In training mode the EMA usage is updated and, if ``generator`` is given, dead codes are
        first restarted on vectors of this batch. Restarts write the codebook in place, so call
        ``backward`` on one forward's loss before the next training forward.
        """
        B, _, H, W = z_BCHW.shape
        with torch.autocast(device_type=z_BCHW.device.type, enabled=False):
            z_NC = self._flatten(z_BCHW)
            if self.training and generator is not None:
                self._restart_dead_codes(z_NC.detach(), generator)
            codes_KC = self.normalized_codebook().float()
            ids_N = self._nearest(z_NC.detach(), codes_KC.detach())
            with torch.no_grad():
                counts_K = torch.bincount(ids_N, minlength=self.codebook_size).float()
                probs_K = counts_K / counts_K.sum()
                perplexity = torch.exp(-torch.special.xlogy(probs_K, probs_K).sum())
                if self.training:
                    self._update_usage(counts_K)
            e_NC = codes_KC[ids_N]
            codebook_loss = F.mse_loss(e_NC, z_NC.detach())
            commitment_loss = F.mse_loss(z_NC, e_NC.detach())
            q_NC = z_NC + (e_NC - z_NC).detach()
        quantized = q_NC.view(B, H, W, -1).permute(0, 3, 1, 2).contiguous().to(z_BCHW.dtype)
        return QuantizerOutput(
            quantized=quantized,
            ids=ids_N.view(B, H, W),
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity,
        )

    @torch.no_grad()
    def _update_usage(self, counts_K: torch.Tensor) -> None:
        if _distributed():
            counts_K = counts_K.clone()
            dist.all_reduce(counts_K)
        share_K = counts_K / counts_K.sum().clamp_min(1.0)
        self.usage.mul_(self.usage_decay).add_(
            share_K.to(self.usage.dtype), alpha=1 - self.usage_decay
        )

    @torch.no_grad()
    def _restart_dead_codes(self, z_NC: torch.Tensor, generator: torch.Generator) -> None:
        """Replace dead codes with random rows of ``z_NC`` (N, C) plus tiny noise."""
        dead_K = self.usage < self.dead_code_threshold
        num_dead = int(dead_K.sum())
        if num_dead == 0:
            return
        N, C = z_NC.shape
        # Draw on the generator's device so a CPU generator also works for GPU tensors.
        gen_device = generator.device
        if num_dead <= N:
            rows = torch.randperm(N, generator=generator, device=gen_device)[:num_dead]
        else:
            rows = torch.randint(N, (num_dead,), generator=generator, device=gen_device)
        noise = torch.randn(num_dead, C, generator=generator, device=gen_device)
        new_DC = z_NC[rows.to(z_NC.device)] + self.restart_noise * noise.to(z_NC.device)
        new_DC = F.normalize(new_DC, dim=-1)
        if _distributed():
            # `usage` is identical on all ranks (summed counts), so every rank has the same
            # `num_dead`; rank 0's choice wins.
            dist.broadcast(new_DC, src=0)
        weight = self.embedding.weight
        weight[dead_K] = new_DC.to(weight.dtype)
        self.usage[dead_K] = 1.0 / self.codebook_size

    # ------------------------------------------------------------------ reporting

    def utilisation(self) -> float:
        """Fraction of codes that are alive (EMA usage share at or above the threshold)."""
        return (self.usage >= self.dead_code_threshold).float().mean().item()
