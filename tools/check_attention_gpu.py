"""Our Triton kernels on a GPU against fp32 math SDPA: bf16 / fp16, head dims 64 and 128,
causal, frame-causal and VAR layouts, GQA, bias, strided views, the split-key decode kernel
against a NaN-tailed static cache, and torch.compile; forward and gradients.

    python tools/check_attention_gpu.py             # on a CUDA GPU
    python tools/check_attention_gpu.py --dry-run   # tiny shapes on CPU (Triton interpreter)

Prints one line per check ending in ``ok`` or ``FAIL`` and exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from mmgen.utils.benchmark import ATTENTION_TOLERANCE as TOLERANCE
from mmgen.utils.benchmark import relative_error as rel

COMPILE_TOLERANCE = 1e-3


class Checks:
    """Runs the cases on one device, prints a line each, remembers the failures."""

    def __init__(self, device: torch.device, length: int, frame: int, var_sides: tuple):
        from mmgen.models.attention import kv_end_from_group_ids

        self.device, self.L, self.failed, self.count = device, length, [], 0
        self.kv_end = kv_end_from_group_ids
        self.frame, self.var_sides = frame, var_sides

    def verdict(self, name: str, errors: list[float], tolerance: float) -> None:
        ok = all(e == e for e in errors) and max(errors) < tolerance  # NaN never passes
        self.count += 1
        if not ok:
            self.failed.append(name)
        print(f"{name:68} " + " ".join(f"{e:.1e}" for e in errors), "ok" if ok else "FAIL")

    def random(self, shape, dtype, generator, strided=False):
        """(B, H, L, D), or a transposed (B, L, H, D) view when ``strided``."""
        B, H, L, D = shape
        if strided:
            x = torch.randn(B, L, H, D, device=self.device, generator=generator, dtype=dtype)
            return x.transpose(1, 2).requires_grad_()
        return torch.randn(shape, device=self.device, generator=generator, dtype=dtype,
                           requires_grad=True)  # fmt: skip

    def attention(self, name, B, H, H_kv, Lq, Lk, D, kv_end, dtype, bias=None, strided=False):
        """Forward and q/k/v gradients of the prefill kernel against fp32 SDPA."""
        from mmgen.kernels import group_causal_attention, group_causal_attention_sdpa

        g = torch.Generator(device=self.device).manual_seed(0)
        q = self.random((B, H, Lq, D), dtype, g, strided)
        k, v = (self.random((B, H_kv, Lk, D), dtype, g, strided) for _ in range(2))
        out = group_causal_attention(q, k, v, kv_end, bias)
        grad = torch.randn_like(out)
        out.backward(grad)
        ref_in = [x.detach().float().requires_grad_() for x in (q, k, v)]
        ref = group_causal_attention_sdpa(*ref_in, kv_end, bias)
        ref.backward(grad.float())
        errors = [rel(out, ref)] + [rel(x.grad, r.grad) for x, r in zip((q, k, v), ref_in)]
        self.verdict(f"{name} {str(dtype)[6:]} D{D} (out dq dk dv)", errors, TOLERANCE[dtype])

    def decode(self, B, H, H_kv, rows, D, written, cache, splits, dtype):
        """The split-key decode kernel (no grad) against a static cache whose unwritten tail is
        NaN: it must never be read."""
        from mmgen.kernels import group_causal_attention, group_causal_attention_sdpa
        from mmgen.kernels.triton_decode import decode_attention

        g = torch.Generator(device=self.device).manual_seed(1)
        q = torch.randn(B, H, rows, D, device=self.device, generator=g, dtype=dtype)
        k = torch.randn(B, H_kv, cache, D, device=self.device, generator=g, dtype=dtype)
        v = torch.randn(B, H_kv, cache, D, device=self.device, generator=g, dtype=dtype)
        k[:, :, written:] = float("nan")
        v[:, :, written:] = float("nan")
        kv_end = torch.arange(written - rows + 1, written + 1, device=self.device,
                              dtype=torch.int32)  # fmt: skip
        with torch.no_grad():
            out = decode_attention(q, k, v, kv_end, num_splits=splits)
            via_dispatch = group_causal_attention(q, k, v, kv_end)
        ref = group_causal_attention_sdpa(q.float(), k[:, :, :written].float(),
                                          v[:, :, :written].float(), kv_end)  # fmt: skip
        name = f"decode B{B} H{H}/{H_kv} q{rows} {written}/{cache} splits {splits} D{D}"
        self.verdict(name + " (kernel dispatch)", [rel(out, ref), rel(via_dispatch, ref)],
                     TOLERANCE[dtype])  # fmt: skip

    def compiled(self, B, H, L, D, dtype):
        """torch.compile through the custom ops: forward and gradients equal to eager."""
        from mmgen.kernels import group_causal_attention

        g = torch.Generator(device=self.device).manual_seed(2)
        q, k, v = (torch.randn(B, H, L, D, device=self.device, generator=g, dtype=dtype)
                   for _ in range(3))  # fmt: skip
        kv_end = self.kv_end(torch.arange(L, device=self.device) // self.frame)
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
        self.verdict("torch.compile(fullgraph) vs eager (out dq dk dv)", errors,
                     COMPILE_TOLERANCE)  # fmt: skip

    def run(self, dtypes, head_dims, decode_cases, batch_scale: int) -> None:
        L, device, b = self.L, self.device, batch_scale
        causal = torch.arange(1, L + 1, device=device, dtype=torch.int32)
        frames = self.kv_end(torch.arange(L, device=device) // self.frame)
        sides = torch.tensor(self.var_sides)
        scales = torch.repeat_interleave(torch.arange(len(sides)), sides * sides).to(device)
        var, n_var = self.kv_end(scales), int((sides * sides).sum())
        for dtype in dtypes:
            for D in head_dims:
                self.attention("causal", 2, 8 // b, 8 // b, L, L, D, causal, dtype)
                self.attention("frame-causal GQA 8/2", 2, 8 // b, 2, L, L, D, frames, dtype)
                self.attention(f"VAR scales {self.var_sides[-1]}", 4 // b, 4, 4, n_var, n_var,
                               D, var, dtype)  # fmt: skip
        frame = torch.arange(L, device=device) // self.frame
        bias = -0.1 * (frame[:, None] - frame[None, :]).abs().float()
        D = head_dims[0]
        self.attention("frame-causal + FlexRoPE bias", 2, 4, 4, L, L, D, frames, dtypes[0], bias)
        cache_end = torch.full((16,), 4 * L, device=device, dtype=torch.int32)
        self.attention("decode rows with grad", 4 // b, 16 // b, 4 // b, 16, 4 * L, head_dims[-1],
                       cache_end, dtypes[0])  # fmt: skip
        strided = self.kv_end(torch.arange(L, device=device) // (self.frame // 4))
        self.attention("frame-causal, strided (B, L, H, D) views", 2, 8 // b, 4 // b, L, L,
                       head_dims[-1], strided, dtypes[0], strided=True)  # fmt: skip
        for splits in (None, 1, 4):
            for case in decode_cases:
                self.decode(*case, splits, dtypes[0])
        self.compiled(2, 8 // b, 2 * L, head_dims[-1], dtypes[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU (interpreter)")
    args = parser.parse_args(argv)
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before any Triton kernel is imported
        # float16: the interpreter's bf16 dot is wrong on CPU tensors (GPUs are unaffected)
        checks = Checks(torch.device("cpu"), length=64, frame=16, var_sides=(1, 2, 3, 4))
        decode_cases = [(2, 4, 4, 1, 16, 40, 48), (1, 4, 1, 4, 32, 70, 96)]
        checks.run((torch.float16,), (16, 32), decode_cases, batch_scale=4)
    elif not torch.cuda.is_available():
        raise SystemExit("check_attention_gpu needs a CUDA GPU (or --dry-run for a CPU run)")
    else:
        sides = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
        checks = Checks(torch.device("cuda"), length=1024, frame=256, var_sides=sides)
        decode_cases = [(16, 16, 16, 1, 64, 1025, 1100), (2, 16, 4, 16, 128, 3000, 4096)]
        checks.run((torch.bfloat16, torch.float16), (64, 128), decode_cases, batch_scale=1)
        from mmgen.kernels.triton_attention import _DKDV, _DQ, _FWD

        print("\nautotuned tiles (key: head dim, bias, length bucket, dtypes -> config):")
        for name, kernel in (("forward", _FWD), ("dK/dV", _DKDV), ("dQ", _DQ)):
            for key, config in kernel.best_configs.items():
                print(f"  {name:8} {key} -> {config}")
    print(f"\n{checks.count} checks, {len(checks.failed)} failed")
    for name in checks.failed:
        print(f"FAILED {name}")
    return 1 if checks.failed else 0


if __name__ == "__main__":
    sys.exit(main())
