"""The KV caches of one generation, and which rows of the layout they hold.

The loop runs a layout's rows span after span (the prefill, then one group per call). Under a
prefix mask every row stays in the caches and its slot is its row index. Under a mask that
retires rows (``SequenceLayout.allowed``: FAR-Long's window, whose frame rows no later group
attends once W frames have passed), a row leaves the caches after the last call that reads
it and the rows after it move up: the caches hold only the most rows alive at once
(:func:`peak_live_rows`), not the layout's length, and attention reads only live keys.
That is FAR-Long's second cache level: the long-term rows of old frames stay, their
full-resolution rows go.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mmgen.models.kv_cache import KVCache
from mmgen.sequence import SequenceLayout


def call_spans(layout: SequenceLayout, given: int = 0) -> list[tuple[int, int]]:
    """The row ranges a generation runs, one backbone call each: the prefill, then the first
    ``given`` groups in one call (a continuation), then one call per remaining group."""
    groups = layout.image_groups
    spans = [(0, layout.text_length)]
    if given:
        spans.append((groups[0][0], groups[given - 1][1]))
    return spans + groups[given:]


def peak_live_rows(layout: SequenceLayout, spans: Sequence[tuple[int, int]]) -> int:
    """The most rows held at once when ``spans`` (row ranges ``[start, end)``, in order,
    covering the layout from row 0) run one call each and rows retire after their last
    reader."""
    last = layout.last_readers()
    live = torch.arange(0)
    peak = 0
    for start, end in spans:
        peak = max(peak, live.numel() + end - start)
        live = torch.cat([live, torch.arange(start, end)])
        live = live[last[live] >= end]
    return peak


class SequenceCache:
    """Per-layer KV caches for one batch of generations of ``layout``, with the live rows.

    Args:
        model: the transformer (makes the caches).
        batch_size: rows of the batch (doubled under classifier-free guidance).
        layout: the sequence layout, on the model's device.
        spans: the calls the generation will make (:func:`call_spans`); they size the caches
            (:func:`peak_live_rows`).
        caches: existing caches of ``layout.length`` slots to use instead (the compiled
            decoder's persistent ones; only for a layout that retires nothing).
    """

    def __init__(
        self,
        model,
        batch_size: int,
        layout: SequenceLayout,
        spans: Sequence[tuple[int, int]],
        caches: list[KVCache] | None = None,
    ):
        self.layout = layout
        self.retires = layout.allowed is not None  # a prefix mask keeps every row: slot = row
        self.last = layout.last_readers().cpu() if self.retires else None  # (L,)
        self.rows = torch.arange(0)  # (n_live,) layout rows held in slots [0, n_live)
        if caches is None:
            slots = peak_live_rows(layout, spans) if self.retires else layout.length
            caches = model.make_caches(batch_size, slots)
        self.caches = caches

    def run(
        self,
        model,
        start: int,
        end: int,
        *,
        condition_ids: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        flexrope_slope: float = 0.0,
    ) -> torch.Tensor:
        """Hidden states (B, end - start, D) of layout rows ``[start, end)`` against the live
        rows, written into the caches after them; rows no later row reads then leave."""
        layout = self.layout
        kv_end = layout.kv_end[start:end]  # (n,) row ends
        bias = layout.attention_bias(start, end, flexrope_slope)  # (n, end) or None
        slot = self.rows.numel() if self.retires else start
        keys = torch.cat([self.rows, torch.arange(start, end)]) if self.retires else None
        if slot != start:  # rows have left: row ends -> slot ends, bias on the live keys only
            index = keys.to(kv_end.device)  # (slot + n,) the layout rows of the slots
            kv_end = torch.searchsorted(index, kv_end.long()).to(kv_end.dtype)
            bias = None if bias is None else bias[:, index]
        hidden = model(
            layout.positions[start:end],
            kv_end,
            condition_ids=condition_ids,
            inputs=inputs,
            caches=self.caches,
            start=slot,
            attention_bias=bias,
        )
        if self.retires:
            keep = self.last[keys] >= end  # (slot + n,) still read by a later row
            if not bool(keep.all()):
                slots = keep.nonzero().squeeze(1).to(self.caches[0].k.device)
                for cache in self.caches:
                    cache.keep(slots)
            self.rows = keys[keep]
        return hidden
