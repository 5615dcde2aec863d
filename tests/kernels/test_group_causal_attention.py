"""Our Triton kernel and the FlexAttention backend against an fp64 SDPA reference: forward and
gradients, for every layout the engine builds. On a CUDA host everything runs on the GPU (real
Triton, fp64 reference on the GPU); elsewhere on CPU tensors under the Triton interpreter."""

import pytest
import torch
from mmgen.kernels import (
    group_causal_attention,
    group_causal_attention_flex,
    group_causal_attention_sdpa,
    triton_runs_on,
)

from mmgen.models.attention import kv_end_from_group_ids

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pytestmark = pytest.mark.skipif(
    not triton_runs_on(DEVICE),
    reason="needs CUDA, or TRITON_INTERPRET=1 on CPU (tests/conftest.py sets it without CUDA)",
)
# relative error allowed against fp64: the interpreter computes dots in full precision; on a
# GPU, Triton's fp32 dots use TF32 and half-precision dots accumulate in fp32
TOLERANCE = {
    "cpu": {torch.float32: 1e-5, torch.float16: 5e-3},
    "cuda": {torch.float32: 5e-3, torch.float16: 1e-2},
}[DEVICE.type]


def causal(length):
    return kv_end_from_group_ids(torch.arange(length))


def frames(length, frame=12):
    return kv_end_from_group_ids(torch.arange(length) // frame)


def scales(sides=(1, 2, 3, 4, 5)):  # VAR: one group per scale of side s (s*s tokens)
    sizes = torch.tensor([s * s for s in sides])
    return kv_end_from_group_ids(torch.repeat_interleave(torch.arange(len(sides)), sizes))


def token_shuffle(text=9, groups=10, shuffle=4):  # text prefix, then groups of s*s codes
    ids = torch.cat(
        [torch.zeros(text, dtype=torch.long), 1 + torch.arange(groups * shuffle) // shuffle]
    )
    return kv_end_from_group_ids(ids)


def random_boundaries(length, generator):  # any non-decreasing kv_end with kv_end[i] >= 1
    return torch.randint(1, length + 1, (length,), generator=generator).sort().values.int()


LAYOUTS = {
    "causal": lambda g: causal(45),
    "frame_causal": lambda g: frames(60),
    "scale": lambda g: scales(),
    "token_shuffle": lambda g: token_shuffle(),
    "random": lambda g: random_boundaries(53, g),
}


def inputs(B, H, H_kv, Lq, Lk, D, dtype, seed):
    """q, k, v drawn on the CPU (the same values on every host), placed on DEVICE."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Lq, D, generator=g).to(DEVICE, dtype)
    k = torch.randn(B, H_kv, Lk, D, generator=g).to(DEVICE, dtype)
    v = torch.randn(B, H_kv, Lk, D, generator=g).to(DEVICE, dtype)
    return q, k, v, g


def on_device(*tensors):
    return [None if t is None else t.to(DEVICE) for t in tensors]


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def check_against_reference(attention, q, k, v, kv_end, bias=None, tol=None, grads=True):
    tol = tol or TOLERANCE[q.dtype]
    q, k, v, kv_end, bias = on_device(q, k, v, kv_end, bias)
    leaves = [x.clone().requires_grad_(grads) for x in (q, k, v)]
    out = attention(*leaves, kv_end, bias)
    ref_leaves = [x.detach().double().requires_grad_(grads) for x in (q, k, v)]
    ref = group_causal_attention_sdpa(*ref_leaves, kv_end, None if bias is None else bias.double())
    assert out.dtype == q.dtype and out.shape == q.shape
    assert rel(out, ref) < tol, ("forward", rel(out, ref))
    if not grads:
        return
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out)
    out.backward(grad)
    ref.backward(grad.double())
    for name, mine, theirs in zip("qkv", leaves, ref_leaves):
        assert rel(mine.grad, theirs.grad) < tol, (name, rel(mine.grad, theirs.grad))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(2, 2, 16), (4, 2, 32), (2, 1, 64)])
def test_triton_kernel_matches_fp64_reference(layout, heads, kv_heads, head_dim):
    g = torch.Generator().manual_seed(0)
    kv_end = LAYOUTS[layout](g)
    L = kv_end.numel()
    q, k, v, _ = inputs(2, heads, kv_heads, L, L, head_dim, torch.float32, seed=1)
    check_against_reference(group_causal_attention, q, k, v, kv_end)


def test_triton_kernel_per_batch_kv_end_and_frame_distance_bias():
    g = torch.Generator().manual_seed(3)
    kv_end = torch.stack([frames(48, 8), random_boundaries(48, g)])  # (B, L): one per sample
    frame = torch.arange(48) // 8
    bias = -0.2 * (frame[:, None] - frame[None, :]).abs().float()  # FlexRoPE-style decay
    q, k, v, _ = inputs(2, 4, 2, 48, 48, 16, torch.float32, seed=4)
    check_against_reference(group_causal_attention, q, k, v, kv_end, bias)
    check_against_reference(group_causal_attention, q, k, v, kv_end, bias.expand(2, 48, 48) * 0.5)


def test_triton_kernel_decode_rows_against_a_long_cache():
    # one group of 4 new rows against 70 cached keys (absolute kv_end), and single-token decode
    q, k, v, _ = inputs(3, 4, 1, 4, 70, 32, torch.float32, seed=5)
    check_against_reference(
        group_causal_attention, q, k, v, torch.full((4,), 70, dtype=torch.int32)
    )
    check_against_reference(
        group_causal_attention, q, k, v, torch.arange(67, 71, dtype=torch.int32)
    )
    check_against_reference(
        group_causal_attention, q[:, :, :1], k, v, torch.tensor([70], dtype=torch.int32)
    )


def test_triton_kernel_half_precision():
    kv_end = frames(40, 10)
    q, k, v, _ = inputs(1, 2, 2, 40, 40, 32, torch.float16, seed=6)
    check_against_reference(group_causal_attention, q, k, v, kv_end)


def test_rows_that_attend_nothing_output_zeros_and_pass_no_gradient():
    # 40 rows that need gradients: the prefill kernel (forward and backward)
    ends = [0] * 6 + [3] * 6 + [9] * 12 + [20] * 8 + [40] * 8
    kv_end = torch.tensor(ends, dtype=torch.int32, device=DEVICE)
    empty = kv_end == 0
    q, k, v, _ = inputs(1, 2, 2, 40, 40, 16, torch.float32, seed=8)
    leaves = [x.clone().requires_grad_() for x in (q, k, v)]
    out = group_causal_attention(*leaves, kv_end)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out)
    out.backward(grad)
    assert out[:, :, empty].abs().max() == 0
    assert leaves[0].grad[:, :, empty].abs().max() == 0
    # every other row, and k's and v's gradients, as if the empty rows were not there
    ref_leaves = [x.detach().double().requires_grad_() for x in (q[:, :, ~empty], k, v)]
    ref = group_causal_attention_sdpa(*ref_leaves, kv_end[~empty])
    ref.backward(grad[:, :, ~empty].double())
    tol = TOLERANCE[torch.float32]
    assert rel(out[:, :, ~empty], ref) < tol
    assert rel(leaves[0].grad[:, :, ~empty], ref_leaves[0].grad) < tol
    assert rel(leaves[1].grad, ref_leaves[1].grad) < tol
    assert rel(leaves[2].grad, ref_leaves[2].grad) < tol
    # 16 rows without gradients: the decode kernel
    with torch.no_grad():
        short = group_causal_attention(q[:, :, :16], k, v, kv_end[:16])
    assert short[:, :, :6].abs().max() == 0
    assert rel(short[:, :, 6:], ref[:, :, :10]) < tol


def test_triton_kernel_input_errors_name_the_problem():
    q, k, v, _ = inputs(1, 3, 2, 8, 8, 16, torch.float32, seed=9)
    with pytest.raises(ValueError, match="multiple of kv heads"):
        group_causal_attention(q, k, v, causal(8))
    q, k, v, _ = inputs(1, 2, 2, 8, 8, 24, torch.float32, seed=9)
    with pytest.raises(ValueError, match="power-of-two head dim"):
        group_causal_attention(q, k, v, causal(8))


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_flex_backend_matches_fp64_reference(layout):
    # forward only: FlexAttention has no backward on CPU (it runs on GPUs, compiled)
    g = torch.Generator().manual_seed(0)
    kv_end = LAYOUTS[layout](g)
    L = kv_end.numel()
    q, k, v, _ = inputs(2, 4, 2, L, L, 16, torch.float32, seed=2)
    check_against_reference(group_causal_attention_flex, q, k, v, kv_end, grads=False)
    frame = torch.arange(L) // 7  # on the CPU: check_against_reference moves it
    bias = -0.1 * (frame[:, None] - frame[None, :]).abs().float()
    check_against_reference(group_causal_attention_flex, q, k, v, kv_end, bias, grads=False)


@pytest.mark.parametrize("num_splits", [1, 2, 4])
@pytest.mark.parametrize(("heads", "kv_heads", "rows"), [(4, 1, 4), (8, 2, 1), (2, 2, 16)])
def test_decode_kernel_against_a_static_cache(num_splits, heads, kv_heads, rows):
    from mmgen.kernels.triton_decode import decode_attention

    # a cache of 200 slots of which the first 130 + rows are written: the rest must be ignored
    q, k, v, g = inputs(2, heads, kv_heads, rows, 200, 32, torch.float32, seed=11)
    written = 130 + rows
    k[:, :, written:] = float("nan")  # an unwritten tail that would poison any read of it
    v[:, :, written:] = float("nan")
    kv_end = torch.arange(131, written + 1, dtype=torch.int32, device=DEVICE)  # (rows,)
    out = decode_attention(q, k, v, kv_end, num_splits=num_splits)
    ref = group_causal_attention_sdpa(q.double(), k[:, :, :written].double(),
                                      v[:, :, :written].double(), kv_end)  # fmt: skip
    assert rel(out, ref) < TOLERANCE[torch.float32]


def test_decode_kernel_bias_per_sample_ends_and_empty_rows():
    from mmgen.kernels.triton_decode import decode_attention

    q, k, v, g = inputs(2, 4, 2, 3, 90, 16, torch.float32, seed=12)
    kv_end = torch.tensor([[0, 40, 41], [88, 89, 90]], dtype=torch.int32, device=DEVICE)
    bias = -0.3 * torch.rand(2, 3, 90, generator=g).to(DEVICE)
    for splits in (1, 2):
        out = decode_attention(q, k, v, kv_end, bias, num_splits=splits)
        assert out[0, :, 0].abs().max() == 0  # a row that sees nothing outputs zeros
        ref = group_causal_attention_sdpa(q[:, :, 1:].double(), k.double(), v.double(),
                                          kv_end[:, 1:], bias[:, 1:].double())  # fmt: skip
        assert rel(out[:, :, 1:], ref) < TOLERANCE[torch.float32]
    with pytest.raises(ValueError, match="power of two"):
        decode_attention(q, k, v, kv_end, num_splits=3)


def test_short_queries_without_grad_take_the_decode_kernel(monkeypatch):
    import mmgen.kernels.triton_ops as ops

    calls = []
    real = ops.decode_attention
    monkeypatch.setattr(ops, "decode_attention", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    q, k, v, _ = inputs(1, 4, 2, 2, 70, 16, torch.float32, seed=13)
    kv_end = torch.tensor([69, 70], dtype=torch.int32, device=DEVICE)
    with torch.no_grad():
        fast = group_causal_attention(q, k, v, kv_end)
    assert calls == [1]
    slow = group_causal_attention(q.requires_grad_(), k, v, kv_end)  # needs grad: prefill kernel
    assert calls == [1]
    assert rel(fast, slow.detach()) < TOLERANCE[torch.float32]


def test_triton_kernel_takes_strided_views_as_the_model_passes_them():
    # the model hands over (B, L, H, D) projections transposed to (B, H, L, D): no copies
    g = torch.Generator().manual_seed(14)
    q = torch.randn(2, 37, 4, 32, generator=g).to(DEVICE).transpose(1, 2)
    k = torch.randn(2, 37, 2, 32, generator=g).to(DEVICE).transpose(1, 2)
    v = torch.randn(2, 37, 2, 32, generator=g).to(DEVICE).transpose(1, 2)
    assert not q.is_contiguous() and not v.is_contiguous()
    check_against_reference(group_causal_attention, q, k, v, frames(37, 5))
    ends = torch.tensor([35, 36, 37], device=DEVICE)
    with torch.no_grad():  # decode kernel, strided too
        out = group_causal_attention(q[:, :, -3:], k, v, ends)
    ref = group_causal_attention_sdpa(*(x.double() for x in (q[:, :, -3:], k, v)), ends)
    assert rel(out, ref) < TOLERANCE[torch.float32]
