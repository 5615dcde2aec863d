"""One dispatch point for group-causal attention backends, and kv_end from group ids."""

from __future__ import annotations

import torch

ATTENTION_BACKENDS = ("sdpa", "flex", "triton", "xformers")
_AVAILABLE = ("sdpa",)


def check_attention_backend(name: str) -> str:
    """Validate a backend name; a known but not yet available one raises a clear error."""
    if name not in ATTENTION_BACKENDS:
        raise ValueError(
            f"unknown attention_backend {name!r}; choose one of {list(ATTENTION_BACKENDS)}"
        )
    if name not in _AVAILABLE:
        raise NotImplementedError(
            f"attention_backend {name!r} is not available in this version of mmgen; "
            f"available: {list(_AVAILABLE)}"
        )
    return name


def group_causal_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    backend: str = "sdpa",
) -> torch.Tensor:
    """Attention where query row i sees keys ``[0, kv_end[i])``.

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D).
        kv_end: (Lq,) or (B, Lq) int, absolute key indices.
        bias: optional additive bias on allowed pairs, (Lq, Lk) or (B, Lq, Lk).
        backend: one of ``ATTENTION_BACKENDS``.
    """
    check_attention_backend(backend)
    from mmgen.kernels import group_causal_attention_sdpa

    return group_causal_attention_sdpa(q, k, v, kv_end, bias)


def kv_end_from_group_ids(group_ids: torch.Tensor) -> torch.Tensor:
    """One past the last index of each row's group: the key prefix each row may attend.

    Args:
        group_ids: (L,) non-decreasing integer group ids.

    Returns:
        (L,) int32 ``kv_end``.
    """
    if group_ids.dim() != 1:
        raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
    if group_ids.numel() > 1 and bool((group_ids[1:] < group_ids[:-1]).any()):
        raise ValueError("group_ids must be non-decreasing along the sequence")
    return torch.searchsorted(group_ids, group_ids, right=True).to(torch.int32)
