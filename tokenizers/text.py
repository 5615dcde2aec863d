"""Text tokenizer: UTF-8 bytes plus a few special tokens."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch


class ByteTokenizer:
    """Turns prompts into fixed-length rows of UTF-8 byte ids.

    Ids 0-255 are bytes; then ``pad_id``, ``bos_id`` and ``eos_id``. Each row is
    ``[BOS] bytes... [EOS] [PAD]...`` of length ``max_length``. A prompt longer than fits is
    truncated (at a byte boundary) with a warning; the empty prompt is allowed and is the
    unconditional prompt used for classifier-free guidance.

    Args:
        max_length (`int`, defaults to 64): tokens per row, BOS and EOS included.
    """

    num_bytes = 256
    pad_id = 256
    bos_id = 257
    eos_id = 258
    vocab_size = 259

    def __init__(self, max_length: int = 64):
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3 (BOS, EOS and one byte), got {max_length}")
        self.max_length = max_length

    @property
    def config(self) -> dict:
        return {"max_length": self.max_length}

    def encode_one(self, prompt: str) -> tuple[list[int], bool]:
        """Ids of one prompt (length ``max_length``) and whether it was truncated."""
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        data = list(prompt.encode("utf-8"))
        room = self.max_length - 2
        truncated = len(data) > room
        row = [self.bos_id, *data[:room], self.eos_id]
        return row + [self.pad_id] * (self.max_length - len(row)), truncated

    def __call__(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Encode one prompt or a list of prompts to ids of shape (B, max_length), int64."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence):
            raise TypeError(f"prompt must be a str or a list of str, got {type(prompts).__name__}")
        rows, truncated = zip(*(self.encode_one(p) for p in prompts)) if prompts else ((), ())
        if any(truncated):
            first = prompts[truncated.index(True)]
            warnings.warn(
                f"{sum(truncated)} prompt(s) longer than {self.max_length - 2} bytes were "
                f"truncated (max_length={self.max_length}), e.g. {first[:40]!r}",
                stacklevel=2,
            )
        return torch.tensor(list(rows), dtype=torch.long).reshape(len(rows), self.max_length)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Inverse of encoding one row: special tokens are dropped, bad UTF-8 replaced."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return bytes(v for v in values if v < self.num_bytes).decode("utf-8", errors="replace")
