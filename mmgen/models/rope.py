"""Rotary position embeddings over 3-D token positions, and the FlexRoPE temporal-decay bias.

Every token carries an integer position ``(t, h, w)`` (see DESIGN.md, "Positions"). All RoPE
variants share one rotation routine, :func:`apply_rotary`, in the half-split layout: frequency
pair ``k`` is the channel pair ``(k, k + D/2)``. Variants differ only in a per-pair table:

* ``axis[k]``: which position axis pair ``k`` reads (0 = t, 1 = h, 2 = w);
* ``inv_freq[k]``: its angular frequency ``omega_k``;

and the rotation angle is ``angle[..., k] = position[..., axis[k]] * omega_k`` (float32).

Kinds (``D`` = head dim, ``b`` = base):

* ``"1d"``: plain RoPE on ``t``; ``omega_k = b^(-2k/D)``.
* ``"2d"``: axial, as LlamaGen's ``precompute_freqs_cis_2d``: the first ``D/4`` pairs read ``h``,
  the last ``D/4`` read ``w``, each with its own spectrum ``b^(-2j/(D/2))``; ``t`` is unused.
* ``"3d"``: axial, as FAR's ``FluxPosEmbed(axes_dim=(16, 24, 24))`` for ``D = 64``: pairs split
  ``t:h:w = 2:3:3``, each axis with its own spectrum ``b^(-2j/d_a)``, concatenated ``t|h|w``.
* ``"mmrope"``: Lumos-1 MM-RoPE: the standard spectrum ``b^(-2j/D)``, with the axis chosen by
  ``j mod 16`` (t: {0..3}, h: {4, 5, 8, 9, 12, 13}, w: {6, 7, 10, 11, 14, 15}), so every axis
  spans the whole spectrum.

Text tokens use ``t = h = w = index``; "mmrope" then equals "1d" bitwise, and every kind gives
scores that depend only on the index difference.

Layout note: FAR (diffusers) rotates interleaved pairs ``(2m, 2m + 1)``. That is the same rotation
up to a fixed permutation of q/k channels, so attention scores are identical; a checkpoint
converter must permute the q/k projection rows, nothing here changes.
"""

from __future__ import annotations

import math

import torch
from torch import nn

ROPE_KINDS = ("1d", "2d", "3d", "mmrope")

# MM-RoPE axis of frequency j, by j mod 16 (Lumos-1 `modeling_chameleon_mm_rope.py`).
_MMROPE_BLOCK_AXES = (0, 0, 0, 0, 1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2)


def _spectrum(num_pairs: int, base: float) -> torch.Tensor:
    """``base^(-2j/(2 * num_pairs))`` for ``j < num_pairs``, computed in float64, as float32."""
    exponent = torch.arange(num_pairs, dtype=torch.float64) * (2.0 / (2 * num_pairs))
    return (float(base) ** -exponent).to(torch.float32)


def _rope_table(head_dim: int, kind: str, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Builds the per-pair ``(inv_freq, axis)`` table of one RoPE kind; see the module docstring."""
    num_pairs = head_dim // 2
    if kind == "1d":
        return _spectrum(num_pairs, base), torch.zeros(num_pairs, dtype=torch.long)
    if kind == "mmrope":
        axes = torch.tensor(_MMROPE_BLOCK_AXES, dtype=torch.long).repeat(num_pairs // 16)
        return _spectrum(num_pairs, base), axes
    if kind == "2d":
        pairs_per_axis = (0, num_pairs // 2, num_pairs // 2)
    else:  # "3d": t:h:w = 2:3:3
        pairs_per_axis = (num_pairs // 4, 3 * num_pairs // 8, 3 * num_pairs // 8)
    inv_freq = torch.cat([_spectrum(n, base) for n in pairs_per_axis if n > 0])
    axes = torch.cat(
        [torch.full((n,), a, dtype=torch.long) for a, n in enumerate(pairs_per_axis) if n > 0]
    )
    return inv_freq, axes


class RotaryEmbedding(nn.Module):
    """Rotary position embedding driven by 3-D ``(t, h, w)`` token positions.

    The module has no parameters. Its two buffers are non-persistent (rebuilt from the
    constructor arguments, never saved): ``inv_freq`` (D/2,) float32, the frequency of each pair,
    and ``axis`` (D/2,) long, the position axis each pair reads. Moving or casting the module
    rebuilds them on the new device, so ``inv_freq`` stays float32 even after
    ``module.to(torch.bfloat16)``: angles at large positions need float32.

    Args:
        head_dim (`int`):
            Channels per attention head, ``D``. Must be even; ``"2d"`` needs ``D % 4 == 0``,
            ``"3d"`` needs ``D % 16 == 0`` and ``"mmrope"`` needs ``D % 32 == 0``.
        kind (`str`, defaults to `"1d"`):
            One of ``ROPE_KINDS``: ``"1d"``, ``"2d"``, ``"3d"`` or ``"mmrope"``.
        base (`float`, defaults to `10000.0`):
            RoPE base ``b``; frequencies are ``b^(-2j/d)``.

    Examples:
        >>> rope = RotaryEmbedding(64, kind="mmrope")
        >>> positions = torch.tensor([[0, 0, 0], [1, 1, 1], [5, 2, 3]])  # (L, 3)
        >>> cos, sin = rope.cos_sin(positions)  # each (L, 32)
        >>> q = apply_rotary(torch.randn(1, 4, 3, 64), cos, sin)  # (B, H, L, D)
    """

    def __init__(self, head_dim: int, kind: str = "1d", base: float = 10000.0):
        super().__init__()
        if kind not in ROPE_KINDS:
            raise ValueError(f"Unknown RoPE kind={kind!r}; expected one of {ROPE_KINDS}.")
        multiple = {"1d": 2, "2d": 4, "3d": 16, "mmrope": 32}[kind]
        if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
            raise ValueError(f"head_dim must be a positive int, got head_dim={head_dim!r}.")
        if head_dim % multiple:
            raise ValueError(
                f"RoPE kind={kind!r} needs head_dim divisible by {multiple}, "
                f"got head_dim={head_dim}."
            )
        if not base > 1.0:
            raise ValueError(f"RoPE base must be > 1, got base={base!r}.")
        self.head_dim = head_dim
        self.kind = kind
        self.base = float(base)
        inv_freq, axis = _rope_table(head_dim, kind, self.base)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (D/2,) float32
        self.register_buffer("axis", axis, persistent=False)  # (D/2,) long

    def _apply(self, fn, recurse=True):
        # The tables are a function of (head_dim, kind, base) and the device only. Rebuild them
        # after every move or cast: `module.to(torch.bfloat16)` would otherwise cast `inv_freq`
        # (ruining angles at large positions) and `to_empty()` would leave it uninitialised.
        super()._apply(fn, recurse)
        inv_freq, axis = _rope_table(self.head_dim, self.kind, self.base)
        self.inv_freq = inv_freq.to(self.inv_freq.device)
        self.axis = axis.to(self.axis.device)
        return self

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, kind={self.kind!r}, base={self.base}"

    def angles(self, positions: torch.Tensor) -> torch.Tensor:
        """Rotation angle of every frequency pair of every token.

        Args:
            positions (`torch.Tensor`):
                Integer ``(t, h, w)`` positions of shape ``(..., L, 3)``.

        Returns:
            `torch.Tensor`: ``positions[..., axis[k]] * inv_freq[k]`` of shape ``(..., L, D/2)``,
            float32.
        """
        if positions.ndim < 2 or positions.shape[-1] != 3:
            raise ValueError(
                "positions must have shape (..., L, 3), "
                f"got positions.shape={tuple(positions.shape)}."
            )
        positions = positions.to(device=self.inv_freq.device, dtype=torch.float32)  # (..., L, 3)
        per_pair = positions.index_select(-1, self.axis)  # (..., L, D/2)
        return per_pair * self.inv_freq  # (..., L, D/2)

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine and sine tables for :func:`apply_rotary`.

        Args:
            positions (`torch.Tensor`):
                Integer ``(t, h, w)`` positions of shape ``(..., L, 3)``.

        Returns:
            `tuple[torch.Tensor, torch.Tensor]`: ``(cos, sin)``, each ``(..., L, D/2)`` float32.
            A token at position ``(0, 0, 0)`` gets ``cos = 1, sin = 0`` (the identity), never 0.
        """
        angles = self.angles(positions)  # (..., L, D/2)
        return angles.cos(), angles.sin()

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`cos_sin`."""
        return self.cos_sin(positions)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates queries or keys by RoPE, half-split layout (pair ``k`` is channels ``k, k + D/2``).

    ``out = cat(x1 * cos - x2 * sin, x1 * sin + x2 * cos)`` with ``x1, x2`` the two halves of
    ``x``. Computed in float32, returned in ``x.dtype``.

    Args:
        x (`torch.Tensor`):
            Queries or keys of shape ``(B, H, L, D)``, any float dtype.
        cos (`torch.Tensor`):
            Cosines of shape ``(L, D/2)`` (shared by the batch) or ``(B, L, D/2)``, from
            :meth:`RotaryEmbedding.cos_sin`.
        sin (`torch.Tensor`):
            Sines, same shape as ``cos``.

    Returns:
        `torch.Tensor`: The rotated tensor, same shape and dtype as ``x``.
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (B, H, L, D), got x.shape={tuple(x.shape)}.")
    if cos.shape != sin.shape:
        raise ValueError(f"cos and sin shapes differ: {tuple(cos.shape)} vs {tuple(sin.shape)}.")
    half = x.shape[-1] // 2
    if cos.ndim not in (2, 3) or cos.shape[-1] != half or x.shape[-1] != 2 * half:
        raise ValueError(
            f"cos/sin must have shape (L, D/2) or (B, L, D/2) for x of shape (B, H, L, D)="
            f"{tuple(x.shape)}, got {tuple(cos.shape)}."
        )
    if cos.ndim == 3:  # (B, L, D/2) -> (B, 1, L, D/2), broadcast over heads
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    cos, sin = cos.to(torch.float32), sin.to(torch.float32)
    x32 = x.to(torch.float32)
    x1, x2 = x32[..., :half], x32[..., half:]  # each (B, H, L, D/2)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)  # (B, H, L, D)
    return out.to(x.dtype)


def sinusoidal_features(x_N: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoidal features (N, dim) of values ``x`` (N,): ``cos(x * omega_k)`` then
    ``sin(x * omega_k)`` for ``omega_k = max_period^(-k / (dim/2))``, k < dim/2 (dim even)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=x_N.device) / half)
    angles = x_N.float()[:, None] * freqs[None]  # (N, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def flexrope_bias(frame_q: torch.Tensor, frame_k: torch.Tensor, decay: float) -> torch.Tensor:
    """FlexRoPE temporal decay: an additive attention bias ``-decay * (frame_q - frame_k)``.

    This is the form in FAR's released code (``slope_scale``): one non-negative scalar for all
    heads and layers, on frame distance (not token distance). It is 0 inside a frame, 0 everywhere
    when ``decay == 0`` (attention is then exactly RoPE plus the mask), and depends only on frame
    differences, so sliding windows and caches see the same per-distance bias. Add it to the
    scaled ``q @ k^T`` scores.

    The bias is returned for every pair, including future frames where it is positive: the caller
    must still apply the group-causal mask (masked pairs set to ``-inf``), which this function
    does not do.

    Args:
        frame_q (`torch.Tensor`):
            Frame id of each query, shape ``(Lq,)`` or ``(B, Lq)``.
        frame_k (`torch.Tensor`):
            Frame id of each key, shape ``(Lk,)`` or ``(B, Lk)``.
        decay (`float`):
            Slope ``lambda >= 0`` per frame of distance; 0 disables the bias.

    Returns:
        `torch.Tensor`: float32 bias of shape ``(Lq, Lk)``, or ``(B, Lq, Lk)`` if either input is
        batched.
    """
    decay = float(decay)
    if not decay >= 0.0:  # also rejects NaN
        raise ValueError(f"FlexRoPE decay must be >= 0, got decay={decay!r}.")
    if frame_q.ndim not in (1, 2) or frame_k.ndim not in (1, 2):
        raise ValueError(
            f"frame_q and frame_k must have shape (L,) or (B, L), got {tuple(frame_q.shape)} and "
            f"{tuple(frame_k.shape)}."
        )
    # Subtract before casting, so integer frame ids give exact distances.
    distance = frame_q.unsqueeze(-1) - frame_k.unsqueeze(-2)  # (..., Lq, Lk)
    return distance.to(torch.float32) * -decay
