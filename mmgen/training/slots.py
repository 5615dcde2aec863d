"""How one optimizer step's data is drawn and shared out among micro-batches and processes."""

from __future__ import annotations

import torch


def draw_step_slots(
    generator: torch.Generator,
    num_examples: int,
    batch_size: int,
    accumulation: int,
    world: int,
) -> list[tuple[torch.Tensor, torch.Generator]]:
    """The examples of one optimizer step, cut into ``accumulation * world`` slots.

    Micro-batch ``m`` of process ``r`` takes slot ``m * world + r``: its example indices (B,) and
    a generator for its own random draws (condition dropout...). Every process draws the same
    slots from the same ``generator``, so the step sees the same data however the slots are spread:
    one process with accumulation 2 trains exactly like two processes with accumulation 1.
    With a single slot the draws come straight from ``generator``.
    """
    num_slots = accumulation * world
    indices = torch.randint(num_examples, (num_slots, batch_size), generator=generator)
    if num_slots == 1:
        return [(indices[0], generator)]
    seeds = torch.randint(2**62, (num_slots,), generator=generator)
    return [(indices[i], torch.Generator().manual_seed(int(seeds[i]))) for i in range(num_slots)]
