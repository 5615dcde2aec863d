"""Heads: hidden states -> a training loss and a sampler; each owns its guidance mixing.

A head's ``forward`` gives what generation mixes and samples (logits here; the flow heads of
``mmgen.models.flow_heads`` give their conditioning and mix velocities per ODE step).
``training_draws(targets, generator)`` draws what the loss needs at random (None here; noise
and times for a flow head), outside the compiled forward; ``loss(hidden, targets, draws)``
uses it. ``sample`` takes the outputs of the doubled batch under guidance (conditional rows
first) and returns one draw per real row.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmgen.generation import guidance
from mmgen.generation.logits_processors import sample as sample_logits
from mmgen.models.inputs import ResidualMLP

IGNORE_INDEX = -100


class CategoricalHead(nn.Module):
    """A softmax over ``num_codes`` per row (LlamaGen / VAR): ``Linear(D, K)``."""

    def __init__(self, dim: int, num_codes: int):
        super().__init__()
        self.num_codes = num_codes
        self.proj = nn.Linear(dim, num_codes, bias=False)

    def zero_init(self) -> None:
        """Start from uniform predictions."""
        nn.init.zeros_(self.proj.weight)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> (B, n, K) logits."""
        return self.proj(hidden)

    def training_draws(self, targets: torch.Tensor, generator) -> None:
        """A categorical loss draws nothing (flow heads draw their noise here)."""
        return None

    def loss(
        self,
        hidden: torch.Tensor,
        targets: torch.Tensor,
        draws=None,
        row_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean cross-entropy (float32) of the rows' codes; ``IGNORE_INDEX`` targets skipped.

        ``row_weights`` (n,) makes it a weighted mean: every code of row i counts
        ``row_weights[i]`` (see :func:`group_loss_weights`)."""
        logits = self(hidden)  # (B, n[, s^2], K)
        flat_logits = logits.reshape(-1, logits.shape[-1]).float()
        flat_targets = targets.reshape(-1)
        if row_weights is None:
            return F.cross_entropy(flat_logits, flat_targets, ignore_index=IGNORE_INDEX)
        per_code = F.cross_entropy(
            flat_logits, flat_targets, ignore_index=IGNORE_INDEX, reduction="none"
        ).view_as(targets)  # (B, n[, s^2]), 0 where ignored
        shape = (1, -1) + (1,) * (targets.ndim - 2)
        weights = (targets != IGNORE_INDEX) * row_weights.view(shape)  # (B, n[, s^2])
        return (per_code * weights).sum() / weights.sum().clamp_min(1e-12)

    def sample(
        self,
        outputs: torch.Tensor,
        batch_size: int,
        guidance_scale: float,
        sampling,
        generator,  # a torch.Generator, one per batch row, or None
    ) -> torch.Tensor:
        """(B', n, ..., K) logits -> (B, n, ...) codes; with B' = 2B the second half is the
        unconditional batch, mixed at ``guidance_scale``."""
        logits = outputs
        if outputs.shape[0] != batch_size:
            logits = guidance.mix_guidance(
                outputs[:batch_size], outputs[batch_size:], guidance_scale
            )
        return sample_logits(
            logits,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            generator=generator,
        )


class MultiCategoricalHead(CategoricalHead):
    """Token-Shuffle's unshuffle + ``window^2`` codes per row.

    The row's D channels split into s^2 parts, an MLP expands each back to D, a residual MLP
    block follows, and one shared ``Linear(D, K)`` gives (B, n, s^2, K) logits.
    ``residual_mlp=False`` leaves the block out: it runs once per part, so at width 256 it is
    two thirds of the head's compute and 18% of a training step's matmul work (6 layers).
    """

    def __init__(self, dim: int, num_codes: int, window: int, residual_mlp: bool = True):
        super().__init__(dim, num_codes)
        parts = window * window
        if dim % parts:
            raise ValueError(f"dim {dim} is not divisible by window^2 = {parts}")
        self.window = window
        self.expand = nn.Sequential(nn.Linear(dim // parts, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.mix = ResidualMLP(dim) if residual_mlp else nn.Identity()
        self.norm = nn.RMSNorm(dim)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, n, D) -> (B, n, s^2, K) logits."""
        B, n, D = hidden.shape
        parts = self.window * self.window
        x = self.expand(hidden.reshape(B, n, parts, D // parts))  # (B, n, s^2, D)
        return self.proj(self.norm(self.mix(x)))


def group_loss_weights(
    targets: torch.Tensor,
    group_rows: list[int],
    power: float,
    first_group_weight: float = 1.0,
    first_groups: int = 1,
) -> torch.Tensor:
    """Row weights for a head's ``loss`` that weigh each target of a group holding n targets
    by n^-power (0: every target alike; 1: every group the same share), those of the first
    group ``first_group_weight`` times more.

    Args:
        targets: (B, n[, s^2]) codes of one batch (``IGNORE_INDEX`` where a row holds fewer),
            or (B, n, C) latents of a flow head, where a row is one target (the unit its loss
            averages over); only the first sample is read, every sample has the same rows.
        group_rows: rows per generation group, in order (summing to n).
        power: the exponent, in [0, 1].
        first_group_weight: the factor on the first groups' weights (> 0).
        first_groups: how many groups count as the first (the order's
            ``first_output_groups``).

    Returns:
        (n,) float32 weights, one per row.
    """
    if targets.is_floating_point():  # latents: one target per row
        per_row = torch.ones(targets.shape[1], dtype=torch.long)  # (n,)
    else:
        per_row = (targets[0] != IGNORE_INDEX).reshape(targets.shape[1], -1).sum(-1)  # (n,)
    if sum(group_rows) != per_row.numel():
        raise ValueError(f"groups of {sum(group_rows)} rows for targets of {per_row.numel()}")
    weights = []
    for rows, counts in zip(group_rows, per_row.split(group_rows)):
        n = max(int(counts.sum()), 1)  # the group's targets
        weights.append(torch.full((rows,), n**-power))
    for g in range(first_groups):
        weights[g] *= first_group_weight
    return torch.cat(weights).to(targets.device)


HEAD_KINDS = {
    "categorical": "mmgen.models.heads:CategoricalHead",
    "multi_categorical": "mmgen.models.heads:MultiCategoricalHead",
    "flow_mlp": "mmgen.models.flow_heads:FlowMLPHead",
    "group_flow": "mmgen.models.flow_heads:GroupFlowHead",
}


def build_head(spec: dict, dim: int) -> nn.Module:
    """The head a config's ``head`` dict names (see ``HEAD_KINDS``)."""
    from mmgen.models.plugins import build_plugin

    return build_plugin(spec, dim, HEAD_KINDS, "head")
