"""Our Triton kernel on a GPU against fp32 math SDPA: bf16 / fp16, head dims 64 and 128,
causal, frame-causal and VAR layouts, GQA, bias, decode rows; forward and gradients.

    python tools/check_attention_gpu.py
"""

import torch
from mmgen.kernels import group_causal_attention, group_causal_attention_sdpa

from mmgen.models.attention import kv_end_from_group_ids


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def check(name, B, H, H_kv, Lq, Lk, D, kv_end, dtype, bias=None, strided_views=False):
    g = torch.Generator(device="cuda").manual_seed(0)

    def make(heads, length):  # (B, heads, length, D), optionally a transposed (B, L, H, D)
        if strided_views:
            x = torch.randn(B, length, heads, D, device="cuda", generator=g, dtype=dtype)
            return x.transpose(1, 2).requires_grad_()
        return torch.randn(B, heads, length, D, device="cuda", generator=g, dtype=dtype,
                           requires_grad=True)  # fmt: skip

    q, k, v = make(H, Lq), make(H_kv, Lk), make(H_kv, Lk)
    out = group_causal_attention(q, k, v, kv_end, bias)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref_in = [x.detach().float().requires_grad_() for x in (q, k, v)]
    ref = group_causal_attention_sdpa(*ref_in, kv_end, bias)
    ref.backward(grad.float())
    errors = [rel(out, ref)] + [rel(x.grad, r.grad) for x, r in zip((q, k, v), ref_in)]
    verdict = "ok" if max(errors) < 2e-2 and all(e == e for e in errors) else "FAIL"
    print(f"{name:50} {str(dtype):15} D{D:<4} " + " ".join(f"{e:.1e}" for e in errors), verdict)


L = 1024
causal = torch.arange(1, L + 1, device="cuda", dtype=torch.int32)
frames = kv_end_from_group_ids(torch.arange(L, device="cuda") // 256)
sides = torch.tensor([1, 2, 3, 4, 5, 6, 8, 10, 13, 16])
var = kv_end_from_group_ids(torch.repeat_interleave(torch.arange(10), sides * sides).cuda())
print(f"{'case':50} {'dtype':15} D    out     dq      dk      dv")
for dtype in (torch.bfloat16, torch.float16):
    for D in (64, 128):
        check("causal", 2, 8, 8, L, L, D, causal, dtype)
        check("frame-causal GQA 8/2", 2, 8, 2, L, L, D, frames, dtype)
        check("VAR-256 (680)", 4, 4, 4, 680, 680, D, var, dtype)
frame = torch.arange(L, device="cuda") // 256
bias = -0.1 * (frame[:, None] - frame[None, :]).abs().float()
check("frame-causal + FlexRoPE bias", 2, 4, 4, L, L, 64, frames, torch.bfloat16, bias)
check("decode 16 rows vs 4096 cache (with grad)", 4, 16, 4, 16, 4096, 128,
      torch.full((16,), 4096, device="cuda", dtype=torch.int32), torch.bfloat16)  # fmt: skip
strided = kv_end_from_group_ids(torch.arange(L, device="cuda") // 64)
check("frame-causal, strided (B, L, H, D) views", 2, 8, 4, L, L, 128, strided, torch.bfloat16,
      strided_views=True)  # fmt: skip


def check_decode(B, H, H_kv, rows, D, written, cache, splits):
    """The split-key decode kernel (no grad) against a static cache whose unwritten tail is
    NaN: it must never be read."""
    from mmgen.kernels.triton_decode import decode_attention

    g = torch.Generator(device="cuda").manual_seed(1)
    q = torch.randn(B, H, rows, D, device="cuda", generator=g, dtype=torch.bfloat16)
    k = torch.randn(B, H_kv, cache, D, device="cuda", generator=g, dtype=torch.bfloat16)
    v = torch.randn(B, H_kv, cache, D, device="cuda", generator=g, dtype=torch.bfloat16)
    k[:, :, written:] = float("nan")
    v[:, :, written:] = float("nan")
    kv_end = torch.arange(written - rows + 1, written + 1, device="cuda", dtype=torch.int32)
    with torch.no_grad():
        out = decode_attention(q, k, v, kv_end, num_splits=splits)
        via_dispatch = group_causal_attention(q, k, v, kv_end)
    ref = group_causal_attention_sdpa(*(x[:, :, :written].float() if x is not q else x.float()
                                        for x in (q, k, v)), kv_end)  # fmt: skip
    errors = [rel(out, ref), rel(via_dispatch, ref)]
    verdict = "ok" if max(errors) < 2e-2 and all(e == e for e in errors) else "FAIL"
    name = f"decode B{B} H{H}/{H_kv} q{rows} {written}/{cache} splits {splits}"
    print(f"{name:50} D{D:<4} " + " ".join(f"{e:.1e}" for e in errors), verdict)


for splits in (None, 1, 4):
    check_decode(16, 16, 16, 1, 64, 1025, 1100, splits)  # the decode configuration
    check_decode(2, 16, 4, 16, 128, 3000, 4096, splits)  # 16 draft rows, GQA 4:1


def check_compiled():
    """torch.compile through the custom ops: forward and gradients equal to eager."""
    g = torch.Generator(device="cuda").manual_seed(2)
    q, k, v = (torch.randn(2, 8, 2048, 128, device="cuda", generator=g, dtype=torch.bfloat16)
               for _ in range(3))  # fmt: skip
    kv_end = kv_end_from_group_ids(torch.arange(2048, device="cuda") // 256)
    grad = torch.randn_like(q)
    results = []
    for attention in (
        group_causal_attention,
        torch.compile(group_causal_attention, fullgraph=True),
    ):
        leaves = [x.clone().requires_grad_() for x in (q, k, v)]
        out = attention(*leaves, kv_end)
        out.backward(grad)
        results.append([out] + [x.grad for x in leaves])
    errors = [rel(a, b) for a, b in zip(*results)]
    verdict = "ok" if max(errors) < 1e-3 else "FAIL"
    print(f"{'torch.compile(fullgraph) vs eager':50} " + " ".join(f"{e:.1e}" for e in errors),
          verdict)  # fmt: skip


check_compiled()
from mmgen.kernels.triton_attention import _DKDV, _DQ, _FWD  # noqa: E402

print("\nautotuned tiles (key: head dim, bias, length bucket, dtypes -> config):")
for name, kernel in (("forward", _FWD), ("dK/dV", _DKDV), ("dQ", _DQ)):
    for key, config in kernel.best_configs.items():
        print(f"  {name:8} {key} -> {config}")
