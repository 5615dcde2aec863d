"""Our Triton kernel on a GPU against fp32 math SDPA: bf16 / fp16, head dims 64 and 128,
causal, frame-causal and VAR layouts, GQA, bias, decode rows; forward and gradients.

    python tools/check_attention_gpu.py
"""

import torch
from mmgen.kernels import group_causal_attention, group_causal_attention_sdpa

from mmgen.models.attention import kv_end_from_group_ids


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


def check(name, B, H, H_kv, Lq, Lk, D, kv_end, dtype, bias=None):
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(B, H, Lq, D, device="cuda", generator=g, dtype=dtype, requires_grad=True)
    k = torch.randn(B, H_kv, Lk, D, device="cuda", generator=g, dtype=dtype, requires_grad=True)
    v = torch.randn(B, H_kv, Lk, D, device="cuda", generator=g, dtype=dtype, requires_grad=True)
    out = group_causal_attention(q, k, v, kv_end, bias)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref_in = [x.detach().float().requires_grad_() for x in (q, k, v)]
    ref = group_causal_attention_sdpa(*ref_in, kv_end, bias)
    ref.backward(grad.float())
    errors = [rel(out, ref)] + [rel(x.grad, r.grad) for x, r in zip((q, k, v), ref_in)]
    verdict = "ok" if max(errors) < 2e-2 and all(e == e for e in errors) else "FAIL"
    print(f"{name:34} {str(dtype):15} D{D:<4} " + " ".join(f"{e:.1e}" for e in errors), verdict)


L = 1024
causal = torch.arange(1, L + 1, device="cuda", dtype=torch.int32)
frames = kv_end_from_group_ids(torch.arange(L, device="cuda") // 256)
sides = torch.tensor([1, 2, 3, 4, 5, 6, 8, 10, 13, 16])
var = kv_end_from_group_ids(torch.repeat_interleave(torch.arange(10), sides * sides).cuda())
print("case                               dtype           D    out   dq   dk   dv")
for dtype in (torch.bfloat16, torch.float16):
    for D in (64, 128):
        check("causal", 2, 8, 8, L, L, D, causal, dtype)
        check("frame-causal GQA 8/2", 2, 8, 2, L, L, D, frames, dtype)
        check("VAR-256 (680)", 4, 4, 4, 680, 680, D, var, dtype)
frame = torch.arange(L, device="cuda") // 256
bias = -0.1 * (frame[:, None] - frame[None, :]).abs().float()
check("frame-causal + FlexRoPE bias", 2, 4, 4, L, L, 64, frames, torch.bfloat16, bias)
check(
    "decode 16 rows vs 4096 cache",
    4,
    16,
    4,
    16,
    4096,
    128,
    torch.full((16,), 4096, device="cuda", dtype=torch.int32),
    torch.bfloat16,
)
