"""Class-label "tokenizer": one condition token per image, plus a null class for guidance."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mmgen.utils.checks import check_int


class ClassLabelTokenizer:
    """Maps class labels to one token each; ``None`` is the null (unconditional) class.

    Args:
        num_classes (`int`): labels are ``0 .. num_classes - 1``; id ``num_classes`` is the null
            class used by classifier-free guidance and condition dropout.
    """

    max_length = 1

    def __init__(self, num_classes: int):
        check_int("num_classes", num_classes)
        self.num_classes = num_classes

    @property
    def null_id(self) -> int:
        return self.num_classes

    @property
    def vocab_size(self) -> int:
        return self.num_classes + 1

    @property
    def config(self) -> dict:
        return {"num_classes": self.num_classes}

    def __call__(self, labels: int | None | Sequence[int | None]) -> torch.Tensor:
        """Labels -> ids of shape (B, 1), int64. Raises TypeError/ValueError naming the label."""
        if labels is None or isinstance(labels, int):
            labels = [labels]
        ids = []
        for label in labels:
            if label is None:
                ids.append(self.null_id)
                continue
            if isinstance(label, bool) or not isinstance(label, int):
                raise TypeError(f"class label must be an int or None, got {type(label).__name__}")
            if not 0 <= label < self.num_classes:
                raise ValueError(f"class label must be in [0, {self.num_classes}), got {label}")
            ids.append(label)
        return torch.tensor(ids, dtype=torch.long).reshape(len(ids), 1)
