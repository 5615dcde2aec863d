"""Property tests for mmgen/models/rope.py (reference: video-audio-rope.md, section 7)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mmgen.models.rope import ROPE_KINDS, RotaryEmbedding, apply_rotary, flexrope_bias

HEAD_DIM = 64
FAST = settings(max_examples=20, deadline=None)
MMROPE_AXIS_SETS = ((0, 1, 2, 3), (4, 5, 8, 9, 12, 13), (6, 7, 10, 11, 14, 15))


# ----------------------------------------------------------------------------------------------
# Helpers: an independent, loop-by-loop statement of each kind's (omega, axis) table.


def expected_table(head_dim: int, kind: str, base: float = 10000.0):
    """(omega float64 (D/2,), axis list) written straight from the spec, one pair at a time."""
    num_pairs = head_dim // 2
    omega, axis = [], []
    if kind in ("1d", "mmrope"):
        for j in range(num_pairs):
            omega.append(base ** (-2 * j / head_dim))
            if kind == "1d":
                axis.append(0)
            else:
                axis.append(next(a for a, s in enumerate(MMROPE_AXIS_SETS) if j % 16 in s))
    else:
        if kind == "2d":
            counts = (0, num_pairs // 2, num_pairs // 2)
        else:
            counts = (num_pairs // 4, 3 * num_pairs // 8, 3 * num_pairs // 8)
        for a, n in enumerate(counts):
            for j in range(n):
                omega.append(base ** (-2 * j / (2 * n)))
                axis.append(a)
    return torch.tensor(omega, dtype=torch.float64), axis


def random_positions(num_tokens: int, high: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, high, (num_tokens, 3), generator=generator)  # (L, 3)


def rotate(rope: RotaryEmbedding, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    cos, sin = rope.cos_sin(positions)
    return apply_rotary(x, cos, sin)


def scores(rope, q, k, pos_q, pos_k) -> torch.Tensor:
    """<R(p_i) q_i, R(p'_j) k_j> for all i, j: (B, H, Lq, Lk)."""
    return rotate(rope, q, pos_q) @ rotate(rope, k, pos_k).transpose(-1, -2)


def pair_channels(pairs) -> list[int]:
    """Half-split layout: pair k is channels k and k + D/2."""
    pairs = list(pairs)
    return pairs + [p + HEAD_DIM // 2 for p in pairs]


# ----------------------------------------------------------------------------------------------
# Tables and construction.


@pytest.mark.parametrize("head_dim", [32, 64, 128])
@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_table_matches_spec(kind, head_dim):
    rope = RotaryEmbedding(head_dim, kind=kind)
    omega, axis = expected_table(head_dim, kind)
    assert rope.inv_freq.dtype == torch.float32 and rope.inv_freq.shape == (head_dim // 2,)
    assert rope.axis.dtype == torch.long and rope.axis.tolist() == axis
    torch.testing.assert_close(rope.inv_freq.double(), omega, rtol=1e-7, atol=0)


def test_3d_matches_far_flux_pos_embed_axes_16_24_24():
    # diffusers FluxPosEmbed(theta=10000, axes_dim=(16, 24, 24)) as used by FAR, head_dim 64.
    flux = [1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)) for d in (16, 24, 24)]
    rope = RotaryEmbedding(64, kind="3d")
    torch.testing.assert_close(rope.inv_freq.double(), torch.cat(flux), rtol=1e-7, atol=0)
    assert rope.axis.tolist() == [0] * 8 + [1] * 12 + [2] * 12


def test_2d_matches_llamagen_precompute_freqs_cis_2d():
    dim = 64  # LlamaGen: freqs = 1 / base^(arange(0, dim/2, 2)[: dim/4] / (dim/2)), for h then w
    half = dim // 2
    freqs = 1.0 / (10000 ** (torch.arange(0, half, 2, dtype=torch.float64)[: dim // 4] / half))
    rope = RotaryEmbedding(dim, kind="2d")
    torch.testing.assert_close(rope.inv_freq.double(), torch.cat([freqs, freqs]), rtol=1e-7, atol=0)
    assert rope.axis.tolist() == [1] * 16 + [2] * 16


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"head_dim": 64, "kind": "4d"}, "kind"),
        ({"head_dim": 63, "kind": "1d"}, "head_dim"),
        ({"head_dim": 0, "kind": "1d"}, "head_dim"),
        ({"head_dim": 6, "kind": "2d"}, "head_dim"),
        ({"head_dim": 40, "kind": "3d"}, "head_dim"),
        ({"head_dim": 48, "kind": "mmrope"}, "head_dim"),
        ({"head_dim": 64, "kind": "1d", "base": 1.0}, "base"),
    ],
)
def test_invalid_arguments_raise_naming_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        RotaryEmbedding(**kwargs)


def test_no_parameters_no_state_and_inv_freq_stays_float32_after_cast():
    rope = RotaryEmbedding(HEAD_DIM, kind="mmrope")
    reference = rope.inv_freq.clone()
    assert list(rope.parameters()) == [] and rope.state_dict() == {}
    rope = rope.to(torch.bfloat16)
    assert rope.inv_freq.dtype == torch.float32 and rope.axis.dtype == torch.long
    assert torch.equal(rope.inv_freq, reference)


def test_shapes_and_batched_cos_sin():
    rope = RotaryEmbedding(HEAD_DIM, kind="3d")
    g = torch.Generator().manual_seed(0)
    positions = torch.stack([random_positions(7, 50, g) for _ in range(2)])  # (B, L, 3)
    cos, sin = rope.cos_sin(positions)
    assert cos.shape == sin.shape == (2, 7, HEAD_DIM // 2) and cos.dtype == torch.float32
    x = torch.randn(2, 3, 7, HEAD_DIM, generator=g)  # (B, H, L, D)
    batched = apply_rotary(x, cos, sin)
    for b in range(2):
        torch.testing.assert_close(batched[b : b + 1], rotate(rope, x[b : b + 1], positions[b]))
    with pytest.raises(ValueError, match="positions"):
        rope.angles(positions[..., :2])


# ----------------------------------------------------------------------------------------------
# MM-RoPE properties 1-2: partition and coverage.


@pytest.mark.parametrize("head_dim", [32, 64, 128, 256])
def test_mmrope_partition_counts_and_every_block_holds_all_axes(head_dim):
    axis = RotaryEmbedding(head_dim, kind="mmrope").axis
    counts = torch.bincount(axis, minlength=3).tolist()
    assert counts == [head_dim // 2 * c // 16 for c in (4, 6, 6)]
    for block in axis.view(-1, 16):  # each 16-frequency block spans the whole spectrum
        assert set(block.tolist()) == {0, 1, 2}
        assert [sorted(torch.nonzero(block == a).flatten().tolist()) for a in range(3)] == [
            list(s) for s in MMROPE_AXIS_SETS
        ]


@pytest.mark.parametrize("kind, counts", [("2d", (0, 16, 16)), ("3d", (8, 12, 12))])
def test_axial_partition_counts(kind, counts):
    assert tuple(torch.bincount(RotaryEmbedding(64, kind=kind).axis, minlength=3)) == counts


# ----------------------------------------------------------------------------------------------
# Property 3: reduction to 1-D on text.


def test_mmrope_equals_1d_bitwise_on_text_positions():
    positions = torch.arange(0, 20000, 7).unsqueeze(-1).expand(-1, 3)  # (L, 3), t = h = w = p
    mm, plain = RotaryEmbedding(HEAD_DIM, "mmrope"), RotaryEmbedding(HEAD_DIM, "1d")
    cos_mm, sin_mm = mm.cos_sin(positions)
    cos_1d, sin_1d = plain.cos_sin(positions)
    assert torch.equal(cos_mm, cos_1d) and torch.equal(sin_mm, sin_1d)
    x = torch.randn(1, 2, positions.shape[0], HEAD_DIM, generator=torch.Generator().manual_seed(1))
    assert torch.equal(apply_rotary(x, cos_mm, sin_mm), apply_rotary(x, cos_1d, sin_1d))
    # Non-vacuous: off the diagonal t = h = w the two kinds differ.
    off_diagonal = positions * torch.tensor([1, 2, 3])
    assert not torch.equal(mm.cos_sin(off_diagonal)[0], plain.cos_sin(off_diagonal)[0])


# ----------------------------------------------------------------------------------------------
# Property 4: relative-position invariance (per axis and all axes together).


@pytest.mark.parametrize("kind", ROPE_KINDS)
@FAST
@given(
    delta=st.tuples(*[st.integers(-64, 64)] * 3),
    all_axes=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_scores_invariant_to_a_common_position_shift(kind, delta, all_axes, seed):
    g = torch.Generator().manual_seed(seed)
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    q = torch.randn(1, 2, 9, HEAD_DIM, generator=g)
    k = torch.randn(1, 2, 11, HEAD_DIM, generator=g)
    pos_q, pos_k = random_positions(9, 64, g) + 64, random_positions(11, 64, g) + 64
    shift = torch.tensor(delta)
    if all_axes:  # the text case: t = h = w move together
        shift = torch.full((3,), delta[0])
    before = scores(rope, q, k, pos_q, pos_k)
    after = scores(rope, q, k, pos_q + shift, pos_k + shift)
    scale = q.norm(dim=-1, keepdim=True) * k.norm(dim=-1).unsqueeze(-2)  # (B, H, Lq, Lk)
    assert ((after - before).abs() <= 1e-5 * scale).all()


@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_shifting_only_queries_changes_scores(kind):
    # The invariance test above is only meaningful if positions do move the scores.
    g = torch.Generator().manual_seed(3)
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    q, k = torch.randn(1, 1, 5, HEAD_DIM, generator=g), torch.randn(1, 1, 5, HEAD_DIM, generator=g)
    pos = random_positions(5, 32, g)
    shift = torch.tensor([3, 3, 3])
    assert not torch.allclose(scores(rope, q, k, pos + shift, pos), scores(rope, q, k, pos, pos))


# ----------------------------------------------------------------------------------------------
# Property 5: axis locality.


@pytest.mark.parametrize("kind", ["2d", "3d", "mmrope"])
@pytest.mark.parametrize("axis_id", [0, 1, 2])
def test_changing_one_axis_alters_only_its_channels(kind, axis_id):
    g = torch.Generator().manual_seed(10 * axis_id + ROPE_KINDS.index(kind))
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    _, expected_axis = expected_table(HEAD_DIM, kind)
    own_pairs = {j for j, a in enumerate(expected_axis) if a == axis_id}
    positions = random_positions(12, 100, g)
    moved = positions.clone()
    moved[:, axis_id] += torch.randint(1, 50, (12,), generator=g)

    changed_pairs = (rope.angles(moved) != rope.angles(positions)).any(dim=0)  # (D/2,)
    assert set(torch.nonzero(changed_pairs).flatten().tolist()) == own_pairs

    x = torch.randn(1, 2, 12, HEAD_DIM, generator=g)
    changed = (rotate(rope, x, moved) != rotate(rope, x, positions)).flatten(0, 2).any(dim=0)
    changed_channels = set(torch.nonzero(changed).flatten().tolist())
    assert changed_channels <= set(pair_channels(own_pairs))
    assert bool(changed_channels) == bool(own_pairs)  # "2d" has no t pairs


# ----------------------------------------------------------------------------------------------
# Property 6: isometry and R(0) = I.


@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_rotation_preserves_norm(kind):
    g = torch.Generator().manual_seed(4)
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    x = torch.randn(2, 3, 16, HEAD_DIM, generator=g)
    out = rotate(rope, x, random_positions(16, 5000, g))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=0)
    assert not torch.allclose(out, x)


@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_position_zero_is_identity_not_zero(kind):
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    cos, sin = rope.cos_sin(torch.zeros(4, 3, dtype=torch.long))
    assert torch.equal(cos, torch.ones_like(cos)) and torch.equal(sin, torch.zeros_like(sin))
    x = torch.randn(1, 2, 4, HEAD_DIM, generator=torch.Generator().manual_seed(5))
    assert torch.equal(apply_rotary(x, cos, sin), x)


# ----------------------------------------------------------------------------------------------
# Property 8: cache slicing.


def video_positions(text_len: int, frames: int, rows: int, cols: int) -> torch.Tensor:
    """Text at t = h = w = index, then frames on a grid offset by the text length: (L, 3)."""
    text = torch.arange(text_len).unsqueeze(-1).expand(-1, 3)
    t, h, w = torch.meshgrid(
        torch.arange(frames), torch.arange(rows), torch.arange(cols), indexing="ij"
    )
    grid = torch.stack([t, h, w], dim=-1).reshape(-1, 3) + text_len
    return torch.cat([text, grid])


@pytest.mark.parametrize("kind", ROPE_KINDS)
@pytest.mark.parametrize("start", [1, 5, 17, 40])
def test_rope_on_suffix_at_absolute_positions_equals_sliced_full_rope(kind, start):
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    positions = video_positions(5, 3, 4, 4)  # L = 53
    x = torch.randn(2, 2, positions.shape[0], HEAD_DIM, generator=torch.Generator().manual_seed(6))
    full = rotate(rope, x, positions)
    suffix = rotate(rope, x[:, :, start:], positions[start:])
    torch.testing.assert_close(suffix, full[:, :, start:], rtol=1e-6, atol=1e-6)
    # Non-vacuous: positions restarted at 0 (forgetting the cache offset) do not match.
    restarted = rotate(rope, x[:, :, start:], positions[start:] - positions[start])
    assert not torch.allclose(restarted, full[:, :, start:], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Property 9: precision at large positions.


def fp64_reference(x: torch.Tensor, positions: torch.Tensor, kind: str) -> torch.Tensor:
    omega, axis = expected_table(x.shape[-1], kind)
    angle = positions.double()[:, axis] * omega  # (L, D/2)
    x1, x2 = x.double().chunk(2, dim=-1)
    return torch.cat((x1 * angle.cos() - x2 * angle.sin(), x1 * angle.sin() + x2 * angle.cos()), -1)


@pytest.mark.parametrize("kind", ROPE_KINDS)
def test_bf16_at_large_positions_matches_fp64_reference(kind):
    g = torch.Generator().manual_seed(7)
    rope = RotaryEmbedding(HEAD_DIM, kind=kind)
    x = torch.randn(1, 4, 32, HEAD_DIM, generator=g).to(torch.bfloat16)
    positions = torch.randint(9_000, 11_000, (32, 3), generator=g)
    reference = fp64_reference(x, positions, kind)
    out = rotate(rope, x, positions)
    assert out.dtype == torch.bfloat16
    bf16_tolerance = dict(rtol=1.6e-2, atol=1e-2)
    torch.testing.assert_close(out.double(), reference, **bf16_tolerance)
    # Non-vacuous: angles computed in bf16 blow this tolerance at these positions.
    naive = positions.to(torch.bfloat16).index_select(-1, rope.axis) * rope.inv_freq.bfloat16()
    naive_out = apply_rotary(x, naive.cos(), naive.sin())
    assert not torch.allclose(naive_out.double(), reference, **bf16_tolerance)


# ----------------------------------------------------------------------------------------------
# FlexRoPE.


def frame_causal_mask(frame_q: torch.Tensor, frame_k: torch.Tensor) -> torch.Tensor:
    """0 where the key's frame is not in the future, -inf elsewhere: (Lq, Lk)."""
    allowed = frame_k.unsqueeze(0) <= frame_q.unsqueeze(1)
    return torch.zeros(allowed.shape).masked_fill(~allowed, float("-inf"))


def rope_video_attention_inputs(frames: int = 5, tokens_per_frame: int = 4, seed: int = 8):
    """RoPE'd q k^T / sqrt(D) for a small video, plus per-token frame ids."""
    g = torch.Generator().manual_seed(seed)
    rope = RotaryEmbedding(HEAD_DIM, kind="3d")
    frame = torch.arange(frames).repeat_interleave(tokens_per_frame)  # (L,)
    grid = torch.arange(tokens_per_frame).repeat(frames)
    positions = torch.stack([frame, grid // 2, grid % 2], dim=-1)  # (L, 3)
    q = torch.randn(1, 2, frame.shape[0], HEAD_DIM, generator=g)
    k = torch.randn(1, 2, frame.shape[0], HEAD_DIM, generator=g)
    return scores(rope, q, k, positions, positions) / math.sqrt(HEAD_DIM), frame


def test_flexrope_zero_decay_is_exactly_rope_plus_mask():
    logits, frame = rope_video_attention_inputs()
    bias = flexrope_bias(frame, frame, 0.0)
    assert torch.equal(bias, torch.zeros_like(bias))
    mask = frame_causal_mask(frame, frame)
    with_bias = torch.softmax(logits + mask + bias, dim=-1)
    assert torch.equal(with_bias, torch.softmax(logits + mask, dim=-1))


@FAST
@given(
    frames_q=st.lists(st.integers(-50, 50), min_size=1, max_size=8),
    frames_k=st.lists(st.integers(-50, 50), min_size=1, max_size=8),
    decay=st.floats(0.0, 10.0),
)
def test_flexrope_bias_has_the_exact_form(frames_q, frames_k, decay):
    bias = flexrope_bias(torch.tensor(frames_q), torch.tensor(frames_k), decay)
    assert bias.dtype == torch.float32 and bias.shape == (len(frames_q), len(frames_k))
    expected = [[-decay * (fq - fk) for fk in frames_k] for fq in frames_q]
    torch.testing.assert_close(bias, torch.tensor(expected, dtype=torch.float32))


def test_flexrope_bias_batched_shapes():
    fq, fk = torch.tensor([[0, 1, 2], [3, 3, 4]]), torch.tensor([[0, 0, 1, 2], [1, 2, 3, 4]])
    bias = flexrope_bias(fq, fk, 0.5)
    assert bias.shape == (2, 3, 4)
    for b in range(2):
        assert torch.equal(bias[b], flexrope_bias(fq[b], fk[b], 0.5))
    assert flexrope_bias(fq, fk[0], 0.5).shape == (2, 3, 4)
    assert flexrope_bias(fq[0], fk, 0.5).shape == (2, 3, 4)


@FAST
@given(decay=st.floats(0.0, 1e3), frame_id=st.integers(-1000, 1000))
def test_flexrope_same_frame_bias_is_zero(decay, frame_id):
    frames = torch.full((5,), frame_id)
    assert (flexrope_bias(frames, frames, decay) == 0).all()


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.5, 3.0])
def test_flexrope_bias_is_non_increasing_in_key_age(decay):
    frame_q = torch.tensor([12])
    frame_k = torch.arange(12, -1, -1)  # key age 0, 1, ..., 12
    bias = flexrope_bias(frame_q, frame_k, decay)[0]  # (Lk,)
    steps = bias[1:] - bias[:-1]
    assert (steps <= 0).all()
    if decay > 0:
        assert (steps < 0).all()


def test_flexrope_attention_mass_on_old_frames_does_not_grow_with_decay():
    logits, frame = rope_video_attention_inputs()
    mask = frame_causal_mask(frame, frame)
    age = frame.unsqueeze(1) - frame.unsqueeze(0)  # (Lq, Lk)
    decays = [0.0, 0.05, 0.2, 0.5, 1.0, 2.0, 5.0]
    probs = [torch.softmax(logits + mask + flexrope_bias(frame, frame, d), dim=-1) for d in decays]
    for p in probs:  # causality holds for every decay
        assert (p[..., age < 0] == 0).all()
    for min_age in range(int(frame.max())):
        older = age > min_age  # (Lq, Lk)
        mass = torch.stack([(p * older).sum(-1) for p in probs])  # (decays, B, H, Lq)
        assert (mass[1:] <= mass[:-1] + 1e-6).all()
        assert (mass[-1] < mass[0])[..., older.any(-1)].all()  # and decay does bite


@FAST
@given(shift=st.integers(-10_000, 10_000), decay=st.floats(0.0, 100.0))
def test_flexrope_bias_is_shift_invariant(shift, decay):
    frame_q = torch.tensor([3, 3, 4, 7, 7])
    frame_k = torch.tensor([0, 1, 1, 2, 3, 4, 5, 6, 7])
    shifted = flexrope_bias(frame_q + shift, frame_k + shift, decay)
    assert torch.equal(shifted, flexrope_bias(frame_q, frame_k, decay))


@pytest.mark.parametrize("decay", [-1e-3, -1.0, float("nan")])
def test_flexrope_negative_decay_raises(decay):
    frames = torch.arange(3)
    with pytest.raises(ValueError, match="decay"):
        flexrope_bias(frames, frames, decay)
