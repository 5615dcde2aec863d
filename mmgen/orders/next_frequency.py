"""Next-frequency (NFIG): group k is frequency band k, low to high, all its codes at once.

The tokenizer (``FrequencyVQModel``) quantises the latent's bands residually on growing maps
(the lowest band, each channel's mean, on 1 x 1); this order generates them in that order with
the categorical head. Sequence, mask and inputs are next-scale's (VAR's block-causal mask; band
k + 1 is fed the accumulated latent after bands <= k, area-downsampled to its map), which is
how NFIG's VAR-style transformer runs. Option ``window`` as next-scale's: every band map whose
side s divides is read in s x s windows, one row per window, s^2 codes predicted per row.
"""

from __future__ import annotations

from mmgen.orders.next_scale import NextScaleOrder
from mmgen.utils.config import ConfigError


class NextFrequencyOrder(NextScaleOrder):
    """NFIG's order over a frequency-band tokenizer."""

    name = "next_frequency"

    def __init__(self, tokenizer, image_size, condition_length, *, flat_positions=False,
                 window: int = 1):  # fmt: skip
        if not getattr(tokenizer, "frequency_bands", False):
            raise ConfigError(
                "order next_frequency needs a frequency-band tokenizer (FrequencyVQModel); "
                f"{type(tokenizer).__name__} has no frequency bands"
            )
        super().__init__(
            tokenizer, image_size, condition_length, flat_positions=flat_positions, window=window
        )
