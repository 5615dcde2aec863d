"""Exponential moving average of the weights (diffusers' ``EMAModel``), used for validation
and export when ``training.ema_decay > 0``."""

from __future__ import annotations

from contextlib import contextmanager

from torch import nn


@contextmanager
def ema_weights(ema, model: nn.Module):
    """Swap the EMA weights into ``model`` for the block, then put the trained ones back.
    ``ema`` None (EMA off) leaves the model as it is."""
    if ema is None:
        yield model
        return
    ema.store(model.parameters())
    ema.copy_to(model.parameters())
    try:
        yield model
    finally:
        ema.restore(model.parameters())
