"""Sequence layouts: segments -> token ids, group ids, (t, h, w) positions, kv_end, targets.

A text-to-image sample is ``[text segment][image segment]``. The text segment (BOS, bytes, EOS,
padding) is one group: full attention inside it, a prefix for everything after. In next-token
order each image token is a group of its own. Image slot i sits at the position of the token it
predicts; its input is the previous image token (a start token for slot 0), so group g's input
only needs groups < g, which is what the generation loop feeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mmgen.models.attention import kv_end_from_group_ids

IGNORE_INDEX = -100


@dataclass(frozen=True)
class SequenceLayout:
    """Where everything sits in one sample; shared by every row of a batch.

    Attributes:
        group_ids: (L,) non-decreasing group ids.
        positions: (L, 3) integer (t, h, w) positions.
        kv_end: (L,) int32 key prefix end per row.
        text_length: tokens in the text segment (it occupies ``[0, text_length)``).
        grid: (h, w) image token grid (raster order after the text).
        group_starts: start index of each group, plus the total length at the end.
    """

    group_ids: torch.Tensor
    positions: torch.Tensor
    kv_end: torch.Tensor
    text_length: int
    grid: tuple[int, int]
    group_starts: tuple[int, ...]

    @property
    def length(self) -> int:
        return self.group_ids.numel()

    @property
    def is_causal(self) -> bool:
        """Whether every group is one token (plain causal attention: kv_end may be None)."""
        causal = torch.arange(1, self.length + 1, dtype=torch.int32, device=self.kv_end.device)
        return bool(torch.equal(self.kv_end, causal))

    @property
    def num_image_tokens(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def image_groups(self) -> list[tuple[int, int]]:
        """(start, end) of every group after the text segment, in generation order."""
        starts = self.group_starts
        return [(a, b) for a, b in zip(starts[:-1], starts[1:]) if a >= self.text_length]


def text_image_layout(
    text_length: int, grid: tuple[int, int], *, flat_positions: bool = False
) -> SequenceLayout:
    """Layout of a prefix text group followed by a raster next-token image.

    Args:
        text_length: tokens of the text segment.
        grid: (h, w) image token grid.
        flat_positions: give every token t = h = w = its sequence index (for 1-D RoPE).
            Otherwise text token j is at (j, j, j) and image token (r, c) at
            (T, T + r, T + c) with T = text_length, so text continues as plain 1-D RoPE and the
            image keeps its 2-D structure.
    """
    gh, gw = grid
    n = gh * gw
    T = text_length
    group_ids = torch.cat(
        [torch.zeros(T, dtype=torch.long), torch.arange(1, n + 1, dtype=torch.long)]
    )  # (L,)
    if flat_positions:
        index = torch.arange(T + n)
        positions = index[:, None].expand(T + n, 3).clone()
    else:
        text_pos = torch.arange(T)[:, None].expand(T, 3)
        rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        image_pos = torch.stack(
            [torch.full((n,), T), T + rows.reshape(-1), T + cols.reshape(-1)], dim=-1
        )
        positions = torch.cat([text_pos, image_pos], dim=0)  # (L, 3)
    starts = [0] + list(range(T, T + n)) + [T + n]
    return SequenceLayout(
        group_ids=group_ids,
        positions=positions.long(),
        kv_end=kv_end_from_group_ids(group_ids),
        text_length=T,
        grid=(gh, gw),
        group_starts=tuple(starts),
    )


@dataclass(frozen=True)
class TokenSpace:
    """How text ids and image codes share the transformer's input vocabulary.

    Text ids keep their values ``[0, text_vocab_size)``; image code c becomes
    ``text_vocab_size + c``; the image start token is the last id.
    """

    text_vocab_size: int
    num_codes: int

    @property
    def image_offset(self) -> int:
        return self.text_vocab_size

    @property
    def start_id(self) -> int:
        return self.text_vocab_size + self.num_codes

    @property
    def vocab_size(self) -> int:
        return self.text_vocab_size + self.num_codes + 1


def image_inputs(codes_BN: torch.Tensor, space: TokenSpace) -> torch.Tensor:
    """Input ids of the image slots: start token, then every code but the last, shifted."""
    start = torch.full_like(codes_BN[:, :1], space.start_id)
    return torch.cat([start, codes_BN[:, :-1] + space.image_offset], dim=1)  # (B, N)


def build_training_batch(
    text_ids: torch.Tensor, codes: torch.Tensor, space: TokenSpace
) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forcing inputs and targets for a text-to-image batch.

    Args:
        text_ids: (B, T) text token ids.
        codes: (B, h, w) or (B, N) image codes in ``[0, num_codes)``.

    Returns:
        input_ids (B, T + N) and targets (B, T + N), targets ``IGNORE_INDEX`` on the text.
    """
    codes = codes.reshape(codes.shape[0], -1)  # (B, N)
    input_ids = torch.cat([text_ids, image_inputs(codes, space)], dim=1)
    ignore = torch.full_like(text_ids, IGNORE_INDEX)
    return input_ids, torch.cat([ignore, codes], dim=1)


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
