"""Sequence layouts: a condition segment, then the groups of an order; group ids, positions,
kv_end.

A sample is ``[condition segment][group 1][group 2]...``. The condition (prompt bytes with
BOS/EOS and padding, or one class token) is group 0: full attention inside it, a prefix for
everything after. An order (``mmgen.orders``) decides the rest: how many rows each group has,
where they sit in (t, h, w), and what they are fed. Every mask is group-causal: row i attends
keys ``[0, kv_end[i])``, the end of its own group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from mmgen.models.attention import kv_end_from_group_ids


@dataclass(frozen=True)
class SequenceLayout:
    """Where everything sits in one sample; shared by every row of a batch.

    Attributes:
        group_ids: (L,) non-decreasing group ids (0 is the condition).
        positions: (L, 3) (t, h, w) positions (integer-valued, or fractional where an order
            places a coarse map on a finer grid).
        kv_end: (L,) int32 key prefix end per row.
        text_length: rows of the condition segment (it occupies ``[0, text_length)``).
        group_starts: start row of each group, plus the total length at the end.
        frame_ids: (L,) frame of every row of a clip (-1 on the condition rows); None for an
            image. FlexRoPE's decay reads it (:meth:`flexrope_bias`).
        allowed: (L, L) bool, the pairs a row may attend inside its kv_end prefix, for an order
            whose mask is not a prefix (FAR-Long's short window); None = the whole prefix.
        context_rows: per generated group, how many of its leading rows are context only
            (fed, attended, never sampled or scored); None = none anywhere.
    """

    group_ids: torch.Tensor
    positions: torch.Tensor
    kv_end: torch.Tensor
    text_length: int
    group_starts: tuple[int, ...]
    frame_ids: torch.Tensor | None = None
    allowed: torch.Tensor | None = None
    context_rows: tuple[int, ...] | None = None

    @property
    def length(self) -> int:
        return self.group_ids.numel()

    @property
    def is_causal(self) -> bool:
        """Whether every group is one token (plain causal attention: kv_end may be None)."""
        causal = torch.arange(1, self.length + 1, dtype=torch.int32, device=self.kv_end.device)
        return self.allowed is None and bool(torch.equal(self.kv_end, causal))

    @property
    def image_groups(self) -> list[tuple[int, int]]:
        """(start, end) rows of every group after the condition, in generation order."""
        starts = self.group_starts
        return [(a, b) for a, b in zip(starts[:-1], starts[1:]) if a >= self.text_length]

    def sampled_rows(self, g: int) -> tuple[int, int]:
        """(start, end) rows of generated group ``g`` that the head samples (and training
        scores): the group without its leading context-only rows."""
        start, end = self.image_groups[g]
        return start + (self.context_rows[g] if self.context_rows else 0), end

    def target_index(self) -> torch.Tensor | None:
        """(n_targets,) indices, among the generated rows (0 = the first row after the
        condition), of the rows with targets; None when every generated row has one."""
        if not self.context_rows or not any(self.context_rows):
            return None
        T = self.text_length
        ranges = [torch.arange(*self.sampled_rows(g)) - T for g in range(len(self.image_groups))]
        return torch.cat(ranges).to(self.kv_end.device)

    def last_readers(self) -> torch.Tensor:
        """(L,) for every row, the last row that attends it: once the rows up to there have
        run, a KV cache no longer needs its keys (``mmgen.generation.sequence_cache``). Under a
        prefix mask the last row reads every row."""
        L = self.length
        if self.allowed is None:
            return torch.full((L,), L - 1, dtype=torch.long, device=self.kv_end.device)
        index = torch.arange(L, device=self.kv_end.device)
        reads = self.allowed & (index[None, :] < self.kv_end[:, None])  # (Lq, Lk)
        return torch.where(reads, index[:, None], -1).amax(dim=0)  # (L,)

    def to(self, device: torch.device | str) -> SequenceLayout:
        """The layout with positions, kv_end, frame ids and the allowed pairs on ``device``."""
        if self.positions.device == torch.device(device):
            return self

        def moved(t):
            return None if t is None else t.to(device)

        return replace(self, positions=self.positions.to(device), kv_end=self.kv_end.to(device),
                       frame_ids=moved(self.frame_ids), allowed=moved(self.allowed))  # fmt: skip

    def attention_bias(self, start: int, end: int, slope: float = 0.0) -> torch.Tensor | None:
        """The additive score bias of rows ``[start, end)`` against keys ``[0, end)``: FlexRoPE's
        decay (:meth:`flexrope_bias`) plus -inf on the pairs :attr:`allowed` excludes. None when
        neither applies (the plain group-causal mask)."""
        bias = self.flexrope_bias(start, end, slope)
        if self.allowed is None:
            return bias
        blocked = ~self.allowed[start:end, :end]
        mask = torch.zeros(blocked.shape, device=blocked.device).masked_fill(blocked, -torch.inf)
        return mask if bias is None else bias + mask

    def flexrope_bias(self, start: int, end: int, slope: float) -> torch.Tensor | None:
        """FlexRoPE's additive score bias of rows ``[start, end)`` against keys ``[0, end)``:
        ``-slope * (frame_q - frame_k)`` between frame rows, 0 where either row is the
        condition (the prompt is never decayed). None when ``slope`` is 0 (exactly RoPE).

        Raises:
            ValueError: for a negative slope, or a layout without frames.
        """
        from mmgen.models.rope import flexrope_bias

        if not float(slope) >= 0:
            raise ValueError(f"flexrope_slope must be >= 0, got {slope!r}")
        if slope == 0:
            return None
        if self.frame_ids is None:
            raise ValueError("flexrope_slope needs a layout with frames (a video order)")
        frame_q, frame_k = self.frame_ids[start:end], self.frame_ids[:end]
        bias = flexrope_bias(frame_q, frame_k, slope)  # (Lq, Lk)
        visual = (frame_q[:, None] >= 0) & (frame_k[None, :] >= 0)
        return torch.where(visual, bias, torch.zeros_like(bias))


def condition_and_groups_layout(
    text_length: int,
    group_sizes: Sequence[int],
    group_positions: torch.Tensor,
    *,
    flat_positions: bool = False,
) -> SequenceLayout:
    """The layout of a condition segment followed by groups of the given sizes.

    Args:
        text_length: rows of the condition segment (one group).
        group_sizes: rows of each generated group, in order.
        group_positions: (sum(group_sizes), 3) (t, h, w) of the generated rows; condition row
            j sits at (j, j, j), so text continues as plain 1-D RoPE.
        flat_positions: give every row t = h = w = its index instead (for 1-D RoPE).
    """
    T, n = text_length, int(sum(group_sizes))
    if group_positions.shape != (n, 3):
        raise ValueError(f"group_positions must be ({n}, 3), got {tuple(group_positions.shape)}")
    group_ids = torch.cat(
        [torch.zeros(T, dtype=torch.long)]
        + [torch.full((size,), g + 1, dtype=torch.long) for g, size in enumerate(group_sizes)]
    )  # (L,)
    if flat_positions:
        positions = torch.arange(T + n)[:, None].expand(T + n, 3).clone()
    else:
        text_pos = torch.arange(T)[:, None].expand(T, 3)
        positions = torch.cat([text_pos.to(group_positions.dtype), group_positions], dim=0)
    starts = [0, T]
    for size in group_sizes:
        starts.append(starts[-1] + size)
    if T == 0:
        starts = starts[1:]
    return SequenceLayout(
        group_ids=group_ids,
        positions=positions,
        kv_end=kv_end_from_group_ids(group_ids),
        text_length=T,
        group_starts=tuple(starts),
    )


def grid_positions(grid: tuple[int, int], offset: int, *, stride: float = 1.0) -> torch.Tensor:
    """(h * w, 3) raster positions (offset, offset + r * stride, offset + c * stride)."""
    gh, gw = grid
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    rows, cols = rows.reshape(-1), cols.reshape(-1)
    if stride == 1.0:
        return torch.stack([torch.full_like(rows, offset), offset + rows, offset + cols], dim=-1)
    t = torch.full((gh * gw,), float(offset))
    return torch.stack([t, offset + rows * stride, offset + cols * stride], dim=-1)


def drop_condition(
    text_ids: torch.Tensor, null_ids: torch.Tensor, prob: float, generator: torch.Generator
) -> torch.Tensor:
    """Replace each row by the unconditional prompt with probability ``prob`` (for guidance).

    Args:
        text_ids: (B, T); null_ids: (T,) ids of the empty prompt.
    """
    if prob <= 0:
        return text_ids
    drop = torch.rand(text_ids.shape[0], generator=generator, device=generator.device) < prob
    drop = drop.to(text_ids.device)
    return torch.where(drop[:, None], null_ids.to(text_ids.device)[None], text_ids)
