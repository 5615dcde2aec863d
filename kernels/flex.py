"""Group-causal attention through FlexAttention: a BlockMask built from ``kv_end``."""

from __future__ import annotations

import torch

_compiled = {}


def compiled_flex_attention(device: torch.device):
    """FlexAttention, compiled on GPUs (eager FlexAttention is a dense fallback meant for
    debugging; it is what runs on the CPU)."""
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if "cuda" not in _compiled:
        _compiled["cuda"] = torch.compile(flex_attention, dynamic=False)
    return _compiled["cuda"]


def kv_end_block_mask(kv_end: torch.Tensor, num_keys: int, batch: int, device: torch.device):
    """BlockMask where query row i keeps keys ``[0, kv_end[i])``; (Lq,) or (B, Lq) ``kv_end``.
    Tiles entirely below a tile's smallest ``kv_end`` become FlexAttention's "full" tiles."""
    from torch.nn.attention.flex_attention import create_block_mask

    ends = kv_end.to(device=device, dtype=torch.int32)
    num_queries = ends.shape[-1]
    if ends.dim() == 1:
        return create_block_mask(
            lambda b, h, q_idx, kv_idx: kv_idx < ends[q_idx],
            None, None, num_queries, num_keys, device=device,
        )  # fmt: skip
    return create_block_mask(
        lambda b, h, q_idx, kv_idx: kv_idx < ends[b, q_idx],
        batch, None, num_queries, num_keys, device=device,
    )  # fmt: skip


def group_causal_attention_flex(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same contract as :func:`group_causal_attention_sdpa`, through FlexAttention.

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D).
        kv_end: (Lq,) or (B, Lq) integer.
        bias: optional additive bias (Lq, Lk) or (B, Lq, Lk), applied as a ``score_mod``.
    """
    block_mask = kv_end_block_mask(kv_end, k.shape[-2], q.shape[0], q.device)
    score_mod = None
    if bias is not None:
        table = bias.to(device=q.device, dtype=torch.float32)
        if table.dim() == 2:
            score_mod = lambda score, b, h, q_idx, kv_idx: score + table[q_idx, kv_idx]
        else:
            score_mod = lambda score, b, h, q_idx, kv_idx: score + table[b, q_idx, kv_idx]
    attend = compiled_flex_attention(q.device)
    return attend(
        q, k, v, score_mod=score_mod, block_mask=block_mask, enable_gqa=k.shape[1] != q.shape[1]
    )
