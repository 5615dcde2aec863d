"""Pre-norm decoder block: RMSNorm, grouped-query attention with optional QK-norm, SwiGLU."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.models.attention import group_causal_attention
from mmgen.models.kv_cache import KVCache
from mmgen.models.rope import apply_rotary


class HeadRMSNorm(nn.RMSNorm):
    """RMSNorm of queries or keys per head, its weight cast to the input's dtype.

    Under autocast the projections arrive in bf16 while the weight stays float32, and torch
    then falls back to an unfused kernel ("Mismatch dtype between input and weight"); the cast
    keeps the fused one. Same parameters and state-dict keys as ``nn.RMSNorm``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)`` with w1 and w3 fused into one projection."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w13 = nn.Linear(dim, 2 * hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.w13(x).chunk(2, dim=-1)
        return self.w2(F.silu(gate) * up)


class Attention(nn.Module):
    """Multi-head attention with GQA, rotary positions, optional QK-norm and a KV cache."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int,
        *,
        qk_norm: bool,
        norm_eps: float,
        backend: str,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.num_kv_heads = num_kv_heads
        self.head_dim = dim // num_heads
        self.backend = backend
        self.qkv = nn.Linear(dim, (num_heads + 2 * num_kv_heads) * self.head_dim, bias=False)
        self.proj = nn.Linear(num_heads * self.head_dim, dim, bias=False)
        self.q_norm = HeadRMSNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = HeadRMSNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        kv_end: torch.Tensor | None,
        cache: KVCache | None = None,
        start: int | torch.Tensor = 0,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``bias``: an additive (Lq, Lk) or (B, Lq, Lk) score bias on allowed pairs (FlexRoPE),
        Lk the keys attended (the cache's length when one is given)."""
        B, L, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = self.qkv(x).split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        q = self.q_norm(q.view(B, L, H, Dh)).transpose(1, 2)  # (B, H, L, Dh)
        k = self.k_norm(k.view(B, L, Hkv, Dh)).transpose(1, 2)  # (B, Hkv, L, Dh)
        v = v.view(B, L, Hkv, Dh).transpose(1, 2)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(start, k, v)  # (B, Hkv, start + L or Lmax, Dh)
        out = group_causal_attention(q, k, v, kv_end, bias=bias, backend=self.backend)
        return self.proj(out.transpose(1, 2).reshape(B, L, H * Dh))


class DecoderBlock(nn.Module):
    """``x + attn(norm(x))`` then ``x + mlp(norm(x))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        num_kv_heads: int,
        hidden_dim: int,
        *,
        qk_norm: bool,
        norm_eps: float,
        backend: str,
    ):
        super().__init__()
        self.attn_norm = nn.RMSNorm(dim, eps=norm_eps)
        self.attn = Attention(
            dim, num_heads, num_kv_heads, qk_norm=qk_norm, norm_eps=norm_eps, backend=backend
        )
        self.mlp_norm = nn.RMSNorm(dim, eps=norm_eps)
        self.mlp = SwiGLU(dim, hidden_dim)

    def forward(self, x, cos, sin, kv_end, cache=None, start=0, bias=None):
        x = x + self.attn(self.attn_norm(x), cos, sin, kv_end, cache, start, bias)
        return x + self.mlp(self.mlp_norm(x))
