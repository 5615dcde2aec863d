"""Next-frame (FAR): after the prompt, one group per video frame of continuous latents.

Every frame is encoded on its own by an image autoencoder (``KLModel``); a clip's flat tokens
are (B, F * h * w, C), frame after frame (``TokenLayout.frames``). Group f holds frame f's
h * w rows (group S + f after S first-frame scales, below): full attention inside the frame,
causal across frames. Its rows are fed frame f - 1's latents at the same (r, c) through the
``latent`` adapter, with one indicator channel appended (1 on frame 0's rows, which are fed
zeros: the start frame), and the group flow head denoises frame f jointly from their hidden
states, each frame at its own flow time (FAR's one timestep per frame). Generation makes one
backbone call per frame against the frame-level KV cache.

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

First-frame scales (``first_frame_scales``, FlowAR's next-scale for the one frame the prompt
alone decides): before frame 0, one group per coarser map of it, coarse to fine. A scale of s
rows a side is frame 0's latent area-downsampled to s * p latents a side and patchified by p
(s x s rows of the frames' p^2 C channels); the first scale is fed zeros (indicator 1), every
later scale and frame 0 itself the previous scale bilinearly upsampled to their size (indicator
2). Their rows sit at frame 0's time, each at the top-left latent of the block it covers. The
group flow head draws each map jointly, so where the objects go is decided on a 1 x 1 map and
passed through the backbone, not left to one joint draw of a whole frame. None: frame 0 is
fed zeros (the start frame).

FAR's stochastic clean context (``clean_context_prob``, default 0.1): each training frame is,
with that probability, given as context only and left out of the loss. The backbone here always
sees clean previous frames (teacher forcing), as at generation, so the model continues given
frames (``frames=`` of the video pipeline) with no change.

Long short-term context (FAR-Long; ``long_window`` W, ``long_patch`` P): the group predicting
frame g sees the W frames before it at full resolution and every older frame only as
long-term rows, each a P x P block of latents (the frame area-downsampled by P / p, then
patchified by p: (h / P) * (w / P) rows instead of (h / p) * (w / p)). Frame j's long-term rows
enter the sequence at the start of group j + W + 1, the first group that no longer sees it in
full, as context-only rows (fed, attended, never sampled or scored; indicator channel -1), at
the positions its full-resolution rows had (the top-left latent of each block). A long-term row
attends the prompt and the long-term rows so far; a frame row attends the prompt, every
long-term row before it and the frame rows of the last W groups (its own included, fed frames
g - W .. g - 1): the mask is ``SequenceLayout.allowed`` on top of the group-causal kv_end. At
generation a frame's full-resolution rows leave the KV cache once no later frame reads them
(``mmgen.generation.sequence_cache``): the cache holds the prompt, the long-term rows and W + 1
groups' frame rows, however long the clip. W >= F leaves nothing out: the plain order.
"""

from __future__ import annotations

import dataclasses

import torch

from mmgen.orders.base import GenerationState, Order
from mmgen.sequence import condition_and_groups_layout
from mmgen.utils.checks import check_int
from mmgen.utils.config import ConfigError

POSITION_KINDS = ("scaled", "axial")

# the indicator channel appended to every fed row: what the row is fed
FED_FRAME = 0.0  # the previous frame's latents
FED_START = 1.0  # zeros: frame 0 (or the first first-frame scale) made from the prompt alone
FED_LONG_TERM = -1.0  # a long-term row (FAR-Long), context only
FED_SCALE = 2.0  # the first-frame scale before, bilinearly upsampled (later scales, frame 0)


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
        long_window: FAR-Long's W, earlier frames seen at full resolution; None = all.
        long_patch: FAR-Long's P, side of the latent blocks of a long-term row (a multiple of
            ``patch`` above it that divides the grid); default 2 * ``patch``.
        first_frame_scales: sides s (in rows, increasing, below the frame's) of the coarser
            maps of frame 0 generated before it; None or [] = none.
    """

    name = "next_frame"
    takes_context_noise = True

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
        long_window: int | None = None,
        long_patch: int | None = None,
        first_frame_scales: list[int] | None = None,
    ):
        super().__init__(tokenizer, image_size, condition_length, flat_positions=flat_positions)
        frame = self.token_layout
        if not frame.is_continuous or frame.scales is not None:
            raise ConfigError(
                "order next_frame needs a continuous single-grid tokenizer (KLModel); "
                f"{type(tokenizer).__name__} gives codes"
            )
        check_int("order.num_frames", num_frames, error=ConfigError)
        if positions not in POSITION_KINDS:
            raise ConfigError(
                f"order.positions must be one of {list(POSITION_KINDS)}, got {positions!r}"
            )
        if spatial_stride is None:
            spatial_stride = image_size // frame.grid[0]
        for key, value in (("temporal_stride", temporal_stride),
                           ("spatial_stride", spatial_stride), ("patch", patch)):  # fmt: skip
            check_int(f"order.{key}", value, error=ConfigError)
        if frame.grid[0] % patch or frame.grid[1] % patch:
            raise ConfigError(f"order.patch {patch} does not divide the latent grid "
                              f"{frame.grid[0]}x{frame.grid[1]}")  # fmt: skip
        if not 0 <= clean_context_prob < 1:
            raise ConfigError(
                f"order.clean_context_prob must be in [0, 1), got {clean_context_prob!r}"
            )
        if long_patch is None:
            long_patch = 2 * patch
        if long_window is not None:
            for key, value in (("long_window", long_window), ("long_patch", long_patch)):
                check_int(f"order.{key}", value, error=ConfigError)
            if long_patch <= patch or long_patch % patch:
                raise ConfigError(f"order.long_patch {long_patch} must be a multiple of "
                                  f"order.patch {patch} above it")  # fmt: skip
            if frame.grid[0] % long_patch or frame.grid[1] % long_patch:
                raise ConfigError(f"order.long_patch {long_patch} does not divide the latent "
                                  f"grid {frame.grid[0]}x{frame.grid[1]}")  # fmt: skip
        if first_frame_scales is not None and not isinstance(first_frame_scales, (list, tuple)):
            raise ConfigError(f"order.first_frame_scales must be a list of sides, got "
                              f"{first_frame_scales!r}")  # fmt: skip
        self.first_frame_scales = tuple(first_frame_scales or ())
        self._check_first_frame_scales(frame.grid, patch)
        self.frame_layout = frame
        self.token_layout = dataclasses.replace(frame, frames=num_frames)
        self.num_frames, self.positions = num_frames, positions
        self.temporal_stride, self.spatial_stride = temporal_stride, spatial_stride
        self.clean_context_prob = float(clean_context_prob)
        self.patch = patch
        self.long_window, self.long_patch = long_window, long_patch
        self.row_grid = (frame.grid[0] // patch, frame.grid[1] // patch)
        self.frame_rows = self.row_grid[0] * self.row_grid[1]
        self.long_grid = (frame.grid[0] // long_patch, frame.grid[1] // long_patch)
        self.long_rows = self.long_grid[0] * self.long_grid[1]
        self.layout = self._layout(condition_length, flat_positions)

    def _check_first_frame_scales(self, grid: tuple[int, int], patch: int) -> None:
        scales = self.first_frame_scales
        if not scales:
            return
        side = grid[0] // patch
        if grid[0] != grid[1]:
            raise ConfigError(f"order.first_frame_scales needs a square latent grid, got "
                              f"{grid[0]}x{grid[1]}")  # fmt: skip
        if (any(isinstance(q, bool) or not isinstance(q, int) for q in scales)
                or list(scales) != sorted(set(scales)) or scales[0] < 1
                or scales[-1] >= side or any(grid[0] % (q * patch) for q in scales)):  # fmt: skip
            raise ConfigError(
                f"order.first_frame_scales must be integers >= 1, increase strictly, stay "
                f"below the frame's {side} rows a side, and (times the patch {patch}) divide "
                f"the latent grid {grid[0]}, got {list(scales)}"
            )

    @property
    def first_output_groups(self) -> int:
        """Frame 0's groups: its first-frame scales and itself."""
        return len(self.first_frame_scales) + 1

    @property
    def scale_rows(self) -> list[int]:
        """Rows of each first-frame scale group."""
        return [q * q for q in self.first_frame_scales]

    def _scale_positions(self, condition_length: int) -> torch.Tensor:
        """(sum of scale rows, 3) positions of the first-frame scales' rows: frame 0's time,
        each row at the top-left latent of its block."""
        side = self.frame_layout.grid[0]
        parts = [self._rows_positions(condition_length, side // q, num_frames=1)
                 for q in self.first_frame_scales]  # fmt: skip
        return torch.cat(parts) if parts else torch.zeros(0, 3, dtype=torch.long)

    def _rows_positions(
        self, condition_length: int, patch: int, num_frames: int | None = None
    ) -> torch.Tensor:
        """(F * rows per frame, 3) positions of every frame's rows for blocks of ``patch``
        (the first ``num_frames`` frames only, when given)."""
        F = self.num_frames if num_frames is None else num_frames
        if self.positions == "scaled":
            return frame_positions(F, self.frame_layout.grid, condition_length,
                                   temporal_stride=self.temporal_stride,
                                   spatial_stride=self.spatial_stride, patch=patch)  # fmt: skip
        return frame_positions(F, self.frame_layout.grid, condition_length, patch=patch)

    def long_term_frame(self, g: int) -> int | None:
        """The frame whose long-term rows open frame ``g``'s group (``g - W - 1``), or None."""
        if self.long_window is None or g - self.long_window - 1 < 0:
            return None
        return g - self.long_window - 1

    def _layout(self, T: int, flat_positions: bool):
        F, R, Rl = self.num_frames, self.frame_rows, self.long_rows
        rows = self._rows_positions(T, self.patch)  # (F*R, 3); frame f's rows sit at frame f
        scales = self._scale_positions(T)  # (S rows, 3): first-frame scales, at frame 0
        if self.long_window is None:
            layout = condition_and_groups_layout(T, self.scale_rows + [R] * F,
                                                 torch.cat([scales, rows]),
                                                 flat_positions=flat_positions)  # fmt: skip
            frame_ids = torch.cat([torch.full((T,), -1), torch.zeros(len(scales), dtype=torch.long),
                                   torch.arange(F).repeat_interleave(R)])  # fmt: skip
            return dataclasses.replace(layout, frame_ids=frame_ids)  # frame_ids: (L,)
        long_rows = self._rows_positions(T, self.long_patch)  # (F*Rl, 3)
        sizes, positions, frame_ids = list(self.scale_rows), [scales], [torch.full((T,), -1)]
        frame_ids.append(torch.zeros(len(scales), dtype=torch.long))
        kinds = [torch.zeros(len(scales), dtype=torch.bool)]
        group_of = [torch.full((len(scales),), -1)]  # seen by every later row, as the prompt
        for g in range(F):
            j = self.long_term_frame(g)
            if j is not None:  # frame j's long-term rows, where its full rows were (frame j+1)
                positions.append(long_rows[(j + 1) * Rl : (j + 2) * Rl])
                frame_ids.append(torch.full((Rl,), j + 1))
                kinds.append(torch.ones(Rl, dtype=torch.bool))
                group_of.append(torch.full((Rl,), g))
            positions.append(rows[g * R : (g + 1) * R])
            frame_ids.append(torch.full((R,), g))
            kinds.append(torch.zeros(R, dtype=torch.bool))
            group_of.append(torch.full((R,), g))
            sizes.append(R + (0 if j is None else Rl))
        layout = condition_and_groups_layout(T, sizes, torch.cat(positions),
                                             flat_positions=flat_positions)  # fmt: skip
        is_long = torch.cat([torch.zeros(T, dtype=torch.bool), *kinds])  # (L,)
        group = torch.cat([torch.full((T,), -1), *group_of])  # (L,) frame, -1 prompt and scales
        text = group < 0
        # a long-term row: the prompt and long-term rows; a frame row: those and the frame
        # rows of the last W groups, fed frames g - W .. g - 1 (kv_end cuts everything after
        # the row's own group)
        recent = group[None, :] > group[:, None] - self.long_window
        allowed = text[None, :] | is_long[None, :] | (~is_long[:, None] & recent)
        allowed |= text[:, None]  # (L, L)
        S = len(self.scale_rows)
        context = (0,) * S + tuple(s - R for s in sizes[S:])  # rows each group only feeds
        return dataclasses.replace(
            layout, frame_ids=torch.cat(frame_ids), context_rows=context,
            allowed=None if bool(allowed.all()) else allowed,
        )  # fmt: skip

    def config(self) -> dict:
        scales = {"first_frame_scales": list(self.first_frame_scales)} if self.scale_rows else {}
        return scales | {
            "name": self.name,
            "num_frames": self.num_frames,
            "positions": self.positions,
            "temporal_stride": self.temporal_stride,
            "spatial_stride": self.spatial_stride,
            "clean_context_prob": self.clean_context_prob,
            "patch": self.patch,
            "long_window": self.long_window,
            "long_patch": self.long_patch,
        }

    def with_frames(self, num_frames: int, **changes) -> NextFrameOrder:
        """The same order for clips of ``num_frames`` frames (generation past the training
        length), with any other option changed too (``long_window=8``: FAR-Long at
        generation)."""
        options = {k: v for k, v in self.config().items() if k != "name"}
        changes["num_frames"] = num_frames
        if all(options[k] == v for k, v in changes.items()):
            return self
        options.update(changes)
        return type(self)(self.tokenizer, self.image_size, self.condition_length,
                          flat_positions=self.flat_positions, **options)  # fmt: skip

    @property
    def channels(self) -> int:
        """Channels of one row: p^2 latents of C channels."""
        return self.frame_layout.latent_channels * self.patch**2

    def input_config(self) -> dict:
        return {"kind": "latent", "in_channels": self.channels + 1}

    def head_config(self) -> dict:
        shapes = [[q, q] for q in self.first_frame_scales]
        shapes += [list(self.row_grid)] * (self.num_frames if shapes else 1)  # 1: every frame
        return {"kind": "group_flow", "latent_channels": self.channels, "group_shapes": shapes,
                "clean_group_prob": self.clean_context_prob}  # fmt: skip

    def patchify(self, tokens_BNC: torch.Tensor, grid: tuple[int, int] | None = None):
        """Flat latents of whole frames (B, n * h * w, C) -> their rows (B, n * h' * w', p^2 C),
        each row a p x p block (channels ordered (dy, dx, C)); ``grid`` is a frame's (h, w)
        (default the tokenizer's)."""
        p = self.patch
        if p == 1:
            return tokens_BNC
        gh, gw = grid or self.frame_layout.grid
        B, C = tokens_BNC.shape[0], tokens_BNC.shape[-1]
        x = tokens_BNC.reshape(B, -1, gh // p, p, gw // p, p, C).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, -1, p * p * C)

    def long_term_rows(self, frames_BNC: torch.Tensor) -> torch.Tensor:
        """Flat latents of whole frames (B, n * h * w, C) -> their long-term rows
        (B, n * (h / P) * (w / P), p^2 C): each frame area-downsampled by P / p, then
        patchified by p."""
        from torch.nn.functional import avg_pool2d

        gh, gw = self.frame_layout.grid
        B, C = frames_BNC.shape[0], frames_BNC.shape[-1]
        maps = frames_BNC.reshape(-1, gh, gw, C).permute(0, 3, 1, 2)  # (B*n, C, h, w)
        k = self.long_patch // self.patch
        small = avg_pool2d(maps, k)  # (B*n, C, h/k, w/k)
        flat = small.flatten(2).transpose(1, 2).reshape(B, -1, C)  # (B, n*(h/k)*(w/k), C)
        return self.patchify(flat, grid=(gh // k, gw // k))

    def unpatchify(self, rows_BRX: torch.Tensor, grid: tuple[int, int] | None = None):
        """The inverse of :meth:`patchify`: (B, n * h' * w', p^2 C) -> (B, n * h * w, C)."""
        p = self.patch
        if p == 1:
            return rows_BRX
        rh, rw = self.row_grid if grid is None else (grid[0] // p, grid[1] // p)
        B, C = rows_BRX.shape[0], rows_BRX.shape[-1] // (p * p)
        x = rows_BRX.reshape(B, -1, rh, rw, p, p, C).permute(0, 1, 2, 4, 3, 5, 6)
        return x.reshape(B, -1, C)

    def first_frame_maps(self, frame_BNC: torch.Tensor) -> list[torch.Tensor]:
        """Frame 0's flat latents (B, h*w, C) -> each first-frame scale's map (B, C, m, m),
        m = s * p (area downsamples)."""
        from mmgen.tokenizers.multiscale_vq import area_down

        frame = self.frame_layout.unflatten(frame_BNC.float())  # (B, C, h, w)
        return [area_down(frame, q * self.patch) for q in self.first_frame_scales]

    def map_rows(self, map_BCmm: torch.Tensor, side: int | None = None) -> torch.Tensor:
        """A map (B, C, m, m), bilinearly resized to ``side`` latents a side when given ->
        its rows (B, (side / p)^2, p^2 C)."""
        from torch.nn.functional import interpolate

        if side is not None:
            map_BCmm = interpolate(map_BCmm, size=(side, side), mode="bilinear",
                                   align_corners=False)  # fmt: skip
        m = map_BCmm.shape[-1]
        return self.patchify(map_BCmm.flatten(2).transpose(1, 2), grid=(m, m))

    def _scale_inputs(self, maps: list[torch.Tensor], batch_size: int, device) -> list:
        """The fed rows of every first-frame scale and of frame 0, from the scale maps
        generated before each (``maps``: all of them at training, the ones so far at
        generation)."""
        sides = [q * self.patch for q in self.first_frame_scales] + [self.frame_layout.grid[0]]
        fed = [self._fed(torch.zeros(batch_size, self.scale_rows[0], self.channels,
                                     device=device), FED_START)]  # fmt: skip
        for k, coarse in enumerate(maps):
            fed.append(self._fed(self.map_rows(coarse, sides[k + 1]), FED_SCALE))
        return fed

    def given_samples(self, tokens: torch.Tensor) -> torch.Tensor:
        rows = self.patchify(tokens)
        if not self.scale_rows:
            return rows
        maps = self.first_frame_maps(tokens[:, : self.frame_layout.tokens_per_frame])
        return torch.cat([*map(self.map_rows, maps), rows], dim=1)

    def _fed(self, frames_BnC: torch.Tensor, flag: float) -> torch.Tensor:
        """Rows (B, n, C) with the indicator channel ``flag`` (a ``FED_*`` value) appended ->
        (B, n, C + 1)."""
        return torch.cat([frames_BnC, torch.full_like(frames_BnC[..., :1], flag)], dim=-1)

    def _start_frame(self, batch_size: int, device) -> torch.Tensor:
        zeros = torch.zeros(batch_size, self.frame_rows, self.channels, device=device)
        return self._fed(zeros, FED_START)  # (B, h*w, C + 1)

    def training_inputs(self, codes_BN):
        self.check_codes(codes_BN)
        B, R = codes_BN.shape[0], self.frame_rows
        latents = codes_BN.float()
        rows = self.patchify(latents)  # (B, F*R, X)
        previous = self._fed(rows[:, : (self.num_frames - 1) * R], FED_FRAME)
        scales, targets = [], rows
        if self.scale_rows:  # the first-frame scales, then frame 0 fed the finest of them
            maps = self.first_frame_maps(latents[:, : self.frame_layout.tokens_per_frame])
            *scales, first = self._scale_inputs(maps, B, codes_BN.device)
            targets = torch.cat([*map(self.map_rows, maps), rows], dim=1)  # (B, S + F*R, X)
        else:
            first = self._start_frame(B, codes_BN.device)
        inputs = torch.cat([first, previous], dim=1)
        if self.long_window is None:
            return torch.cat([*scales, inputs], dim=1), targets  # (B, rows, X + 1), (B, rows, X)
        long_term = self._fed(self.long_term_rows(latents), FED_LONG_TERM)  # (B, F*Rl, X + 1)
        parts, Rl = scales, self.long_rows
        for g in range(self.num_frames):  # each group: its long-term rows, then its frame rows
            j = self.long_term_frame(g)
            if j is not None:
                parts.append(long_term[:, j * Rl : (j + 1) * Rl])
            parts.append(inputs[:, g * R : (g + 1) * R])
        return torch.cat(parts, dim=1), targets  # (B, rows of the layout, X + 1), (B, rows, X)

    def noised_inputs(self, inputs: torch.Tensor, sigma_B: torch.Tensor, generator) -> torch.Tensor:
        """Noise on the fed latent channels (frames, long-term rows, first-frame scales), none
        on the start rows' zeros or on the indicator channel."""
        from mmgen.generation.flow import draw_noise

        latents, flag = inputs[..., :-1], inputs[..., -1:]  # (B, L, X), (B, L, 1)
        noise = draw_noise(latents.shape, generator, inputs.device)
        fed = (flag != FED_START).to(latents.dtype)  # (B, L, 1): 0 on the start rows' zeros
        noised = latents + sigma_B.view(-1, 1, 1).to(latents.dtype) * fed * noise
        return torch.cat([noised, flag], dim=-1)

    def group_inputs(self, state: GenerationState, g: int) -> torch.Tensor:
        B, S = state.codes.shape[0], len(self.scale_rows)
        if g <= S and S:  # a first-frame scale or frame 0: fed the scale before
            maps = state.extra.get("scales", [])[:g]
            return self._scale_inputs(maps, B, state.codes.device)[g]
        f = g - S  # the frame this group generates
        if f == 0:
            return self._start_frame(B, state.codes.device)
        N = self.frame_layout.tokens_per_frame
        frame = self._fed(self.patchify(state.codes[:, (f - 1) * N : f * N]), FED_FRAME)
        j = self.long_term_frame(f)
        if j is None:
            return frame  # (B, R, X + 1)
        long_term = self._fed(self.long_term_rows(state.codes[:, j * N : (j + 1) * N]),
                               FED_LONG_TERM)  # fmt: skip
        return torch.cat([long_term, frame], dim=1)  # (B, Rl + R, X + 1)

    def take(self, state: GenerationState, g: int, sampled: torch.Tensor) -> None:
        S = len(self.scale_rows)
        if g < S:  # a first-frame scale: kept as a map for the groups after it
            m = self.first_frame_scales[g] * self.patch
            flat = self.unpatchify(sampled, grid=(m, m)).float()  # (B, m*m, C)
            maps = state.extra.setdefault("scales", [])
            del maps[g:]
            maps.append(flat.transpose(1, 2).reshape(flat.shape[0], -1, m, m))  # (B, C, m, m)
            return
        N, f = self.frame_layout.tokens_per_frame, g - S
        state.codes[:, f * N : (f + 1) * N] = self.unpatchify(sampled)  # (B, h*w, C)
