"""Attention kernels for group-causal masks described by ``kv_end``.

Each query row ``i`` attends the key prefix ``[0, kv_end[i])``. Four implementations share that
contract: ``group_causal_attention`` (ours, Triton: CUDA, or CPU under ``TRITON_INTERPRET=1``),
``group_causal_attention_sdpa`` (torch SDPA, the reference), ``group_causal_attention_flex``
(FlexAttention BlockMask) and ``group_causal_attention_xformers``. Triton, FlexAttention and
xformers are imported only when their function is called. This layer imports nothing else of
mmgen.
"""

from __future__ import annotations

if __name__ != "mmgen.kernels":  # the repository root is on sys.path: not our package
    from ._top_level import use_installed_package

    use_installed_package(__name__, __file__)

import os  # noqa: E402

import torch
from mmgen.kernels.reference import causal_kv_end, group_causal_attention_sdpa, kv_end_mask


def triton_interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_runs_on(device: torch.device) -> bool:
    """Whether our Triton kernel can run on ``device`` (CUDA, or anything under the
    Triton interpreter)."""
    return device.type == "cuda" or triton_interpreting()


def group_causal_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused flash attention (Triton) where query row i sees keys ``[0, kv_end[i])``.

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D), Hkv dividing H (GQA); D a power of two >= 16.
        kv_end: (Lq,) or (B, Lq) int32, non-decreasing along the rows (absolute key indices, so
            a decode step passes its rows' prefix ends in the cache).
        bias: optional constant additive bias (Lq, Lk) or (B, Lq, Lk) on allowed pairs
            (FlexRoPE's frame-distance decay).

    Returns:
        (B, H, Lq, D) in q's dtype; differentiable in q, k and v.

    Raises:
        RuntimeError: on a CPU tensor without the Triton interpreter (use
            ``group_causal_attention_sdpa`` there, or set ``TRITON_INTERPRET=1``).
    """
    if not triton_runs_on(q.device):
        raise RuntimeError(
            "the triton attention kernel needs a CUDA device (or TRITON_INTERPRET=1 set before "
            "import); group_causal_attention_sdpa runs anywhere"
        )
    from mmgen.kernels.triton_ops import group_causal_attention_triton

    return group_causal_attention_triton(q, k, v, kv_end, bias)


def group_causal_attention_flex(q, k, v, kv_end, bias=None):
    """FlexAttention with a BlockMask from ``kv_end`` (see :mod:`mmgen.kernels.flex`)."""
    from mmgen.kernels.flex import group_causal_attention_flex as flex

    return flex(q, k, v, kv_end, bias)


def group_causal_attention_xformers(q, k, v, kv_end, bias=None):
    """xformers' memory-efficient attention (see :mod:`mmgen.kernels.xformers_attention`)."""
    from mmgen.kernels.xformers_attention import group_causal_attention_xformers as xf

    return xf(q, k, v, kv_end, bias)


__all__ = [
    "causal_kv_end",
    "group_causal_attention",
    "group_causal_attention_flex",
    "group_causal_attention_sdpa",
    "group_causal_attention_xformers",
    "kv_end_mask",
    "triton_runs_on",
]
