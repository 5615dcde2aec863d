"""Flow heads: a continuous latent per row, sampled by rectified flow (``mmgen.generation.flow``).

``FlowMLPHead`` is MAR's ``SimpleMLPAdaLN`` trained with flow matching instead of DDPM (as
CLEAR's audio head): a small residual MLP, adaLN-modulated by (time, the row's hidden state),
predicts the velocity of one token's latent. Its ``forward`` returns the conditioning (the
hidden states); ``sample`` integrates the flow per row, mixing conditional and unconditional
velocities under guidance.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mmgen.generation.flow import (
    TIME_SAMPLINGS,
    draw_noise,
    draw_times,
    draw_training_noise,
    euler_sample,
    flow_matching_loss,
)
from mmgen.models.rope import sinusoidal_features
from mmgen.utils.checks import check_int


def timestep_embedding(t_N: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features (N, dim) of times ``t`` in [0, 1] (scaled to [0, 1000] like DiT)."""
    return sinusoidal_features(1000.0 * t_N.float(), dim, max_period)


class AdaLNBlock(nn.Module):
    """LayerNorm -> (shift, scale) from the conditioning -> MLP -> gated residual."""

    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 3 * width))
        nn.init.zeros_(self.modulation[-1].weight)  # each block starts as the identity
        nn.init.zeros_(self.modulation[-1].bias)

    def forward(self, x_NW: torch.Tensor, c_NW: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.modulation(c_NW).chunk(3, dim=-1)
        return x_NW + gate * self.mlp(self.norm(x_NW) * (1 + scale) + shift)


class FlowHead(nn.Module):
    """What the flow heads share: ``forward`` returns the conditioning; ``training_draws``,
    ``loss`` and ``sample`` run the rectified-flow core over *units*: one row each
    (``per_row``) or a whole group. Subclasses give ``velocity(x, t, z)`` and set
    ``latent_channels`` and ``num_draws``, and may set ``times`` (how training draws flow
    times: ``mmgen.generation.flow.TIME_SAMPLINGS``) with :meth:`set_times`.

    A head built with ``input_channels`` > 0 (a head spec's ``reads_inputs: true``; the model
    fills in its input adapter's channels) also reads each row's backbone input, the row the
    order fed the backbone there, added to its embedding of ``x_t`` through ``inputs_in``:
    next-frame's previous frame at the same place, continuous next-scale's upsampled coarser
    map. ``loss`` and ``sample`` then take those rows as ``inputs`` (B, n, I)."""

    per_row: bool = True
    times: str = "uniform"
    #: channels of the rows' backbone inputs the head also reads (0: none; see ``reads_inputs``)
    input_channels: int = 0

    def set_input_channels(self, input_channels: int) -> None:
        """Read the rows' backbone inputs of ``input_channels`` (> 0) channels, or none (0)."""
        if input_channels:
            check_int("flow head input_channels", input_channels)
            self.input_channels = input_channels
            self.inputs_in = nn.Linear(input_channels, self.width)

    def embed(self, x: torch.Tensor, inputs: torch.Tensor | None, dtype) -> torch.Tensor:
        """The head's first hidden state: ``x_in(x)``, plus ``inputs_in(inputs)`` when the head
        reads inputs."""
        h = self.x_in(x.to(dtype))
        if self.input_channels:
            if inputs is None:
                raise ValueError(f"{type(self).__name__} reads the rows' inputs: pass inputs=")
            h = h + self.inputs_in(inputs.to(dtype))
        return h

    def set_times(self, times: str) -> None:
        """Training's flow times: ``"uniform"`` or ``"logit_normal"`` (SD3, FAR)."""
        if times not in TIME_SAMPLINGS:
            raise ValueError(f"head times must be one of {list(TIME_SAMPLINGS)}, got {times!r}")
        self.times = times

    def units(self, t_BnX: torch.Tensor) -> torch.Tensor:
        """(B, n, X) -> (B * n, X) per row, or unchanged per group."""
        return t_BnX.reshape(-1, t_BnX.shape[-1]) if self.per_row else t_BnX

    def repeat_draws(self, t_UX: torch.Tensor) -> torch.Tensor:
        """Units (U, ...) -> (num_draws * U, ...): every unit seen with several noise draws."""
        return t_UX.repeat(self.num_draws, *([1] * (t_UX.ndim - 1)))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> the same: the conditioning generation mixes and samples with."""
        return hidden

    def training_draws(self, targets: torch.Tensor, generator) -> dict[str, torch.Tensor]:
        """Noise and times for :meth:`loss` on (B, n, C) ``targets``, from ``generator``."""
        noise, t = draw_training_noise(
            self.repeat_draws(self.units(targets)).shape, generator, targets.device, self.times
        )
        return {"noise": noise, "t": t}

    def loss(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        draws: dict[str, torch.Tensor],
        row_weights: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Flow-matching loss of (B, n, C) target latents given (B, n, D) hidden states, each
        unit seen ``num_draws`` times with the noise and times of :meth:`training_draws`;
        ``row_weights`` (n,) weighs row i's units by ``row_weights[i]`` (per-row heads);
        ``inputs`` (B, n, I) are the rows' backbone inputs (a head that reads them)."""
        z, x = self.repeat_draws(self.units(hidden)), self.repeat_draws(self.units(targets))
        fed = None if inputs is None else self.repeat_draws(self.units(inputs))
        weight = None
        if row_weights is not None:
            if not self.per_row:
                raise ValueError(f"{type(self).__name__} weighs groups, not rows of units")
            weight = self.repeat_draws(row_weights.repeat(targets.shape[0]))  # (U,)
        return flow_matching_loss(
            lambda x_t, t: self.velocity(x_t, t, z, fed), x, draws["noise"], draws["t"], weight
        )

    def sample(
        self,
        outputs: torch.Tensor,
        batch_size: int,
        guidance_scale: float,
        sampling,
        generator,
        inputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B', n, D) conditioning (B' = 2B under guidance: conditional rows first) -> (B, n, C)
        latents, ``sampling.num_inference_steps`` Euler steps from noise scaled by
        ``sampling.temperature`` (``generator`` one, or a list of B: sample b's noise from the
        b-th); ``inputs`` (B', n, I): the rows' backbone inputs (a head that reads them)."""
        n, C = outputs.shape[1], self.latent_channels
        guided = outputs.shape[0] != batch_size and guidance_scale != 1.0
        z = self.units(outputs if guided else outputs[:batch_size])
        fed = None
        if inputs is not None:
            fed = self.units(inputs if guided else inputs[:batch_size])
        latents = euler_sample(
            lambda x_t, t: self.velocity(x_t, t, z, fed),
            (batch_size * n, C) if self.per_row else (batch_size, n, C),
            num_steps=sampling.num_inference_steps,
            generator=generator,
            temperature=sampling.temperature,
            guidance_scale=guidance_scale if guided else 1.0,
            device=outputs.device,
        )
        return latents.reshape(batch_size, n, C)


class FlowMLPHead(FlowHead):
    """Per-row flow head over ``latent_channels`` (MAR / CLEAR).

    Args:
        dim: the backbone's width D.
        latent_channels: C, the channels of one row's latent.
        width: the MLP's width.
        depth: residual adaLN blocks.
        num_draws: noise draws per row per training step (MAR's ``diffusion_batch_mul``).
        times: how training draws flow times, ``"uniform"`` or ``"logit_normal"``.
        input_channels: channels of the rows' backbone inputs the head reads (0: none).
    """

    def __init__(
        self,
        dim: int,
        latent_channels: int,
        width: int = 256,
        depth: int = 3,
        num_draws: int = 4,
        times: str = "uniform",
        input_channels: int = 0,
    ):
        super().__init__()
        self.set_times(times)
        for name, value in (("latent_channels", latent_channels), ("width", width),
                            ("depth", depth), ("num_draws", num_draws)):  # fmt: skip
            check_int(f"flow head {name}", value)
        self.latent_channels, self.num_draws, self.width = latent_channels, num_draws, width
        self.x_in = nn.Linear(latent_channels, width)
        self.t_in = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.z_in = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(AdaLNBlock(width) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.out_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, latent_channels)
        for layer in (self.out_modulation[-1], self.out):  # start predicting zero velocity
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.set_input_channels(input_channels)

    def velocity(
        self,
        x_NC: torch.Tensor,
        t_N: torch.Tensor,
        z_ND: torch.Tensor,
        inputs_NI: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted velocity (N, C) of latents ``x`` at times ``t`` given hidden states ``z``
        (and the rows' backbone inputs, a head that reads them)."""
        c = self.t_in(timestep_embedding(t_N, self.width).to(z_ND.dtype)) + self.z_in(z_ND)
        h = self.embed(x_NC, inputs_NI, z_ND.dtype)
        for block in self.blocks:
            h = block(h, c)
        shift, scale = self.out_modulation(c).chunk(2, dim=-1)
        return self.out(self.out_norm(h) * (1 + scale) + shift)


class GroupFlowHead(FlowHead):
    """Group flow head (FlowAR / FAR): a whole group's latents denoised jointly by a small
    bidirectional transformer of the backbone's own :class:`DecoderBlock` (every row of the group
    sees every other: ``kv_end = n``, 2-D rotary positions on the group's map). Each row is
    conditioned on its backbone hidden state and on ``t`` through FlowAR's spatial adaLN: per
    row, ``c = z_in(z) + t_in(t)`` gives the shift, scale and gate of both sub-blocks
    (``x + gate * attn(norm(x) * (1 + scale) + shift)``, then the MLP alike; DiT's adaLN-zero,
    with a different modulation at every position). The gates start at zero: every block starts
    as the identity.

    Args:
        dim: the backbone's width D.
        latent_channels: C, the channels of one row's latent.
        width: the head transformer's width.
        depth: its decoder blocks.
        num_heads: its attention heads (``width`` must divide by it).
        num_draws: noise draws per group per training step.
        group_shapes: the (h, w) map of every generated group, in order (the order sets it),
            repeated as often as the rows need (one entry: every group alike, as the frames
            of a clip): training splits the rows into these groups, each with its own time,
            and a group of n rows at generation sits on the map of that size. None: every
            call's rows are one group on a 1 x n line.
        clean_group_prob: probability that a training group is left out of the loss (FAR's
            stochastic clean context: that frame is context only).
        times: how training draws each group's flow time, ``"uniform"`` or
            ``"logit_normal"`` (FAR's).
        input_channels: channels of the rows' backbone inputs the head reads (0: none).
    """

    per_row = False

    def __init__(
        self,
        dim: int,
        latent_channels: int,
        width: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        num_draws: int = 1,
        group_shapes: list[list[int]] | None = None,
        clean_group_prob: float = 0.0,
        times: str = "uniform",
        input_channels: int = 0,
    ):
        super().__init__()
        self.set_times(times)
        if not 0 <= clean_group_prob < 1:
            raise ValueError(f"clean_group_prob must be in [0, 1), got {clean_group_prob!r}")
        self.clean_group_prob = float(clean_group_prob)
        from mmgen.models.blocks import DecoderBlock
        from mmgen.models.rope import RotaryEmbedding

        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.latent_channels, self.num_draws, self.width = latent_channels, num_draws, width
        self.group_shapes = None if group_shapes is None else [tuple(s) for s in group_shapes]
        self.shape_of_size = {}
        for shape in self.group_shapes or []:
            if len(shape) != 2 or min(shape) < 1:
                raise ValueError(f"group_shapes entries must be (h, w) >= 1, got {shape}")
            known = self.shape_of_size.setdefault(shape[0] * shape[1], shape)
            if known != shape:
                raise ValueError(f"group_shapes {known} and {shape} have the same size")
        self.x_in = nn.Linear(latent_channels, width)
        self.z_in = nn.Linear(dim, width)
        self.t_in = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.rope = RotaryEmbedding(width // num_heads, kind="2d")
        self.blocks = nn.ModuleList(
            DecoderBlock(
                width, num_heads, num_heads, 4 * width, qk_norm=True, norm_eps=1e-6, backend="sdpa"
            )  # fmt: skip
            for _ in range(depth)
        )
        self.modulations = nn.ModuleList(
            nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width)) for _ in range(depth)
        )
        self.out_norm = nn.RMSNorm(width, eps=1e-6)
        self.out_modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.out = nn.Linear(width, latent_channels)
        for layer in (*(m[-1] for m in self.modulations), self.out_modulation[-1], self.out):
            nn.init.zeros_(layer.weight)  # identity blocks, zero velocity at the start
            nn.init.zeros_(layer.bias)
        self.set_input_channels(input_channels)

    def group_map(self, n: int) -> tuple[int, int]:
        """The (h, w) map a group of ``n`` rows sits on."""
        if self.group_shapes is None:
            return (1, n)
        if n not in self.shape_of_size:
            raise ValueError(f"no group of {n} rows in group_shapes {self.group_shapes}")
        return self.shape_of_size[n]

    def group_bounds(self, num_rows: int) -> list[tuple[int, int]]:
        """(start, end) rows of each group of a teacher-forced sequence of ``num_rows``: all of
        ``group_shapes`` (or a multiple of them), or its first groups (a video order's
        one-frame sequence: frame 0's scales and frame 0 of a clip's shapes)."""
        sizes = [num_rows] if self.group_shapes is None else [h * w for h, w in self.group_shapes]
        ends = list(itertools.accumulate(sizes))
        if num_rows in ends:
            sizes = sizes[: ends.index(num_rows) + 1]
        elif num_rows % ends[-1] == 0:
            sizes = sizes * (num_rows // ends[-1])
        else:
            raise ValueError(f"group_shapes {self.group_shapes} hold {ends[-1]} rows (or a "
                             f"multiple, or the first groups' {ends[:-1]}), "
                             f"got {num_rows}")  # fmt: skip
        bounds, start = [], 0
        for size in sizes:
            bounds.append((start, start + size))
            start += size
        return bounds

    def training_draws(self, targets: torch.Tensor, generator) -> dict[str, torch.Tensor]:
        """Noise like the repeated (num_draws * B, N, C) targets, one time per group and unit,
        (num_draws * B, groups), and with ``clean_group_prob`` > 0 the weight of each group in
        the loss (``"keep"``: 0 for a clean-context group, else 1)."""
        x = self.repeat_draws(targets)
        groups = len(self.group_bounds(x.shape[1]))
        noise = draw_noise(x.shape, generator, targets.device)
        t = draw_times(x.shape[0] * groups, generator, targets.device, self.times)
        draws = {"noise": noise, "t": t.view(x.shape[0], groups)}
        if self.clean_group_prob > 0:
            clean = draw_times(x.shape[0] * groups, generator, targets.device)
            draws["keep"] = (clean >= self.clean_group_prob).float().view(x.shape[0], groups)
        return draws

    def loss(self, hidden, targets, draws, row_weights=None, inputs=None):
        """Flow-matching loss over every group of the sequence, each denoised alone at its own
        time: the mean over the rows of the groups kept (all without ``draws["keep"]``), each
        row counting ``row_weights[i]`` ((n,); 1 when None); ``inputs`` as for
        :meth:`FlowHead.loss`."""
        z, x = self.repeat_draws(hidden), self.repeat_draws(targets)
        fed = None if inputs is None else self.repeat_draws(inputs)
        keep = draws.get("keep")
        total, rows = 0.0, 0.0
        bounds = self.group_bounds(x.shape[1])
        if row_weights is None:
            masses = [b - a for a, b in bounds]
        else:  # (n,) -> each group's summed row weights
            masses = [row_weights[a:b].sum() for a, b in bounds]
        for g, (a, b) in enumerate(bounds):
            z_g, fed_g = z[:, a:b], None if fed is None else fed[:, a:b]
            weight = None if keep is None else keep[:, g]  # (U,)
            loss_g = flow_matching_loss(
                lambda x_t, t, z_g=z_g, fed_g=fed_g: self.velocity(x_t, t, z_g, fed_g),
                x[:, a:b],
                draws["noise"][:, a:b],
                draws["t"][:, g],
                weight=weight,
            )
            share = 1.0 if keep is None else keep[:, g].mean()
            total = total + loss_g * share * masses[g]
            rows = rows + share * masses[g]
        if keep is None and row_weights is None:
            return total / x.shape[1]
        return total / torch.clamp(rows, min=1e-6)

    def velocity(
        self,
        x_BnC: torch.Tensor,
        t_B: torch.Tensor,
        z_BnD: torch.Tensor,
        inputs_BnI: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predicted velocity (B, n, C) of each group's latents at its time ``t`` (given the
        rows' backbone inputs too, a head that reads them)."""
        n = x_BnC.shape[1]
        t_emb = self.t_in(timestep_embedding(t_B, self.width).to(z_BnD.dtype))  # (B, W)
        c = self.z_in(z_BnD) + t_emb[:, None]  # (B, n, W): each row's own conditioning
        h = self.embed(x_BnC, inputs_BnI, z_BnD.dtype)
        gh, gw = self.group_map(n)
        rows = torch.arange(n, device=h.device)
        positions = torch.stack([torch.zeros_like(rows), rows // gw, rows % gw], dim=-1)
        cos, sin = self.rope.cos_sin(positions)  # (n, Dh/2)
        kv_end = torch.full((n,), n, dtype=torch.int32, device=h.device)  # full attention
        for block, modulation in zip(self.blocks, self.modulations):
            shift1, scale1, gate1, shift2, scale2, gate2 = modulation(c).chunk(6, dim=-1)
            a = block.attn(block.attn_norm(h) * (1 + scale1) + shift1, cos, sin, kv_end)
            h = h + gate1 * a
            h = h + gate2 * block.mlp(block.mlp_norm(h) * (1 + scale2) + shift2)
        shift, scale = self.out_modulation(c).chunk(2, dim=-1)
        return self.out(self.out_norm(h) * (1 + scale) + shift)
