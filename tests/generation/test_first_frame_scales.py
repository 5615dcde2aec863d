"""Next-frame with first-frame scales: coarser maps of frame 0 generated before it (FlowAR's
next-scale for the one frame the prompt alone decides), on the same engine and KV cache."""

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_KL, make_tiny_video_pipeline

from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.orders import build_order
from mmgen.utils.config import ConfigError

SPEC = {"name": "next_frame", "num_frames": 3, "first_frame_scales": [1, 2]}


def tiny_kl():
    from mmgen.tokenizers.kl import KLConfig, KLModel

    return KLModel(KLConfig(**TINY_KL))


def latents(pipe, seed=0, temperature=1.0, order=None, **kwargs):
    text = pipe.text_tokenizer(["a red circle", "a blue square"])
    sampling = SamplingConfig(num_inference_steps=2, temperature=temperature)
    return generate_codes(pipe.transformer, order or pipe.order, text,
                          pipe.text_tokenizer(["", ""]), sampling,
                          generator=torch.Generator().manual_seed(seed), **kwargs)  # fmt: skip


def test_scale_groups_come_before_frame_zero_at_its_time_on_the_full_grid():
    T = 5
    order = build_order({**SPEC, "spatial_stride": 3}, tiny_kl(), 8, T)
    layout = order.layout
    assert [b - a for a, b in layout.image_groups] == [1, 4, 16, 16, 16]
    ends = [T + 1, T + 5, T + 21, T + 37, T + 53]
    starts = [T] + ends[:-1]
    for a, b in zip(starts, ends):  # group-causal: every row sees the prompt and groups so far
        assert torch.all(layout.kv_end[a:b] == b)
    scale_positions = layout.positions[T : T + 5].tolist()
    assert scale_positions[0] == [T, T, T]  # the 1 x 1 map: the frame's top-left latent
    # the 2 x 2 map's rows cover 2 x 2 latent blocks: top-left latents (0|2, 0|2), stride 3
    assert scale_positions[1:] == [[T, T + 3 * r, T + 3 * c] for r in (0, 2) for c in (0, 2)]
    assert torch.equal(layout.positions[T + 5 :], build_order(
        {"name": "next_frame", "num_frames": 3, "spatial_stride": 3}, tiny_kl(), 8, T
    ).layout.positions[T:])  # frames sit where they sat without scales  # fmt: skip
    assert layout.frame_ids[T : T + 5].tolist() == [0] * 5
    assert order.head_config()["group_shapes"] == [[1, 1], [2, 2], [4, 4], [4, 4], [4, 4]]


def test_scales_are_area_downsamples_each_fed_the_one_before_upsampled():
    order = build_order(SPEC, tiny_kl(), 8, 3)
    clip = torch.randn(2, 48, 4)
    inputs, targets = order.training_inputs(clip)
    frame0 = clip[:, :16].transpose(1, 2).reshape(2, 4, 4, 4)  # (B, C, h, w)
    one = frame0.mean(dim=(2, 3))  # (B, C): the 1 x 1 map
    two = F.avg_pool2d(frame0, 2)  # (B, C, 2, 2)
    assert inputs.shape == (2, 53, 5) and targets.shape == (2, 53, 4)
    torch.testing.assert_close(targets[:, 0], one)
    torch.testing.assert_close(targets[:, 1:5], two.flatten(2).transpose(1, 2))
    assert torch.equal(targets[:, 5:], clip)
    assert torch.all(inputs[:, 0, :4] == 0) and torch.all(inputs[:, 0, 4] == 1)  # the start
    torch.testing.assert_close(inputs[:, 1:5, :4], one[:, None].expand(2, 4, 4))  # 1x1 -> 2x2
    up = F.interpolate(two, size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(inputs[:, 5:21, :4], up.flatten(2).transpose(1, 2))  # frame 0
    assert torch.all(inputs[:, 1:21, 4] == 2)
    assert torch.equal(inputs[:, 21:, :4], clip[:, :32]) and torch.all(inputs[:, 21:, 4] == 0)
    assert torch.equal(order.given_samples(clip[:, :16]), targets[:, :21])


def test_patched_scales_keep_the_frames_row_channels():
    order = build_order({**SPEC, "first_frame_scales": [1], "patch": 2}, tiny_kl(), 8, 3)
    clip = torch.randn(2, 48, 4)
    inputs, targets = order.training_inputs(clip)
    assert [b - a for a, b in order.layout.image_groups] == [1, 4, 4, 4]
    assert targets.shape == (2, 13, 16) and inputs.shape == (2, 13, 17)
    frame0 = clip[:, :16].transpose(1, 2).reshape(2, 4, 4, 4)
    small = F.avg_pool2d(frame0, 2)  # the 1-row map: 2 x 2 latents -> one row of 16 channels
    torch.testing.assert_close(targets[:, 0], small.permute(0, 2, 3, 1).reshape(2, 16))


def test_generation_makes_one_call_per_group_and_matches_recompute_and_continues():
    pipe = make_tiny_video_pipeline(first_frame_scales=[1, 2])
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[-2]))
    clip = latents(pipe, seed=3)
    hook.remove()
    assert rows == [24, 1, 4, 16, 16, 16] and clip.shape == (2, 48, 4) and clip.std() > 0.1
    torch.testing.assert_close(clip, latents(pipe, seed=3, use_cache=False), atol=1e-4,
                               rtol=1e-4)  # fmt: skip
    given = pipe.order.given_samples(clip[:, :16])  # frame 0 and its scales
    continued = latents(pipe, seed=5, given=given)
    assert torch.equal(continued[:, :16], clip[:, :16])
    assert not torch.allclose(continued[:, 16:], clip[:, 16:])
    longer = latents(pipe, seed=3, order=pipe.order.with_frames(5))
    torch.testing.assert_close(longer[:, :48], clip, atol=1e-5, rtol=1e-5)


def test_frame_zero_reads_the_scale_drawn_before_it():
    pipe = make_tiny_video_pipeline(first_frame_scales=[1])
    drawn = []

    def keep_map(step, total, state):
        if step == 0:
            drawn.append(state.extra["scales"][0].clone())  # (B, C, 1, 1)

    cold = latents(pipe, temperature=0.0, callback=keep_map)  # frame 0: a function of the map
    given = drawn[0].flatten(2).transpose(1, 2)  # (B, 1, C): the 1 x 1 map's one row
    moved = latents(pipe, temperature=0.0, given=given + 1.0)
    assert not torch.allclose(moved[:, :16], cold[:, :16], atol=1e-3)
    same = latents(pipe, temperature=0.0, given=given)
    torch.testing.assert_close(same, cold, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scales", [[2, 1], [0, 1], [1, 4], [1, 3], [1.0], 1])
def test_bad_first_frame_scales_are_config_errors(scales):
    with pytest.raises(ConfigError, match="first_frame_scales"):
        build_order({**SPEC, "first_frame_scales": scales}, tiny_kl(), 8, 3)


@pytest.mark.parametrize("options", [{}, {"first_frame_scales": [1, 2]},
                                     {"first_frame_scales": [1], "patch": 2},
                                     {"first_frame_scales": [1], "long_window": 1}])  # fmt: skip
def test_generation_feeds_each_group_what_teacher_forcing_feeds_it(options):
    """Taking a clip's own targets group by group, the order hands every group the inputs
    training gave it."""
    order = build_order({"name": "next_frame", "num_frames": 3, **options}, tiny_kl(), 8, 3)
    clip = torch.randn(2, 48, 4)
    inputs, targets = order.training_inputs(clip)
    state, fed, start = order.start(2, clip.device), [], 0
    for g in range(order.num_groups):
        fed.append(order.group_inputs(state, g))
        a, b = order.layout.sampled_rows(g)
        n = b - a
        order.take(state, g, targets[:, start : start + n])
        start += n
    torch.testing.assert_close(torch.cat(fed, dim=1), inputs)
    torch.testing.assert_close(order.finish(state), clip)


def test_context_noise_noises_the_fed_scales_but_not_the_first_scales_zeros():
    """Rows 0 (the 1 x 1 map, fed zeros), 1-4 (the 2 x 2 map, fed the 1 x 1 one), 5-20 (frame
    0, fed the 2 x 2 one) and 21-52 (frames 1 and 2, fed frames 0 and 1)."""
    order = build_order(SPEC, tiny_kl(), 8, 3)
    inputs, _ = order.training_inputs(torch.randn(2, 48, 4))
    noised = order.noised_inputs(inputs, torch.full((2,), 0.5), torch.Generator().manual_seed(0))
    assert torch.equal(noised[..., 4], inputs[..., 4])  # the indicator
    assert torch.equal(noised[:, :1], inputs[:, :1])  # the start row's zeros
    assert bool((noised[:, 1:, :4] != inputs[:, 1:, :4]).all())  # every fed map and frame
