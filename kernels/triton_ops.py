"""Our Triton kernels as PyTorch custom ops: autograd, ``torch.compile`` and CUDA graphs.

``torch.compile`` treats a custom op as one opaque call (it never traces into Triton's launch
code), so a compiled model, a compiled decode step replayed as a CUDA graph and the eager path
all run the same kernels. Fake implementations give the output shapes to the compiler.
"""

# no ``from __future__ import annotations`` here: torch.library reads these signatures'
# annotations at registration, and Optional[...] is the spelling every torch version accepts
from typing import Optional

import torch
from mmgen.kernels.triton_attention import attention_backward, attention_forward
from mmgen.kernels.triton_common import check_inputs, kv_end_rows
from mmgen.kernels.triton_decode import decode_attention, fits_decode


@torch.library.custom_op("mmgen::attention_fwd", mutates_args=())
def _attention_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ends: torch.Tensor,
    bias: Optional[torch.Tensor],  # noqa: UP045
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    return attention_forward(q, k, v, ends, bias)


@_attention_fwd.register_fake
def _(q, k, v, ends, bias):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("mmgen::attention_bwd", mutates_args=())
def _attention_bwd(
    grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    ends: torch.Tensor, bias: Optional[torch.Tensor], out: torch.Tensor, lse: torch.Tensor,  # noqa: UP045
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    return attention_backward(grad_out, q, k, v, ends, bias, out, lse)


@_attention_bwd.register_fake
def _(grad_out, q, k, v, ends, bias, out, lse):
    return q.new_empty(q.shape), k.new_empty(k.shape), k.new_empty(k.shape)


def _setup_context(ctx, inputs, output):
    q, k, v, ends, bias = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, ends, bias, out, lse)


def _backward(ctx, grad_out, grad_lse):
    q, k, v, ends, bias, out, lse = ctx.saved_tensors
    dq, dk, dv = _attention_bwd(grad_out, q, k, v, ends, bias, out, lse)
    return dq, dk, dv, None, None


_attention_fwd.register_autograd(_backward, setup_context=_setup_context)


@torch.library.custom_op("mmgen::decode_attention", mutates_args=())
def _decode(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ends: torch.Tensor,
    bias: Optional[torch.Tensor],  # noqa: UP045
) -> torch.Tensor:  # fmt: skip
    return decode_attention(q, k, v, ends, bias)


@_decode.register_fake
def _(q, k, v, ends, bias):
    return q.new_empty(q.shape)


def group_causal_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused attention where query row i sees keys ``[0, kv_end[i])`` (differentiable in q, k, v).

    Short queries that need no gradient (a decode step: at most 16 rows against a cache) go to
    the split-key decode kernel (:mod:`mmgen.kernels.triton_decode`).

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D) with Hkv dividing H (GQA). D a power of two >= 16.
        kv_end: (Lq,) or (B, Lq) integer, non-decreasing along the rows.
        bias: optional constant additive bias (Lq, Lk) or (B, Lq, Lk) on allowed pairs.

    Returns:
        (B, H, Lq, D) in q's dtype.
    """
    check_inputs(q, k, bias)
    ends = kv_end_rows(kv_end, q.shape[0], q.shape[2])  # (B, Lq) int32
    if bias is not None:
        bias = bias.contiguous()
    needs_grad = torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v))
    if not needs_grad and fits_decode(q, k):
        return _decode(q, k, v, ends, bias)
    return _attention_fwd(q, k, v, ends, bias)[0]
