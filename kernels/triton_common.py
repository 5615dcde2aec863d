"""What the Triton attention kernels share: input checks, kv_end rows, bias strides, and the
launcher that autotunes on CUDA and uses fixed tiles under the interpreter."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import triton
from mmgen.kernels import triton_interpreting as interpreting

LOG2E = 1.4426950408889634


class autotuned:  # noqa: N801 (reads as a decorator-like wrapper at the call sites)
    """A kernel with ``BLOCK_M`` / ``BLOCK_N`` constexprs, launched two ways.

    On CUDA, ``triton.autotune`` picks among ``configs`` ((BLOCK_M, BLOCK_N, num_warps,
    num_stages) tuples) once per head dim, bias flag, length bucket and dtype, timing each with
    a short ``do_bench``. Under the interpreter the fixed ``interpreter`` tiles are used (small,
    so CPU tests stay quick).
    """

    KEY = ["HEAD_DIM", "HAS_BIAS", "LEN_KEY"]

    def __init__(self, kernel, configs: Sequence[tuple[int, int, int, int]],
                 interpreter: tuple[int, int]):  # fmt: skip
        self.kernel = kernel
        self.interpreter_blocks = {"BLOCK_M": interpreter[0], "BLOCK_N": interpreter[1]}
        self.tuned = triton.autotune(
            configs=[
                triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=s)
                for m, n, w, s in configs
            ],
            key=self.KEY,
            do_bench=lambda fn, quantiles: triton.testing.do_bench(
                fn, warmup=5, rep=20, quantiles=quantiles
            ),
        )(kernel)

    def launch(self, grid: Callable[[dict], tuple], *args, **constexprs) -> None:
        """Run with ``grid(meta)`` giving the launch grid from the chosen tile sizes."""
        if interpreting():
            blocks = self.interpreter_blocks
            self.kernel[grid(blocks)](*args, **constexprs, **blocks)
        else:
            self.tuned[grid](*args, **constexprs)

    @property
    def best_configs(self) -> dict:
        """Autotuning results so far: key -> chosen ``triton.Config`` (CUDA only)."""
        return dict(self.tuned.cache)


def length_bucket(Lq: int, Lk: int) -> int:
    """The autotuning key for lengths: the power of two at or above the longer one."""
    return triton.next_power_of_2(max(Lq, Lk))


def kv_end_rows(kv_end: torch.Tensor, batch: int, rows: int) -> torch.Tensor:
    """kv_end (Lq,) or (B, Lq) as a contiguous (B, Lq) int32 tensor."""
    ends = kv_end.to(torch.int32)
    return (ends.expand(batch, rows) if ends.dim() == 1 else ends).contiguous()


def bias_strides(bias: torch.Tensor | None) -> tuple[int, int, int]:
    """(batch, row, column) strides of an optional (Lq, Lk) or (B, Lq, Lk) bias."""
    if bias is None:
        return 0, 0, 0
    if bias.dim() == 2:
        return 0, bias.stride(0), bias.stride(1)
    return bias.stride(0), bias.stride(1), bias.stride(2)


def check_inputs(q: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None) -> None:
    """Raise ValueError for what the kernels cannot take."""
    D = q.shape[-1]
    if D < 16 or D & (D - 1):
        raise ValueError(f"triton attention needs a power-of-two head dim >= 16, got {D}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads {q.shape[1]} must be a multiple of kv heads {k.shape[1]}")
    if bias is not None and bias.requires_grad:
        raise ValueError("bias is a constant for the triton backend (no gradient flows to it)")
