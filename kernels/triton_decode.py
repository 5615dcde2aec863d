"""Split-key decode attention: a few query rows against a long KV cache (FlashDecoding style).

A decode step has 1-16 query rows per head, so the prefill kernel's 64-128-row tiles would be
almost empty and one program per head would read the whole cache alone. Here one program takes
all query heads of one KV head (GQA rows packed as ``(group head, row)``: the cache is read
once per KV head) and one slice of the keys; with ``num_splits > 1`` the slices' partial
softmax states (running max, sum, unnormalised output) are merged by a second small kernel.
The split count depends only on static shapes, so a CUDA graph captures both launches; the
kernel reads ``kv_end`` from memory and never touches keys past the rows' largest prefix end.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from mmgen.kernels.triton_attention import fwd_tile
from mmgen.kernels.triton_common import LOG2E, bias_strides, interpreting, kv_end_rows

MAX_QUERY_ROWS = 16  # per head
MAX_PACKED_ROWS = 128  # per program: query heads of one KV head x query rows
BLOCK_N = 64  # keys per tile; each split covers a multiple of it


@triton.jit
def _decode_kernel(Q, K, V, KV_END, BIAS, OUT, PART_ACC, PART_M, PART_L,
                   stride_qb, stride_qh, stride_qm, stride_qd,
                   stride_kb, stride_kh, stride_kn, stride_kd,
                   stride_vb, stride_vh, stride_vn, stride_vd,
                   stride_ob, stride_oh, stride_om, stride_od,
                   stride_eb, stride_bb, stride_bm, stride_bn,
                   H_KV, GROUP, Lq, Lk, keys_per_split, qk_scale,
                   HAS_BIAS: tl.constexpr, NUM_SPLITS: tl.constexpr, BLOCK_R: tl.constexpr,
                   BLOCK_N: tl.constexpr, HEAD_DIM: tl.constexpr):  # fmt: skip
    pid_s = tl.program_id(0)
    pid_bhk = tl.program_id(1)
    b = pid_bhk // H_KV
    hk = pid_bhk % H_KV
    offs_r = tl.arange(0, BLOCK_R)  # packed row r = g * Lq + m
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    m = offs_r % Lq
    h = hk * GROUP + offs_r // Lq
    r_ok = offs_r < GROUP * Lq
    q = tl.load(Q + b * stride_qb + h[:, None] * stride_qh + m[:, None] * stride_qm
                + offs_d[None, :] * stride_qd, mask=r_ok[:, None], other=0.0)  # fmt: skip
    end = tl.minimum(tl.load(KV_END + b * stride_eb + m, mask=r_ok, other=0), Lk)
    key_lo = pid_s * keys_per_split
    key_hi = tl.minimum(key_lo + keys_per_split, tl.max(end, 0))
    k_base = K + b * stride_kb + hk * stride_kh
    v_base = V + b * stride_vb + hk * stride_vh
    m_i = tl.full([BLOCK_R], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, HEAD_DIM], tl.float32)
    for start_n in range(key_lo, key_hi, BLOCK_N):  # keys past a row's end are masked
        acc, m_i, l_i = fwd_tile(acc, m_i, l_i, q, k_base, v_base, start_n, m, offs_n,
                                  offs_d, end, r_ok, BIAS + b * stride_bb, stride_kn,
                                  stride_kd, stride_vn, stride_vd, stride_bm, stride_bn,
                                  key_hi, qk_scale, MASKED=True, HAS_BIAS=HAS_BIAS)  # fmt: skip
    if NUM_SPLITS == 1:
        out = acc / tl.where(l_i == 0.0, 1.0, l_i)[:, None]
        tl.store(OUT + b * stride_ob + h[:, None] * stride_oh + m[:, None] * stride_om
                 + offs_d[None, :] * stride_od, out.to(OUT.dtype.element_ty),
                 mask=r_ok[:, None])  # fmt: skip
    else:
        part = (pid_bhk * NUM_SPLITS + pid_s) * BLOCK_R + offs_r
        tl.store(PART_ACC + part[:, None] * HEAD_DIM + offs_d[None, :], acc)
        tl.store(PART_M + part, m_i)
        tl.store(PART_L + part, l_i)


@triton.jit
def _combine_kernel(PART_ACC, PART_M, PART_L, OUT,
                    stride_ob, stride_oh, stride_om, stride_od, H_KV, GROUP, Lq,
                    NUM_SPLITS: tl.constexpr, BLOCK_R: tl.constexpr,
                    HEAD_DIM: tl.constexpr):  # fmt: skip
    """Merge the splits' softmax states of one KV head's packed rows into the output."""
    pid_bhk = tl.program_id(0)
    b = pid_bhk // H_KV
    hk = pid_bhk % H_KV
    offs_s = tl.arange(0, NUM_SPLITS)
    offs_r = tl.arange(0, BLOCK_R)
    offs_d = tl.arange(0, HEAD_DIM)
    parts = (pid_bhk * NUM_SPLITS + offs_s[:, None]) * BLOCK_R + offs_r[None, :]  # (S, R)
    m_max = tl.max(tl.load(PART_M + parts), 0)  # (R,)
    m_use = tl.where(m_max == float("-inf"), 0.0, m_max)
    total = tl.zeros([BLOCK_R], tl.float32)
    acc = tl.zeros([BLOCK_R, HEAD_DIM], tl.float32)
    for s in range(0, NUM_SPLITS):
        part = (pid_bhk * NUM_SPLITS + s) * BLOCK_R + offs_r
        weight = tl.exp2(tl.load(PART_M + part) - m_use)  # 0 for splits that saw nothing
        total += weight * tl.load(PART_L + part)
        acc += weight[:, None] * tl.load(PART_ACC + part[:, None] * HEAD_DIM + offs_d[None, :])
    out = acc / tl.where(total == 0.0, 1.0, total)[:, None]
    m = offs_r % Lq
    h = hk * GROUP + offs_r // Lq
    r_ok = offs_r < GROUP * Lq
    tl.store(OUT + b * stride_ob + h[:, None] * stride_oh + m[:, None] * stride_om
             + offs_d[None, :] * stride_od, out.to(OUT.dtype.element_ty),
             mask=r_ok[:, None])  # fmt: skip


def fits_decode(q: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether the decode kernel takes this call: at most 16 query rows, at most 128 packed
    rows per KV head."""
    rows = q.shape[2]
    return rows <= MAX_QUERY_ROWS and (q.shape[1] // k.shape[1]) * rows <= MAX_PACKED_ROWS


@functools.cache
def _multiprocessors(index: int) -> int:
    return torch.cuda.get_device_properties(index).multi_processor_count


def default_num_splits(programs: int, Lk: int, device: torch.device) -> int:
    """Key splits (a power of two <= 16) so that about two programs run per multiprocessor,
    each split keeping at least 256 keys."""
    if device.type != "cuda":
        return 1
    target = 2 * _multiprocessors(device.index if device.index is not None else 0)
    splits = 1
    while programs * splits < target and splits < 16 and Lk // (2 * splits) >= 256:
        splits *= 2
    return splits


def decode_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor,
    bias: torch.Tensor | None = None,
    num_splits: int | None = None,
) -> torch.Tensor:
    """Forward-only attention of a few query rows against a cache, rows seeing ``[0, kv_end)``.

    Args:
        q: (B, H, Lq, D) with Lq <= 16; k, v: (B, Hkv, Lk, D); any strides.
        kv_end: (Lq,) or (B, Lq) integer, absolute prefix ends in the cache.
        bias: optional constant (Lq, Lk) or (B, Lq, Lk) additive bias.
        num_splits: key slices (a power of two); default from the shapes and the device.

    Returns:
        (B, H, Lq, D) in q's dtype.
    """
    B, H, Lq, D = q.shape
    H_kv, Lk = k.shape[1], k.shape[2]
    group = H // H_kv
    ends = kv_end_rows(kv_end, B, Lq)
    if num_splits is None:
        num_splits = default_num_splits(B * H_kv, Lk, q.device)
    if num_splits < 1 or num_splits & (num_splits - 1):
        raise ValueError(f"num_splits must be a power of two, got {num_splits}")
    block_r = max(16, triton.next_power_of_2(group * Lq))
    keys_per_split = triton.cdiv(triton.cdiv(Lk, num_splits), BLOCK_N) * BLOCK_N
    out = q.new_empty(q.shape)
    parts = B * H_kv * num_splits * block_r
    part_acc = torch.empty(parts if num_splits > 1 else 1, D, device=q.device,
                           dtype=torch.float32)  # fmt: skip
    part_m = torch.empty(parts if num_splits > 1 else 1, device=q.device, dtype=torch.float32)
    part_l = torch.empty_like(part_m)
    warps = {} if interpreting() else {"num_warps": 4, "num_stages": 3}
    _decode_kernel[(num_splits, B * H_kv)](
        q, k, v, ends, bias if bias is not None else q, out, part_acc, part_m, part_l,
        *q.stride(), *k.stride(), *v.stride(), *out.stride(), ends.stride(0),
        *bias_strides(bias), H_kv, group, Lq, Lk, keys_per_split, D**-0.5 * LOG2E,
        HAS_BIAS=bias is not None, NUM_SPLITS=num_splits, BLOCK_R=block_r, BLOCK_N=BLOCK_N,
        HEAD_DIM=D, **warps,
    )  # fmt: skip
    if num_splits > 1:
        _combine_kernel[(B * H_kv,)](
            part_acc, part_m, part_l, out, *out.stride(), H_kv, group, Lq,
            NUM_SPLITS=num_splits, BLOCK_R=block_r, HEAD_DIM=D,
        )  # fmt: skip
    return out
