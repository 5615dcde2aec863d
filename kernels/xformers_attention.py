"""Group-causal attention through xformers' ``memory_efficient_attention`` (CUDA only)."""

from __future__ import annotations

import torch
from mmgen.kernels.reference import is_plain_causal, kv_end_mask


def group_causal_attention_xformers(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same contract as :func:`group_causal_attention_sdpa`. Plain causal masks use xformers'
    ``LowerTriangularMask`` (tiles skipped); every other ``kv_end`` layout is expressible only
    as a dense additive tensor bias (no skipping), which is what this passes."""
    try:
        from xformers.ops import fmha
    except ImportError as err:
        raise RuntimeError(
            "attention_backend 'xformers' needs xformers: pip install 'mmgen[xformers]'"
        ) from err
    if q.device.type != "cuda":
        raise RuntimeError("attention_backend 'xformers' runs on CUDA only (xformers has no CPU)")
    B, H, Lq, D = q.shape
    H_kv, Lk = k.shape[1], k.shape[2]
    if H_kv != H:  # xformers' BMHK layout wants equal heads here
        k = k.repeat_interleave(H // H_kv, dim=1)
        v = v.repeat_interleave(H // H_kv, dim=1)
    if bias is None and is_plain_causal(kv_end, Lk):
        attn_bias = fmha.attn_bias.LowerTriangularMask()
    else:
        allowed = kv_end_mask(kv_end, Lk)  # (Lq, Lk) or (B, Lq, Lk)
        dense = torch.zeros(allowed.shape, dtype=q.dtype, device=q.device)
        if bias is not None:
            dense = dense + bias.to(q.dtype)
        dense = dense.masked_fill(~allowed, float("-inf"))
        dense = (
            dense.expand(B, H, Lq, Lk) if dense.dim() == 2 else dense[:, None].expand(B, H, Lq, Lk)
        )
        # xformers wants the bias memory aligned to 8 elements on the last dim
        padded = torch.empty(B, H, Lq, (Lk + 7) // 8 * 8, dtype=q.dtype, device=q.device)
        padded[..., :Lk] = dense
        attn_bias = padded[..., :Lk]
    out = fmha.memory_efficient_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_bias=attn_bias
    )  # (B, Lq, H, D)
    return out.transpose(1, 2)
