"""Flash attention for ``kv_end`` masks in Triton: forward, backward, GQA, optional additive bias.

Query row ``i`` attends keys ``[0, kv_end[i])`` with ``kv_end`` non-decreasing along the rows.
So for a query tile every row sees at least ``[0, min kv_end)`` and nothing past ``max kv_end``:
key tiles below the minimum are *full* (no mask work at all), tiles between the two are
*boundary* tiles (the only ones that compare indices), and the rest are never visited. The
backward pass uses the same split from the key tile's side: for a key tile the query rows that
see it entirely form a suffix (found with ``searchsorted`` on the host).

Softmax runs in base 2 (``exp2``) with a float32 running max / sum; ``lse`` is saved in base 2.
Rows with ``kv_end == 0`` attend nothing and output zeros. ``bias`` is a constant (no gradient):
FlexRoPE's frame-distance decay.

Runs on CUDA, or on CPU tensors under the Triton interpreter (``TRITON_INTERPRET=1`` set before
this module is imported), which is how CI checks it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634


@triton.jit
def _query_tile_bounds(end_ptr, offs_m, row_ok, Lk, BLOCK_N: tl.constexpr):
    """Rows' kv_end (clamped to Lk), the end of the key tiles every row sees entirely (full
    tiles: no mask) and the end of the tiles any row sees (boundary tiles until there)."""
    end = tl.minimum(tl.load(end_ptr + offs_m, mask=row_ok, other=0), Lk)
    lo = tl.min(tl.where(row_ok, end, Lk), 0)  # every row of the tile sees [0, lo)
    hi = tl.max(end, 0)  # no row sees past hi
    return end, (lo // BLOCK_N) * BLOCK_N, hi


@triton.jit
def _fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n, offs_d, end, row_ok,
              bias_base, stride_kn, stride_kd, stride_vn, stride_vd, stride_bm, stride_bn,
              Lk, qk_scale, MASKED: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    cols = start_n + offs_n
    col_ok = cols < Lk
    k = tl.load(
        k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
        mask=col_ok[None, :],
        other=0.0,
    )  # fmt: skip  (D, BN)
    s = tl.dot(q, k) * qk_scale  # (BM, BN), base-2 logits
    if HAS_BIAS:
        bias = tl.load(bias_base + offs_m[:, None] * stride_bm + cols[None, :] * stride_bn,
                       mask=row_ok[:, None] & col_ok[None, :], other=0.0)  # fmt: skip
        s += bias.to(tl.float32) * 1.4426950408889634
    if MASKED:
        s = tl.where(cols[None, :] < end[:, None], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    p = tl.exp2(s - m_use[:, None])
    alpha = tl.exp2(m_i - m_use)
    l_i = l_i * alpha + tl.sum(p, 1)
    v = tl.load(
        v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
        mask=col_ok[:, None],
        other=0.0,
    )  # fmt: skip  (BN, D)
    acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v)
    return acc, m_new, l_i


@triton.jit
def _fwd_kernel(Q, K, V, KV_END, BIAS, OUT, LSE,
                stride_qb, stride_qh, stride_qm, stride_qd,
                stride_kb, stride_kh, stride_kn, stride_kd,
                stride_vb, stride_vh, stride_vn, stride_vd,
                stride_ob, stride_oh, stride_om, stride_od,
                stride_eb, stride_bb, stride_bm, stride_bn,
                H, GROUP, Lq, Lk, qk_scale,
                HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                HEAD_DIM: tl.constexpr):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < Lq
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask=row_ok[:, None], other=0.0)  # fmt: skip
    end, full_end, hi = _query_tile_bounds(KV_END + b * stride_eb, offs_m, row_ok, Lk, BLOCK_N)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    bias_base = BIAS + b * stride_bb
    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start_n in range(0, full_end, BLOCK_N):  # full tiles: no index comparisons
        acc, m_i, l_i = _fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n,
                                  offs_d, end, row_ok, bias_base, stride_kn, stride_kd,
                                  stride_vn, stride_vd, stride_bm, stride_bn, Lk, qk_scale,
                                  MASKED=False, HAS_BIAS=HAS_BIAS)  # fmt: skip
    for start_n in range(full_end, hi, BLOCK_N):  # boundary tiles
        acc, m_i, l_i = _fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n,
                                  offs_d, end, row_ok, bias_base, stride_kn, stride_kd,
                                  stride_vn, stride_vd, stride_bm, stride_bn, Lk, qk_scale,
                                  MASKED=True, HAS_BIAS=HAS_BIAS)  # fmt: skip
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(l_i == 0.0, float("-inf"), m_i + tl.log2(l_safe))
    out_ptr = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om
    tl.store(out_ptr + offs_d[None, :] * stride_od, out.to(OUT.dtype.element_ty),
             mask=row_ok[:, None])  # fmt: skip
    tl.store(LSE + pid_bh * Lq + offs_m, lse, mask=row_ok)


@triton.jit
def _bwd_probs(q, k, lse, offs_m, cols, end, row_ok, col_ok, bias_base, stride_bm, stride_bn,
               qk_scale, MASKED: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    """Recomputed attention probabilities P (BM, BN) of one tile."""
    s = tl.dot(q, tl.trans(k)) * qk_scale
    if HAS_BIAS:
        bias = tl.load(bias_base + offs_m[:, None] * stride_bm + cols[None, :] * stride_bn,
                       mask=row_ok[:, None] & col_ok[None, :], other=0.0)  # fmt: skip
        s += bias.to(tl.float32) * 1.4426950408889634
    if MASKED:
        s = tl.where((cols[None, :] < end[:, None]) & row_ok[:, None], s, float("-inf"))
    lse_use = tl.where(lse == float("-inf"), 0.0, lse)
    return tl.exp2(s - lse_use[:, None])


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, KV_END, BIAS, DO, LSE, DELTA, DK, DV, ROW_FIRST, ROW_FULL,
                     stride_qb, stride_qh, stride_qm, stride_qd,
                     stride_kb, stride_kh, stride_kn, stride_kd,
                     stride_vb, stride_vh, stride_vn, stride_vd,
                     stride_ob, stride_oh, stride_om, stride_od,
                     stride_eb, stride_bb, stride_bm, stride_bn, stride_rb,
                     H, H_KV, GROUP, Lq, Lk, qk_scale, sm_scale,
                     HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                     HEAD_DIM: tl.constexpr):  # fmt: skip
    """dK, dV of one key tile of one KV head, summed over the query heads of its group."""
    pid_n = tl.program_id(0)
    pid_bhk = tl.program_id(1)
    b = pid_bhk // H_KV
    hk = pid_bhk % H_KV
    start_n = pid_n * BLOCK_N
    cols = start_n + tl.arange(0, BLOCK_N)
    col_ok = cols < Lk
    offs_d = tl.arange(0, HEAD_DIM)
    k = tl.load(K + b * stride_kb + hk * stride_kh + cols[:, None] * stride_kn
                + offs_d[None, :] * stride_kd, mask=col_ok[:, None], other=0.0)  # fmt: skip
    v = tl.load(V + b * stride_vb + hk * stride_vh + cols[:, None] * stride_vn
                + offs_d[None, :] * stride_vd, mask=col_ok[:, None], other=0.0)  # fmt: skip
    # query rows [first, full) see part of this tile, rows [full, Lq) all of it
    first = tl.load(ROW_FIRST + b * stride_rb + pid_n)
    full = tl.load(ROW_FULL + b * stride_rb + pid_n)
    m_first = (first // BLOCK_M) * BLOCK_M
    m_full = tl.minimum(((full + BLOCK_M - 1) // BLOCK_M) * BLOCK_M, tl.cdiv(Lq, BLOCK_M) * BLOCK_M)
    dk = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], tl.float32)
    bias_base = BIAS + b * stride_bb
    for g in range(0, GROUP):
        h = hk * GROUP + g
        q_base = Q + b * stride_qb + h * stride_qh
        do_base = DO + b * stride_ob + h * stride_oh
        stat_base = (b * H + h) * Lq
        for start_m in range(m_first, m_full, BLOCK_M):  # boundary query tiles
            dk, dv = _bwd_dkdv_tile(dk, dv, k, v, q_base, do_base, stat_base, LSE, DELTA,
                                    KV_END + b * stride_eb, start_m, cols, col_ok, offs_d,
                                    bias_base, stride_qm, stride_qd, stride_om, stride_od,
                                    stride_bm, stride_bn, Lq, qk_scale, MASKED=True,
                                    HAS_BIAS=HAS_BIAS, BLOCK_M=BLOCK_M)  # fmt: skip
        for start_m in range(m_full, Lq, BLOCK_M):  # query tiles that see the whole key tile
            dk, dv = _bwd_dkdv_tile(dk, dv, k, v, q_base, do_base, stat_base, LSE, DELTA,
                                    KV_END + b * stride_eb, start_m, cols, col_ok, offs_d,
                                    bias_base, stride_qm, stride_qd, stride_om, stride_od,
                                    stride_bm, stride_bn, Lq, qk_scale, MASKED=False,
                                    HAS_BIAS=HAS_BIAS, BLOCK_M=BLOCK_M)  # fmt: skip
    dk_ptr = (
        DK
        + b * stride_kb
        + hk * stride_kh
        + cols[:, None] * stride_kn
        + offs_d[None, :] * stride_kd
    )
    dv_ptr = (
        DV
        + b * stride_vb
        + hk * stride_vh
        + cols[:, None] * stride_vn
        + offs_d[None, :] * stride_vd
    )
    tl.store(dk_ptr, (dk * sm_scale).to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(dv_ptr, dv.to(DV.dtype.element_ty), mask=col_ok[:, None])


@triton.jit
def _bwd_dkdv_tile(dk, dv, k, v, q_base, do_base, stat_base, LSE, DELTA, end_base, start_m,
                   cols, col_ok, offs_d, bias_base, stride_qm, stride_qd, stride_om, stride_od,
                   stride_bm, stride_bn, Lq, qk_scale, MASKED: tl.constexpr,
                   HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr):  # fmt: skip
    offs_m = start_m + tl.arange(0, BLOCK_M)
    row_ok = offs_m < Lq
    q = tl.load(q_base + offs_m[:, None] * stride_qm + offs_d[None, :] * stride_qd,
                mask=row_ok[:, None], other=0.0)  # fmt: skip
    do = tl.load(do_base + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
                 mask=row_ok[:, None], other=0.0)  # fmt: skip
    lse = tl.load(LSE + stat_base + offs_m, mask=row_ok, other=float("-inf"))
    delta = tl.load(DELTA + stat_base + offs_m, mask=row_ok, other=0.0)
    end = tl.load(end_base + offs_m, mask=row_ok, other=0)
    p = _bwd_probs(q, k, lse, offs_m, cols, end, row_ok, col_ok, bias_base, stride_bm,
                   stride_bn, qk_scale, MASKED=MASKED, HAS_BIAS=HAS_BIAS)  # fmt: skip
    p = tl.where(row_ok[:, None], p, 0.0)
    dv += tl.dot(tl.trans(p).to(do.dtype), do)
    dp = tl.dot(do, tl.trans(v)).to(tl.float32)
    ds = p * (dp - delta[:, None])
    dk += tl.dot(tl.trans(ds).to(q.dtype), q)
    return dk, dv


@triton.jit
def _bwd_dq_kernel(Q, K, V, KV_END, BIAS, DO, LSE, DELTA, DQ,
                   stride_qb, stride_qh, stride_qm, stride_qd,
                   stride_kb, stride_kh, stride_kn, stride_kd,
                   stride_vb, stride_vh, stride_vn, stride_vd,
                   stride_ob, stride_oh, stride_om, stride_od,
                   stride_eb, stride_bb, stride_bm, stride_bn,
                   H, GROUP, Lq, Lk, qk_scale, sm_scale,
                   HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                   HEAD_DIM: tl.constexpr):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = pid_bh // H
    h = pid_bh % H
    hk = h // GROUP
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_ok = offs_m < Lq
    q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask=row_ok[:, None], other=0.0)  # fmt: skip
    do = tl.load(DO + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om
                 + offs_d[None, :] * stride_od, mask=row_ok[:, None], other=0.0)  # fmt: skip
    lse = tl.load(LSE + pid_bh * Lq + offs_m, mask=row_ok, other=float("-inf"))
    delta = tl.load(DELTA + pid_bh * Lq + offs_m, mask=row_ok, other=0.0)
    end, full_end, hi = _query_tile_bounds(KV_END + b * stride_eb, offs_m, row_ok, Lk, BLOCK_N)
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    bias_base = BIAS + b * stride_bb
    dq = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
    for start_n in range(0, full_end, BLOCK_N):
        dq = _bwd_dq_tile(dq, q, do, lse, delta, end, row_ok, k_base, v_base, start_n, offs_m,
                          offs_d, bias_base, stride_kn, stride_kd, stride_vn, stride_vd,
                          stride_bm, stride_bn, Lk, qk_scale, MASKED=False, HAS_BIAS=HAS_BIAS,
                          BLOCK_N=BLOCK_N)  # fmt: skip
    for start_n in range(full_end, hi, BLOCK_N):
        dq = _bwd_dq_tile(dq, q, do, lse, delta, end, row_ok, k_base, v_base, start_n, offs_m,
                          offs_d, bias_base, stride_kn, stride_kd, stride_vn, stride_vd,
                          stride_bm, stride_bn, Lk, qk_scale, MASKED=True, HAS_BIAS=HAS_BIAS,
                          BLOCK_N=BLOCK_N)  # fmt: skip
    tl.store(DQ + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm
             + offs_d[None, :] * stride_qd, (dq * sm_scale).to(DQ.dtype.element_ty),
             mask=row_ok[:, None])  # fmt: skip


@triton.jit
def _bwd_dq_tile(dq, q, do, lse, delta, end, row_ok, k_base, v_base, start_n, offs_m, offs_d,
                 bias_base, stride_kn, stride_kd, stride_vn, stride_vd, stride_bm, stride_bn, Lk,
                 qk_scale, MASKED: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK_N: tl.constexpr):  # fmt: skip
    cols = start_n + tl.arange(0, BLOCK_N)
    col_ok = cols < Lk
    k = tl.load(k_base + cols[:, None] * stride_kn + offs_d[None, :] * stride_kd,
                mask=col_ok[:, None], other=0.0)  # fmt: skip
    v = tl.load(v_base + cols[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=col_ok[:, None], other=0.0)  # fmt: skip
    p = _bwd_probs(q, k, lse, offs_m, cols, end, row_ok, col_ok, bias_base, stride_bm,
                   stride_bn, qk_scale, MASKED=MASKED, HAS_BIAS=HAS_BIAS)  # fmt: skip
    dp = tl.dot(do, tl.trans(v)).to(tl.float32)
    ds = p * (dp - delta[:, None])
    return dq + tl.dot(ds.to(k.dtype), k)


def _block_sizes(head_dim: int, device: torch.device) -> tuple[int, int]:
    if device.type != "cuda":  # the interpreter: small tiles keep the CPU tests quick
        return 16, 16
    return (128, 64) if head_dim <= 64 else (64, 64)


def _bias_strides(bias: torch.Tensor | None) -> tuple[int, int, int]:
    if bias is None:
        return 0, 0, 0
    if bias.dim() == 2:
        return 0, bias.stride(0), bias.stride(1)
    return bias.stride(0), bias.stride(1), bias.stride(2)


class _GroupCausalAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, kv_end, bias):
        B, H, Lq, D = q.shape
        H_kv, Lk = k.shape[1], k.shape[2]
        kv_end2 = (
            kv_end.to(torch.int32).expand(B, Lq).contiguous()
            if kv_end.dim() == 1
            else kv_end.to(torch.int32).contiguous()
        )  # fmt: skip  (B, Lq)
        block_m, block_n = _block_sizes(D, q.device)
        out = torch.empty_like(q)
        lse = torch.empty(B, H, Lq, device=q.device, dtype=torch.float32)
        scale = D**-0.5
        bias_arg = bias if bias is not None else q  # never read when HAS_BIAS is False
        grid = (triton.cdiv(Lq, block_m), B * H)
        _fwd_kernel[grid](
            q, k, v, kv_end2, bias_arg, out, lse,
            *q.stride(), *k.stride(), *v.stride(), *out.stride(),
            kv_end2.stride(0), *_bias_strides(bias),
            H, H // H_kv, Lq, Lk, scale * LOG2E,
            HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=D,
        )  # fmt: skip
        ctx.save_for_backward(q, k, v, kv_end2, bias, out, lse)
        ctx.blocks = (block_m, block_n)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, kv_end2, bias, out, lse = ctx.saved_tensors
        block_m, block_n = ctx.blocks
        B, H, Lq, D = q.shape
        H_kv, Lk = k.shape[1], k.shape[2]
        grad_out = grad_out.contiguous()
        delta = (grad_out.float() * out.float()).sum(-1).contiguous()  # (B, H, Lq)
        scale = D**-0.5
        # per key tile: the first query row that sees any of it, and the first that sees all
        tile_starts = torch.arange(0, Lk, block_n, device=q.device, dtype=torch.int32)
        ends = kv_end2.clamp(max=Lk)
        row_first = torch.searchsorted(ends, tile_starts.expand(B, -1).contiguous(), right=True)
        last_cols = (tile_starts + block_n - 1).expand(B, -1).contiguous()
        row_full = torch.searchsorted(ends, last_cols, right=True)
        row_first = row_first.to(torch.int32).contiguous()
        row_full = row_full.to(torch.int32).contiguous()
        dq = torch.empty_like(q)
        dk = torch.empty_like(k)
        dv = torch.empty_like(v)
        bias_arg = bias if bias is not None else q
        common = (
            *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(),
            kv_end2.stride(0), *_bias_strides(bias),
        )  # fmt: skip
        _bwd_dkdv_kernel[(triton.cdiv(Lk, block_n), B * H_kv)](
            q, k, v, kv_end2, bias_arg, grad_out, lse, delta, dk, dv, row_first, row_full,
            *common, row_first.stride(0), H, H_kv, H // H_kv, Lq, Lk, scale * LOG2E, scale,
            HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=D,
        )  # fmt: skip
        _bwd_dq_kernel[(triton.cdiv(Lq, block_m), B * H)](
            q, k, v, kv_end2, bias_arg, grad_out, lse, delta, dq,
            *common, H, H // H_kv, Lq, Lk, scale * LOG2E, scale,
            HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=D,
        )  # fmt: skip
        return dq, dk, dv, None, None


def group_causal_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Fused attention where query row i sees keys ``[0, kv_end[i])`` (differentiable in q, k, v).

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D) with Hkv dividing H (GQA). D a power of two >= 16.
        kv_end: (Lq,) or (B, Lq) integer, non-decreasing along the rows.
        bias: optional constant additive bias (Lq, Lk) or (B, Lq, Lk) on allowed pairs.

    Returns:
        (B, H, Lq, D) in q's dtype.
    """
    D = q.shape[-1]
    if D < 16 or D & (D - 1):
        raise ValueError(f"triton attention needs a power-of-two head dim >= 16, got {D}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads {q.shape[1]} must be a multiple of kv heads {k.shape[1]}")
    if bias is not None and bias.requires_grad:
        raise ValueError("bias is a constant for the triton backend (no gradient flows to it)")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if bias is not None:
        bias = bias.contiguous()
    return _GroupCausalAttention.apply(q, k, v, kv_end, bias)
