"""FAR-Long on the next-frame order: long-term rows (coarser patches) for frames older than the
window W, the non-prefix mask, teacher forcing = generation inputs, cache = recompute, and
W >= the clip length equal to the plain order."""

import pytest
import torch
from conftest import make_tiny_video_pipeline

from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.generation.sequence_cache import peak_live_rows
from mmgen.orders import build_order
from mmgen.orders.base import GenerationState
from mmgen.utils.config import ConfigError
from tests.generation.test_next_frame import latents, tiny_kl

T = 24  # the tiny pipeline's prompt rows; a frame is 4x4 latents = 16 rows, long-term 2x2 = 4


def long_pipe(num_frames=5, window=2, **options):
    return make_tiny_video_pipeline(num_frames=num_frames, long_window=window, **options)


def test_frames_older_than_the_window_come_back_as_fewer_long_term_rows():
    order = long_pipe().order  # F = 5, W = 2: frames 0 and 1 go long-term at groups 3 and 4
    layout = order.layout
    assert layout.length == T + 5 * 16 + 2 * 4  # 112 against the plain order's 104
    assert [b - a for a, b in layout.image_groups] == [16, 16, 16, 20, 20]
    assert layout.context_rows == (0, 0, 0, 4, 4)
    assert [layout.sampled_rows(g) for g in (2, 3)] == [(T + 32, T + 48), (T + 52, T + 68)]
    assert layout.target_index().numel() == 5 * 16  # only frame rows are scored
    # frame 0's long-term rows open group 3, where its full rows were (frame 1's t), at the
    # top-left latent of each 2x2 block on the full grid (spatial stride 2)
    start = layout.image_groups[3][0]
    expected = [[T + 1, T + 2 * r, T + 2 * c] for r in (0, 2) for c in (0, 2)]
    assert layout.positions[start : start + 4].tolist() == expected
    assert layout.frame_ids[start : start + 4].tolist() == [1] * 4


def test_the_mask_keeps_w_frames_in_full_and_older_ones_long_term():
    layout = long_pipe().order.layout
    groups = layout.image_groups
    allowed = layout.allowed
    frame_rows = {g: range(layout.sampled_rows(g)[0], b) for g, (_, b) in enumerate(groups)}
    long_rows = {g: range(a, layout.sampled_rows(g)[0]) for g, (a, _) in enumerate(groups)}
    q = frame_rows[4][0]  # a row predicting frame 4
    visible = set(torch.nonzero(allowed[q, : layout.kv_end[q]]).flatten().tolist())
    expected = set(range(T)) | set(long_rows[3]) | set(long_rows[4])
    expected |= set(frame_rows[3]) | set(frame_rows[4])  # fed frames 2 and 3 (W = 2)
    assert visible == expected
    q = long_rows[4][0]  # frame 1's long-term rows: the prompt and long-term rows only
    visible = set(torch.nonzero(allowed[q, : layout.kv_end[q]]).flatten().tolist())
    assert visible == set(range(T)) | set(long_rows[3]) | set(long_rows[4])
    bias = layout.attention_bias(groups[4][0], groups[4][1])
    assert bias.shape == (20, layout.length) and torch.isinf(bias).any()


def test_teacher_forcing_feeds_what_generation_feeds():
    order = long_pipe().order
    clip = torch.randn(2, 5 * 16, 4)
    inputs, targets = order.training_inputs(clip)
    assert torch.equal(targets, clip) and inputs.shape == (2, 5 * 16 + 8, 5)
    state = GenerationState(codes=clip.clone())
    fed = torch.cat([order.group_inputs(state, g) for g in range(5)], dim=1)
    assert torch.equal(inputs, fed)
    start = order.layout.image_groups[3][0] - T  # frame 0's long-term rows: its 2x2 means
    pooled = clip[:, :16].reshape(2, 4, 4, 4).unflatten(1, (2, 2)).unflatten(3, (2, 2))
    pooled = pooled.mean(dim=(2, 4)).reshape(2, 4, 4)  # (B, 2x2 blocks, C)
    torch.testing.assert_close(inputs[:, start : start + 4, :4], pooled)
    assert torch.all(inputs[:, start : start + 4, 4] == -1)  # the long-term indicator


def test_cached_generation_matches_full_recompute_one_call_per_frame():
    pipe = long_pipe()
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[-2]))
    cached = latents(pipe, guidance_scale=2.0)
    hook.remove()
    assert rows == [T, 16, 16, 16, 20, 20]  # the prompt, then one call per frame
    full = latents(pipe, guidance_scale=2.0, use_cache=False)
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(cached, latents(long_pipe(window=5), guidance_scale=2.0))
    clip = latents(pipe, seed=3)  # continuation counts only the sampled rows of each group
    continued = latents(pipe, seed=4, given=clip[:, :64])
    assert torch.equal(continued[:, :64], clip[:, :64])


def test_the_caches_hold_only_rows_a_later_frame_still_reads():
    pipe = long_pipe()  # F = 5, W = 2: a frame's rows are read by its group and the next
    layout = pipe.order.layout
    sizes = []
    make = pipe.transformer.make_caches
    pipe.transformer.make_caches = lambda b, n: sizes.append(n) or make(b, n)
    latents(pipe, guidance_scale=2.0)
    # peak at frame 4: the prompt, frame 0's and 1's long-term rows, group 3's frame rows,
    # group 4's 4 + 16 rows (frames 0 .. 2's full-resolution rows have left)
    assert sizes == [T + 4 + 16 + 20] and sizes[0] < layout.length
    spans = [(0, T), *layout.image_groups]
    last = layout.last_readers()
    assert torch.all(last[:T] == layout.length - 1)  # the prompt is read to the end
    g1, g3 = layout.image_groups[1], layout.image_groups[3]
    assert torch.all(last[g1[0] : g1[1]] < g3[0])  # frame rows of group 1: gone by group 3
    assert peak_live_rows(make_tiny_video_pipeline(num_frames=5).order.layout, spans[:1]) == T
    plain = make_tiny_video_pipeline(num_frames=5).order.layout  # a prefix mask keeps all
    assert peak_live_rows(plain, [(0, T), *plain.image_groups]) == plain.length


def test_a_window_of_the_clip_length_is_the_plain_order():
    plain, wide = make_tiny_video_pipeline(num_frames=5), long_pipe(window=5)
    a, b = plain.order.layout, wide.order.layout
    assert b.allowed is None and b.target_index() is None and b.length == a.length
    assert torch.equal(a.positions, b.positions) and torch.equal(a.kv_end, b.kv_end)
    assert torch.equal(latents(plain, guidance_scale=2.0), latents(wide, guidance_scale=2.0))
    assert long_pipe(window=4).order.layout.allowed is not None  # the start frame drops out


def test_long_context_options_survive_save_and_longer_clips(tmp_path):
    pipe = long_pipe()
    pipe.save_pretrained(tmp_path / "pipe")
    from mmgen import TextToVideoPipeline

    again = TextToVideoPipeline.from_pretrained(tmp_path / "pipe")
    assert again.order.config()["long_window"] == 2 and again.order.config()["long_patch"] == 2
    longer = again.order.with_frames(8)
    assert longer.layout.length == T + 8 * 16 + 5 * 4
    out = generate_codes(again.transformer, longer, again.text_tokenizer(["a red circle"]), None,
                         SamplingConfig(num_inference_steps=2),
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.shape == (1, 8 * 16, 4)


@pytest.mark.parametrize("bad,key", [
    ({"long_window": 0}, "long_window"),
    ({"long_window": 2, "long_patch": 3}, "long_patch"),  # not a multiple of patch 2
    ({"long_window": 2, "long_patch": 8}, "long_patch"),  # does not divide the 4x4 grid
])  # fmt: skip
def test_bad_long_context_options_are_config_errors_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        build_order({"name": "next_frame", "patch": 2, **bad}, tiny_kl(), 8, 3)
