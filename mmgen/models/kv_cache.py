"""Key/value cache with preallocated buffers (gpt-fast style)."""

from __future__ import annotations

import torch
from torch import nn


class KVCache(nn.Module):
    """Per-layer cache of keys and values for ``max_length`` positions.

    Args:
        batch_size: rows in the batch (doubled batch under classifier-free guidance).
        num_kv_heads: key/value heads (Hkv).
        max_length: positions to preallocate.
        head_dim: D per head.
        dtype, device: of the buffers.
    """

    def __init__(
        self,
        batch_size: int,
        num_kv_heads: int,
        max_length: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        shape = (batch_size, num_kv_heads, max_length, head_dim)  # (B, Hkv, Lmax, D)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)

    @property
    def max_length(self) -> int:
        return self.k.shape[2]

    def update(
        self, start: int | torch.Tensor, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write (B, Hkv, L, D) keys/values at positions ``[start, start + L)``.

        Returns the cached keys and values for positions ``[0, start + L)``; with ``start`` a
        tensor (compiled decoding: static shapes, no host sync) the whole buffers, whose
        unwritten tail the caller's ``kv_end`` masks.
        """
        if isinstance(start, torch.Tensor):
            index = start + torch.arange(k.shape[2], device=k.device)  # (L,)
            self.k.index_copy_(2, index, k)
            self.v.index_copy_(2, index, v)
            return self.k, self.v
        end = start + k.shape[2]
        if end > self.max_length:
            raise ValueError(
                f"KV cache overflow: writing up to {end} > max_length {self.max_length}"
            )
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]

    def keep(self, slots: torch.Tensor) -> None:
        """Keep only the keys/values of ``slots`` (ascending slot indices), moved to the front
        ``[0, len(slots))``: rows that no later query reads leave (``SequenceCache``)."""
        n = slots.numel()
        self.k[:, :, :n] = self.k.index_select(2, slots)
        self.v[:, :, :n] = self.v.index_select(2, slots)
