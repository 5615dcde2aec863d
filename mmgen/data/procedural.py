"""What the procedural data sets share: item i of a data set seeded with ``seed`` is drawn from
its own ``torch.Generator``, so it depends only on (seed, i)."""

from __future__ import annotations

import torch


def item_generator(seed: int, index: int) -> torch.Generator:
    """The generator for item ``index`` of a dataset seeded with ``seed`` (kept within int64)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63))


class ProceduralDataset(torch.utils.data.Dataset):
    """Map-style and deterministic: ``dataset[i]`` is ``make_item(item_generator(seed, i))``;
    negative indices count from the end.

    Args:
        num_samples: Number of items.
        seed: Dataset seed; different seeds give different items.
    """

    def __init__(self, num_samples: int, seed: int = 0):
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got {num_samples}")
        self.num_samples = num_samples
        self.seed = seed

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict:
        if index < 0:
            index += self.num_samples
        if not 0 <= index < self.num_samples:
            raise IndexError(f"index {index} out of range for {self.num_samples} samples")
        return self.make_item(item_generator(self.seed, index))

    def make_item(self, generator: torch.Generator) -> dict:
        """One item, every random number from ``generator``."""
        raise NotImplementedError
