"""Flash attention for ``kv_end`` masks in Triton: forward, backward, GQA, optional additive bias.

Query row ``i`` attends keys ``[0, kv_end[i])`` with ``kv_end`` non-decreasing along the rows.
So for a query tile every row sees at least ``[0, min kv_end)`` and nothing past ``max kv_end``:
key tiles below the minimum are *full* (no mask work at all), tiles between the two are
*boundary* tiles (the only ones that compare indices), and the rest are never visited. The
backward's dK/dV kernel uses the same split from the key tile's side: the query rows that see a
key tile entirely form a suffix, found by a binary search over ``kv_end`` inside the kernel.

Softmax runs in base 2 (``exp2``) with a float32 running max / sum; ``lse`` is saved in base 2,
``+inf`` for rows with ``kv_end == 0`` (they output zeros and get zero gradients). The backward
follows the Triton tutorial's layout: dK/dV tiles work on transposed scores (keys as rows), so
no register tile is ever transposed, and ``delta = rowsum(dO * O)`` comes from a pre-pass.
``bias`` is a constant (no gradient): FlexRoPE's frame-distance decay.

The launchers here take prepared tensors; :mod:`mmgen.kernels.triton_ops` wraps them as
custom ops (autograd, ``torch.compile``, CUDA graphs). On CUDA the block shapes, warps and
pipeline depth are autotuned per head dim, bias and length bucket; under the Triton
interpreter (CPU tensors, ``TRITON_INTERPRET=1`` set before import, how CI checks this) fixed
small, deliberately unequal tiles are used.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from mmgen.kernels.triton_common import LOG2E, autotuned, bias_strides, length_bucket


@triton.jit
def _first_row_above(end_ptr, Lq, threshold):
    """First row whose kv_end exceeds ``threshold`` (Lq if none): binary search, since kv_end
    is non-decreasing."""
    lo = Lq * 0
    hi = Lq + 0
    while lo < hi:
        mid = (lo + hi) // 2
        right = tl.load(end_ptr + mid) > threshold
        hi = tl.where(right, mid, hi)
        lo = tl.where(right, lo, mid + 1)
    return lo


@triton.jit
def _query_tile_bounds(end_ptr, offs_m, row_ok, Lk, BLOCK_N: tl.constexpr):
    """Rows' kv_end (clamped to Lk), the end of the key tiles every row sees entirely (full
    tiles: no mask) and the end of the tiles any row sees (boundary tiles until there)."""
    end = tl.minimum(tl.load(end_ptr + offs_m, mask=row_ok, other=0), Lk)
    lo = tl.min(tl.where(row_ok, end, Lk), 0)  # every row of the tile sees [0, lo)
    hi = tl.max(end, 0)  # no row sees past hi
    return end, (lo // BLOCK_N) * BLOCK_N, hi


@triton.jit
def _tile_logits(q, k_base, cols, col_ok, offs_m, offs_d, row_ok, bias_base, stride_kn,
                 stride_kd, stride_bm, stride_bn, qk_scale, HAS_BIAS: tl.constexpr):  # fmt: skip
    """K^T of one key tile (D, BN) and the tile's base-2 logits (BM, BN), bias included."""
    kT = tl.load(k_base + cols[None, :] * stride_kn + offs_d[:, None] * stride_kd,
                 mask=col_ok[None, :], other=0.0)  # fmt: skip
    s = tl.dot(q, kT)
    if HAS_BIAS:
        bias = tl.load(bias_base + offs_m[:, None] * stride_bm + cols[None, :] * stride_bn,
                       mask=row_ok[:, None] & col_ok[None, :], other=0.0)  # fmt: skip
        s = s * qk_scale + bias.to(tl.float32) * 1.4426950408889634
    else:
        s = s * qk_scale
    return kT, s


@triton.jit
def fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n, offs_d, end, row_ok,
              bias_base, stride_kn, stride_kd, stride_vn, stride_vd, stride_bm, stride_bn,
              col_end, qk_scale, MASKED: tl.constexpr, HAS_BIAS: tl.constexpr):  # fmt: skip
    """One key tile into the running softmax state. Keys at or past ``col_end`` are never
    read (an unwritten cache tail may hold anything, NaN included)."""
    cols = start_n + offs_n
    col_ok = cols < col_end
    kT, s = _tile_logits(q, k_base, cols, col_ok, offs_m, offs_d, row_ok, bias_base, stride_kn,
                         stride_kd, stride_bm, stride_bn, qk_scale, HAS_BIAS)  # fmt: skip
    if MASKED:
        s = tl.where(cols[None, :] < end[:, None], s, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s, 1))
    if MASKED:  # a row may have seen nothing yet; full tiles always give a finite max
        m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_use = m_new
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
                H, GROUP, Lq, Lk, LEN_KEY, qk_scale,
                HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)  # the longest rows (last tiles) first
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
        acc, m_i, l_i = fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n,
                                  offs_d, end, row_ok, bias_base, stride_kn, stride_kd,
                                  stride_vn, stride_vd, stride_bm, stride_bn, Lk, qk_scale,
                                  MASKED=False, HAS_BIAS=HAS_BIAS)  # fmt: skip
    for start_n in range(full_end, hi, BLOCK_N):  # boundary tiles
        acc, m_i, l_i = fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, offs_m, offs_n,
                                  offs_d, end, row_ok, bias_base, stride_kn, stride_kd,
                                  stride_vn, stride_vd, stride_bm, stride_bn, hi, qk_scale,
                                  MASKED=True, HAS_BIAS=HAS_BIAS)  # fmt: skip
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(l_i == 0.0, float("inf"), m_i + tl.log2(l_safe))
    out_ptr = OUT + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om
    tl.store(out_ptr + offs_d[None, :] * stride_od, out.to(OUT.dtype.element_ty),
             mask=row_ok[:, None])  # fmt: skip
    tl.store(LSE + pid_bh * Lq + offs_m, lse, mask=row_ok)


@triton.jit
def _bwd_delta_kernel(OUT, DO, DELTA, rows, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
    """delta = rowsum(dO * O) in float32 over (B*H*Lq) contiguous rows."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    ok = offs_m < rows
    ptrs = offs_m[:, None] * HEAD_DIM + offs_d[None, :]
    o = tl.load(OUT + ptrs, mask=ok[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + ptrs, mask=ok[:, None], other=0.0).to(tl.float32)
    tl.store(DELTA + offs_m, tl.sum(o * do, 1), mask=ok)


@triton.jit
def _bwd_dkdv_tile(dk, dv, k, v, q_base, do_base, stat_base, LSE, DELTA, end_base, start_m,
                   cols, col_ok, offs_d, bias_base, stride_qm, stride_qd, stride_om, stride_od,
                   stride_bm, stride_bn, Lq, Lk, qk_scale, MASKED: tl.constexpr,
                   HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr):  # fmt: skip
    """Accumulate one query tile into dK, dV (BN, D), working on transposed scores (BN, BM)."""
    offs_m = start_m + tl.arange(0, BLOCK_M)
    row_ok = offs_m < Lq
    qT = tl.load(
        q_base + offs_m[None, :] * stride_qm + offs_d[:, None] * stride_qd,
        mask=row_ok[None, :],
        other=0.0,
    )  # fmt: skip  (D, BM)
    do = tl.load(
        do_base + offs_m[:, None] * stride_om + offs_d[None, :] * stride_od,
        mask=row_ok[:, None],
        other=0.0,
    )  # fmt: skip  (BM, D)
    lse = tl.load(LSE + stat_base + offs_m, mask=row_ok, other=float("inf"))  # inf: p = 0
    delta = tl.load(DELTA + stat_base + offs_m, mask=row_ok, other=0.0)
    sT = tl.dot(k, qT)  # (BN, BM)
    if HAS_BIAS:
        biasT = tl.load(bias_base + offs_m[None, :] * stride_bm + cols[:, None] * stride_bn,
                        mask=row_ok[None, :] & col_ok[:, None], other=0.0)  # fmt: skip
        sT = sT * qk_scale + biasT.to(tl.float32) * 1.4426950408889634
    else:
        sT = sT * qk_scale
    pT = tl.exp2(sT - lse[None, :])
    if MASKED:
        end = tl.minimum(tl.load(end_base + offs_m, mask=row_ok, other=0), Lk)
        seen = cols[:, None] < end[None, :]
        pT = tl.where(seen, pT, 0.0)
    dv += tl.dot(pT.to(do.dtype), do)
    dpT = tl.dot(v, tl.trans(do)).to(tl.float32)  # (BN, BM)
    dsT = pT * (dpT - delta[None, :])
    if MASKED:  # 0 * a non-finite unseen value must stay 0
        dsT = tl.where(seen, dsT, 0.0)
    dk += tl.dot(dsT.to(qT.dtype), tl.trans(qT))
    return dk, dv


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, KV_END, BIAS, DO, LSE, DELTA, DK, DV,
                     stride_qb, stride_qh, stride_qm, stride_qd,
                     stride_kb, stride_kh, stride_kn, stride_kd,
                     stride_vb, stride_vh, stride_vn, stride_vd,
                     stride_ob, stride_oh, stride_om, stride_od,
                     stride_eb, stride_bb, stride_bm, stride_bn,
                     stride_gb, stride_gh, stride_gn, stride_gd,
                     H, H_KV, GROUP, Lq, Lk, LEN_KEY, qk_scale, sm_scale,
                     HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
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
    # query rows [first, full) see part of this tile, rows [full, Lq) all of it (a tile cut
    # by Lk is never seen whole: it always takes the masked path)
    end_base = KV_END + b * stride_eb
    first = _first_row_above(end_base, Lq, start_n)
    full = _first_row_above(end_base, Lq, start_n + BLOCK_N - 1)
    full = tl.where(start_n + BLOCK_N <= Lk, full, Lq)
    m_first = (first // BLOCK_M) * BLOCK_M
    m_full = tl.minimum(tl.cdiv(full, BLOCK_M) * BLOCK_M, tl.cdiv(Lq, BLOCK_M) * BLOCK_M)
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
                                    end_base, start_m, cols, col_ok, offs_d, bias_base,
                                    stride_qm, stride_qd, stride_om, stride_od, stride_bm,
                                    stride_bn, Lq, Lk, qk_scale, MASKED=True,
                                    HAS_BIAS=HAS_BIAS, BLOCK_M=BLOCK_M)  # fmt: skip
        for start_m in range(m_full, Lq, BLOCK_M):  # query tiles that see the whole key tile
            dk, dv = _bwd_dkdv_tile(dk, dv, k, v, q_base, do_base, stat_base, LSE, DELTA,
                                    end_base, start_m, cols, col_ok, offs_d, bias_base,
                                    stride_qm, stride_qd, stride_om, stride_od, stride_bm,
                                    stride_bn, Lq, Lk, qk_scale, MASKED=False,
                                    HAS_BIAS=HAS_BIAS, BLOCK_M=BLOCK_M)  # fmt: skip
    # dk, dv: two contiguous tensors of k's shape, addressed by the same strides
    grad_offsets = (
        b * stride_gb + hk * stride_gh + cols[:, None] * stride_gn + offs_d[None, :] * stride_gd
    )
    tl.store(DK + grad_offsets, (dk * sm_scale).to(DK.dtype.element_ty), mask=col_ok[:, None])
    tl.store(DV + grad_offsets, dv.to(DV.dtype.element_ty),
             mask=col_ok[:, None])  # fmt: skip


@triton.jit
def _bwd_dq_tile(dq, q, do, lse, delta, end, row_ok, k_base, v_base, start_n, offs_m, offs_d,
                 bias_base, stride_kn, stride_kd, stride_vn, stride_vd, stride_bm, stride_bn,
                 col_end, qk_scale, MASKED: tl.constexpr, HAS_BIAS: tl.constexpr,
                 BLOCK_N: tl.constexpr):  # fmt: skip
    cols = start_n + tl.arange(0, BLOCK_N)
    col_ok = cols < col_end  # keys past every row's end are never read
    kT, s = _tile_logits(q, k_base, cols, col_ok, offs_m, offs_d, row_ok, bias_base, stride_kn,
                         stride_kd, stride_bm, stride_bn, qk_scale, HAS_BIAS)  # fmt: skip
    vT = tl.load(
        v_base + cols[None, :] * stride_vn + offs_d[:, None] * stride_vd,
        mask=col_ok[None, :],
        other=0.0,
    )  # fmt: skip  (D, BN)
    p = tl.exp2(s - lse[:, None])
    if MASKED:
        p = tl.where(cols[None, :] < end[:, None], p, 0.0)
    dp = tl.dot(do, vT).to(tl.float32)
    ds = p * (dp - delta[:, None])
    return dq + tl.dot(ds.to(kT.dtype), tl.trans(kT))


@triton.jit
def _bwd_dq_kernel(Q, K, V, KV_END, BIAS, DO, LSE, DELTA, DQ,
                   stride_qb, stride_qh, stride_qm, stride_qd,
                   stride_kb, stride_kh, stride_kn, stride_kd,
                   stride_vb, stride_vh, stride_vn, stride_vd,
                   stride_ob, stride_oh, stride_om, stride_od,
                   stride_eb, stride_bb, stride_bm, stride_bn,
                   stride_gb, stride_gh, stride_gm, stride_gd,
                   H, GROUP, Lq, Lk, LEN_KEY, qk_scale, sm_scale,
                   HAS_BIAS: tl.constexpr, HEAD_DIM: tl.constexpr,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):  # fmt: skip
    pid_m = tl.num_programs(0) - 1 - tl.program_id(0)  # the longest rows (last tiles) first
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
    lse = tl.load(LSE + pid_bh * Lq + offs_m, mask=row_ok, other=float("inf"))
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
                          stride_bm, stride_bn, hi, qk_scale, MASKED=True, HAS_BIAS=HAS_BIAS,
                          BLOCK_N=BLOCK_N)  # fmt: skip
    tl.store(DQ + b * stride_gb + h * stride_gh + offs_m[:, None] * stride_gm
             + offs_d[None, :] * stride_gd, (dq * sm_scale).to(DQ.dtype.element_ty),
             mask=row_ok[:, None])  # fmt: skip


# (BLOCK_M, BLOCK_N, num_warps, num_stages) tried on CUDA: the Triton tutorial's Hopper choices
# and their neighbours. The interpreter gets the last entry (unequal tiles on purpose).
_FWD = autotuned(_fwd_kernel, [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 3),
                               (128, 128, 8, 2), (64, 64, 4, 4)], interpreter=(16, 32))  # fmt: skip
_DKDV = autotuned(_bwd_dkdv_kernel, [(32, 128, 4, 5), (64, 128, 8, 3), (32, 64, 4, 4),
                                     (64, 64, 4, 3)], interpreter=(16, 32))  # fmt: skip
_DQ = autotuned(_bwd_dq_kernel, [(128, 32, 4, 5), (128, 64, 8, 3), (64, 32, 4, 4),
                                 (64, 64, 4, 3)], interpreter=(32, 16))  # fmt: skip


def attention_forward(q, k, v, ends, bias):
    """Launch the forward kernel: (out (B, H, Lq, D), lse (B, H, Lq) float32, base 2).

    q, k, v of any strides; ``ends`` (B, Lq) int32 contiguous; ``bias`` None or any strides.
    """
    B, H, Lq, D = q.shape
    H_kv, Lk = k.shape[1], k.shape[2]
    out = q.new_empty(q.shape)  # contiguous whatever q's strides (the delta pre-pass needs it)
    lse = torch.empty(B, H, Lq, device=q.device, dtype=torch.float32)
    _FWD.launch(
        lambda meta: (triton.cdiv(Lq, meta["BLOCK_M"]), B * H),
        q, k, v, ends, bias if bias is not None else q, out, lse,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(),
        ends.stride(0), *bias_strides(bias),
        H, H // H_kv, Lq, Lk, length_bucket(Lq, Lk), D**-0.5 * LOG2E,
        HAS_BIAS=bias is not None, HEAD_DIM=D,
    )  # fmt: skip
    return out, lse


def attention_backward(grad_out, q, k, v, ends, bias, out, lse):
    """Launch the backward kernels: (dq, dk, dv) for the forward's saved tensors."""
    B, H, Lq, D = q.shape
    H_kv, Lk = k.shape[1], k.shape[2]
    grad_out = grad_out.contiguous()
    delta = torch.empty_like(lse)  # (B, H, Lq)
    _bwd_delta_kernel[(triton.cdiv(B * H * Lq, 64),)](out, grad_out, delta, B * H * Lq,
                                                      HEAD_DIM=D, BLOCK_M=64)  # fmt: skip
    scale = D**-0.5
    dq, dk, dv = q.new_empty(q.shape), k.new_empty(k.shape), k.new_empty(k.shape)  # contiguous
    bias_arg = bias if bias is not None else q
    common = (
        *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(),
        ends.stride(0), *bias_strides(bias),
    )  # fmt: skip
    bucket = length_bucket(Lq, Lk)
    _DKDV.launch(
        lambda meta: (triton.cdiv(Lk, meta["BLOCK_N"]), B * H_kv),
        q, k, v, ends, bias_arg, grad_out, lse, delta, dk, dv,
        *common, *dk.stride(), H, H_kv, H // H_kv, Lq, Lk, bucket, scale * LOG2E, scale,
        HAS_BIAS=bias is not None, HEAD_DIM=D,
    )  # fmt: skip
    _DQ.launch(
        lambda meta: (triton.cdiv(Lq, meta["BLOCK_M"]), B * H),
        q, k, v, ends, bias_arg, grad_out, lse, delta, dq,
        *common, *dq.stride(), H, H // H_kv, Lq, Lk, bucket, scale * LOG2E, scale,
        HAS_BIAS=bias is not None, HEAD_DIM=D,
    )  # fmt: skip
    return dq, dk, dv
