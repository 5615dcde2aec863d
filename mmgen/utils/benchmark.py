"""Helpers the benchmark scripts in ``tools/`` share (imports only torch)."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: relative error allowed against fp32 math SDPA, by the dtype the attention ran in
ATTENTION_TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 2e-2, torch.float32: 1e-4}


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||``, computed in float32."""
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def matmul_peak_tflops(
    device: torch.device, dtype: torch.dtype, measure_ms: Callable[[Callable], float]
) -> float:
    """TFLOP/s of one large square matmul (8192 on CUDA, 256 elsewhere) in ``dtype``, timed by
    ``measure_ms(fn) -> milliseconds``: the peak a benchmark's utilisation is measured against
    in the same run (datasheet figures assume clocks and power a given card may not reach)."""
    n = 8192 if device.type == "cuda" else 256
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / (measure_ms(lambda: a @ b) * 1e-3) / 1e12
