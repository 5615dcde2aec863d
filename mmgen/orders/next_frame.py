"""Next-frame (FAR): after the prompt, one group per video frame of continuous latents.

Every frame is encoded on its own by an image autoencoder (``KLModel``); a clip's flat tokens
are (B, F * h * w, C), frame after frame (``TokenLayout.frames``). Group f holds frame f's
h * w rows: full attention inside the frame, causal across frames. Its rows are fed frame f - 1's
latents at the same (r, c) through the ``latent`` adapter, with one indicator channel appended
(1 on frame 0's rows, which are fed zeros: the start frame), and the group flow head denoises
frame f jointly from their hidden states, each frame at its own flow time (FAR's one timestep
per frame). Generation makes one backbone call per frame against the frame-level KV cache.

``patch`` p > 1 merges each p x p block of a frame's latents into one row of p^2 * C channels
(DiT's patchify: (h / p) * (w / p) rows per frame, p^2 fewer), placed on the full-resolution
grid at the block's top-left latent (as FAR places its compressed tokens).

Positions (``positions`` option), with o = the condition's length (the 1-D position of the first
visual row):

* ``"scaled"`` (Lumos-1, for MM-RoPE): ``(o + f * temporal_stride, o + r * spatial_stride,
  o + c * spatial_stride)`` for latent row r and column c, the strides being the tokenizer's
  compression (1 frame per latent frame; ``spatial_stride`` defaults to the autoencoder's
  downsample factor);
* ``"axial"`` (FAR's 3-D axial RoPE): ``(o + f, o + r, o + c)``.

FAR's stochastic clean context (``clean_context_prob``, default 0.1): each training frame is,
with that probability, given as context only and left out of the loss. The backbone here always
sees clean previous frames (teacher forcing), as at generation, so the model continues given
frames (``frames=`` of the video pipeline) with no change.
"""

from __future__ import annotations

import dataclasses

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout
from mmgen.utils.config import ConfigError

POSITION_KINDS = ("scaled", "axial")


def frame_positions(
    num_frames: int,
    grid: tuple[int, int],
    offset: int,
    *,
    temporal_stride: int = 1,
    spatial_stride: int = 1,
    patch: int = 1,
) -> torch.Tensor:
    """(F * h' * w', 3) positions ``(offset + f * ts, offset + r * ss, offset + c * ss)`` of a
    clip's rows, frame after frame, raster order inside a frame; with ``patch`` p the rows are
    the (h / p) x (w / p) blocks, at latent rows and columns r, c = 0, p, 2p, ..."""
    gh, gw = grid
    f, r, c = torch.meshgrid(
        torch.arange(num_frames), torch.arange(0, gh, patch), torch.arange(0, gw, patch),
        indexing="ij",
    )  # fmt: skip
    strides = torch.tensor([temporal_stride, spatial_stride, spatial_stride])
    return offset + torch.stack([f, r, c], dim=-1).reshape(-1, 3) * strides  # (F*h*w, 3)


class NextFrameOrder(Order):
    """FAR's next-frame order over per-frame continuous latents (see the module docstring).

    Options:
        num_frames: frames per clip (a pipeline call may ask for other lengths).
        positions: ``"scaled"`` (Lumos-1, the default) or ``"axial"`` (FAR).
        temporal_stride: t step per frame under ``"scaled"``.
        spatial_stride: (h, w) step per latent row/column under ``"scaled"``; default the
            tokenizer's downsample factor (pixels per latent).
        clean_context_prob: probability that a training frame is context only (no loss).
        patch: side of the latent blocks merged into one row (1 = one row per latent).
    """

    name = "next_frame"

    def __init__(
        self,
        tokenizer,
        image_size,
        condition_length,
        *,
        flat_positions=False,
        num_frames: int = 12,
        positions: str = "scaled",
        temporal_stride: int = 1,
        spatial_stride: int | None = None,
        clean_context_prob: float = 0.1,
        patch: int = 1,
    ):
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        frame = self.token_layout
        if not frame.is_continuous or frame.scales is not None:
            raise ConfigError(
                "order next_frame needs a continuous single-grid tokenizer (KLModel); "
                f"{type(tokenizer).__name__} gives codes"
            )
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ConfigError(f"order.num_frames must be an int >= 1, got {num_frames!r}")
        if positions not in POSITION_KINDS:
            raise ConfigError(
                f"order.positions must be one of {list(POSITION_KINDS)}, got {positions!r}"
            )
        if spatial_stride is None:
            spatial_stride = image_size // frame.grid[0]
        for key, value in (("temporal_stride", temporal_stride),
                           ("spatial_stride", spatial_stride), ("patch", patch)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"order.{key} must be an int >= 1, got {value!r}")
        if frame.grid[0] % patch or frame.grid[1] % patch:
            raise ConfigError(f"order.patch {patch} does not divide the latent grid "
                              f"{frame.grid[0]}x{frame.grid[1]}")  # fmt: skip
        if not 0 <= clean_context_prob < 1:
            raise ConfigError(
                f"order.clean_context_prob must be in [0, 1), got {clean_context_prob!r}"
            )
        self.frame_layout = frame
        self.token_layout = dataclasses.replace(frame, frames=num_frames)
        self.num_frames, self.positions = num_frames, positions
        self.temporal_stride, self.spatial_stride = temporal_stride, spatial_stride
        self.clean_context_prob = float(clean_context_prob)
        self.patch = patch
        self.row_grid = (frame.grid[0] // patch, frame.grid[1] // patch)
        self.frame_rows = self.row_grid[0] * self.row_grid[1]
        T = condition_length
        if positions == "scaled":
            rows = frame_positions(num_frames, frame.grid, T, temporal_stride=temporal_stride,
                                   spatial_stride=spatial_stride, patch=patch)  # fmt: skip
        else:
            rows = frame_positions(num_frames, frame.grid, T, patch=patch)
        layout = condition_and_groups_layout(
            T, [self.frame_rows] * num_frames, rows, flat_positions=flat_positions
        )
        frame_ids = torch.cat(
            [torch.full((T,), -1), torch.arange(num_frames).repeat_interleave(self.frame_rows)]
        )  # (L,)
        self.layout = dataclasses.replace(layout, frame_ids=frame_ids)

    def config(self) -> dict:
        return {
            "name": self.name,
            "num_frames": self.num_frames,
            "positions": self.positions,
            "temporal_stride": self.temporal_stride,
            "spatial_stride": self.spatial_stride,
            "clean_context_prob": self.clean_context_prob,
            "patch": self.patch,
        }

    def with_frames(self, num_frames: int) -> NextFrameOrder:
        """The same order for clips of ``num_frames`` frames (generation past the training
        length)."""
        if num_frames == self.num_frames:
            return self
        options = {k: v for k, v in self.config().items() if k != "name"}
        options["num_frames"] = num_frames
        return type(self)(self.tokenizer, self.image_size, self.condition_length,
                          flat_positions=self.flat_positions, **options)  # fmt: skip

    @property
    def channels(self) -> int:
        """Channels of one row: p^2 latents of C channels."""
        return self.frame_layout.latent_channels * self.patch**2

    def input_config(self) -> dict:
        return {"kind": "latent", "in_channels": self.channels + 1}

    def head_config(self) -> dict:
        return {"kind": "group_flow", "latent_channels": self.channels,
                "group_shapes": [list(self.row_grid)],
                "clean_group_prob": self.clean_context_prob}  # fmt: skip

    def patchify(self, tokens_BNC: torch.Tensor) -> torch.Tensor:
        """Flat latents of whole frames (B, n * h * w, C) -> their rows (B, n * h' * w', p^2 C),
        each row a p x p block (channels ordered (dy, dx, C))."""
        p = self.patch
        if p == 1:
            return tokens_BNC
        rh, rw = self.row_grid
        B, C = tokens_BNC.shape[0], tokens_BNC.shape[-1]
        x = tokens_BNC.reshape(B, -1, rh, p, rw, p, C).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, -1, p * p * C)

    def unpatchify(self, rows_BRX: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`patchify`: (B, n * h' * w', p^2 C) -> (B, n * h * w, C)."""
        p = self.patch
        if p == 1:
            return rows_BRX
        rh, rw = self.row_grid
        B, C = rows_BRX.shape[0], rows_BRX.shape[-1] // (p * p)
        x = rows_BRX.reshape(B, -1, rh, rw, p, p, C).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, -1, C)

    def given_samples(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.patchify(tokens)

    def _fed(self, frames_BnC: torch.Tensor, start: bool) -> torch.Tensor:
        """Frame latents (B, n, C) with the start indicator channel -> (B, n, C + 1)."""
        flag = torch.full_like(frames_BnC[..., :1], 1.0 if start else 0.0)
        return torch.cat([frames_BnC, flag], dim=-1)

    def _start_frame(self, batch_size: int, device) -> torch.Tensor:
        zeros = torch.zeros(batch_size, self.frame_rows, self.channels, device=device)
        return self._fed(zeros, start=True)  # (B, h*w, C + 1)

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        B, R = codes_BN.shape[0], self.frame_rows
        rows = self.patchify(codes_BN.float())  # (B, F*R, X)
        previous = self._fed(rows[:, : (self.num_frames - 1) * R], start=False)
        inputs = torch.cat([self._start_frame(B, codes_BN.device), previous], dim=1)
        return inputs, rows  # (B, F*R, X + 1), (B, F*R, X)

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        if g == 0:
            return self._start_frame(state.codes.shape[0], state.codes.device)
        N = self.frame_layout.tokens_per_frame
        return self._fed(self.patchify(state.codes[:, (g - 1) * N : g * N]), start=False)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        N = self.frame_layout.tokens_per_frame
        state.codes[:, g * N : (g + 1) * N] = self.unpatchify(sampled)  # (B, h*w, C)
