"""Attention kernels for group-causal masks described by ``kv_end``.

Each query row ``i`` attends the key prefix ``[0, kv_end[i])``. This layer is pure torch (and,
later, Triton) and imports nothing else of mmgen.
"""

from mmgen.kernels.reference import group_causal_attention_sdpa, kv_end_mask

__all__ = ["group_causal_attention_sdpa", "kv_end_mask"]
