"""Reference group-causal attention through ``torch.nn.functional.scaled_dot_product_attention``."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kv_end_mask(kv_end: torch.Tensor, num_keys: int) -> torch.Tensor:
    """Boolean mask (True = attend) from ``kv_end``.

    Args:
        kv_end: (Lq,) or (B, Lq) integer tensor; row i may attend keys ``[0, kv_end[i])``.
        num_keys: Lk, the number of keys.

    Returns:
        (Lq, Lk) or (B, Lq, Lk) bool tensor.
    """
    keys = torch.arange(num_keys, device=kv_end.device)
    return keys < kv_end.unsqueeze(-1)


def causal_kv_end(num_queries: int, num_keys: int, device=None) -> torch.Tensor:
    """kv_end of plain causal attention, bottom-right aligned: the last query sees every key.

    Returns:
        (num_queries,) int32 ``[Lk - Lq + 1, ..., Lk]``.
    """
    return torch.arange(num_keys - num_queries + 1, num_keys + 1, device=device, dtype=torch.int32)


def is_plain_causal(kv_end: torch.Tensor, num_keys: int) -> bool:
    """Whether a (num_keys,) ``kv_end`` is plain causal (query i sees keys 0..i), so a backend
    may take its ``is_causal`` path; False under ``torch.compile`` (see below)."""
    if kv_end.dim() != 1 or kv_end.numel() != num_keys:
        return False
    if torch.compiler.is_compiling():
        # reading kv_end's values would break the graph at every layer; callers pass
        # kv_end=None for plain causal attention to keep SDPA's flash path when compiled
        return False
    return torch.equal(
        kv_end, torch.arange(1, num_keys + 1, device=kv_end.device, dtype=kv_end.dtype)
    )


def group_causal_attention_sdpa(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor | None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention where query row i sees keys ``[0, kv_end[i])``, via SDPA.

    Args:
        q: (B, H, Lq, D).
        k, v: (B, Hkv, Lk, D); Hkv divides H (grouped-query attention).
        kv_end: (Lq,) or (B, Lq) integer, absolute key indices (so a decode chunk against a
            cache passes its rows' true prefix ends); None for plain causal attention
            (bottom-right aligned, see :func:`causal_kv_end`), which keeps SDPA's flash path
            under ``torch.compile`` where a kv_end tensor cannot be inspected.
        bias: optional additive float bias (Lq, Lk) or (B, Lq, Lk) on allowed pairs
            (e.g. FlexRoPE's frame-distance decay); masked pairs stay -inf.

    Returns:
        (B, H, Lq, D) in q's dtype.
    """
    num_keys = k.shape[-2]
    gqa = {"enable_gqa": True} if k.shape[1] != q.shape[1] else {}
    if kv_end is None:
        if bias is None and q.shape[-2] == num_keys:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
        kv_end = causal_kv_end(q.shape[-2], num_keys, q.device)
    if bias is None and is_plain_causal(kv_end, num_keys):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, **gqa)
    mask = kv_end_mask(kv_end, num_keys)  # (Lq, Lk) or (B, Lq, Lk)
    if bias is not None:
        neg_inf = torch.tensor(float("-inf"), dtype=q.dtype, device=q.device)
        mask = torch.where(mask, bias.to(q.dtype), neg_inf)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)  # (B, 1, Lq, Lk): broadcast over heads
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, **gqa)
