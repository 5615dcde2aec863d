"""A compiled decode step: static shapes, caches that live across calls, CUDA graphs on GPUs.

The eager loop slices the KV cache to ``[0, start + n)`` and passes ``start`` as a Python int, so
every step has new shapes. Here ``start`` is a 0-d tensor, keys are written with ``index_copy_``
and attention runs over the whole preallocated cache with ``kv_end`` masking its unwritten tail:
one graph serves every step (gpt-fast style), and ``mode="reduce-overhead"`` replays it as a
CUDA graph.
"""

from __future__ import annotations

import torch

from mmgen.models.kv_cache import KVCache
from mmgen.models.transformer import ARTransformer


class CompiledDecoder:
    """Head outputs of one group of ``n`` rows against persistent caches, through ``torch.compile``.

    Args:
        model: the transformer (its weights are read live; no copy).
        mode: ``torch.compile`` mode; default ``"reduce-overhead"`` (CUDA graphs) on CUDA and
            ``"default"`` elsewhere.
    """

    def __init__(self, model: ARTransformer, mode: str | None = None):
        self.model = model
        if mode is None:
            mode = "reduce-overhead" if model.device.type == "cuda" else "default"
        self.mode = mode
        self.caches: list[KVCache] | None = None
        self._step = torch.compile(self._outputs, mode=mode, dynamic=False)

    def caches_for(self, batch_size: int, max_length: int) -> list[KVCache]:
        """The persistent caches, reallocated only when the batch or length changes (stale
        entries are harmless: every step's ``kv_end`` only reaches what this call wrote)."""
        c = self.caches
        if c is None or c[0].k.shape[0] != batch_size or c[0].max_length != max_length:
            self.caches = self.model.make_caches(batch_size, max_length)
        return self.caches

    def _outputs(self, inputs, positions, kv_end, start):
        hidden = self.model(positions, kv_end, inputs=inputs, caches=self.caches, start=start)
        return self.model.head(hidden)

    def __call__(self, inputs, positions, kv_end, start: int) -> torch.Tensor:
        """Inputs (B', n, ...) of rows ``[start, start + n)`` -> the head's (B', n, ...)
        outputs (logits)."""
        start_t = torch.tensor(start, device=inputs.device)
        return self._step(inputs, positions, kv_end, start_t).clone()  # graph outputs are reused
