"""Next-frame video (FAR) on the shared engine: the layout and its positions, teacher forcing,
one backbone call per frame against the KV cache, continuation of given frames, FlexRoPE."""

import pytest
import torch
from conftest import TINY_KL, make_tiny_video_pipeline

from mmgen.generation.loop import SamplingConfig, generate_codes
from mmgen.orders import build_order
from mmgen.utils.config import ConfigError

PROMPTS = ["a red circle", "a blue square"]


def latents(pipe, prompts=PROMPTS, seed=0, use_cache=True, callback=None, order=None,
            given=None, **sampling):  # fmt: skip
    sampling.setdefault("num_inference_steps", 2)
    return generate_codes(
        pipe.transformer,
        order or pipe.order,
        pipe.text_tokenizer(prompts),
        pipe.text_tokenizer([""] * len(prompts)),
        SamplingConfig(**sampling),
        generator=torch.Generator().manual_seed(seed),
        use_cache=use_cache,
        callback=callback,
        given=given,
    )


def tiny_kl():
    from mmgen.tokenizers.kl import KLConfig, KLModel

    return KLModel(KLConfig(**TINY_KL))


def test_one_group_per_frame_full_inside_causal_across():
    order = build_order({"name": "next_frame", "num_frames": 3}, tiny_kl(), 8, 5)
    layout = order.layout
    assert layout.text_length == 5 and layout.length == 5 + 3 * 16
    assert [b - a for a, b in layout.image_groups] == [16, 16, 16]
    for f in range(3):  # every row of frame f sees the prompt and frames 0..f
        rows = slice(5 + 16 * f, 5 + 16 * (f + 1))
        assert torch.all(layout.kv_end[rows] == 5 + 16 * (f + 1))
    assert layout.frame_ids.tolist() == [-1] * 5 + [0] * 16 + [1] * 16 + [2] * 16
    assert order.token_layout.frames == 3 and order.token_layout.num_tokens == 48


@pytest.mark.parametrize("kind,strides", [("scaled", (1, 2)), ("scaled", (4, 8)), ("axial", None)])
def test_positions_follow_lumos_scaling_or_far_axial(kind, strides):
    options = {"positions": kind}
    if strides is not None:
        options.update(temporal_stride=strides[0], spatial_stride=strides[1])
    T = 7
    order = build_order({"name": "next_frame", "num_frames": 4, **options}, tiny_kl(), 8, T)
    positions = order.layout.positions
    ts, ss = strides if kind == "scaled" else (1, 1)
    for f in range(4):
        for r in range(4):
            for c in range(4):
                row = T + 16 * f + 4 * r + c
                expected = [T + f * ts, T + r * ss, T + c * ss]  # Lumos-1: o + stride * index
                assert positions[row].tolist() == expected
    assert positions[:T].tolist() == [[j, j, j] for j in range(T)]  # text: plain 1-D RoPE


def test_spatial_stride_defaults_to_the_autoencoders_downsample_factor():
    order = build_order({"name": "next_frame"}, tiny_kl(), 8, 3)
    assert order.spatial_stride == 2 and order.temporal_stride == 1  # 8 px -> 4 latents


@pytest.mark.parametrize("bad,key", [
    ({"num_frames": 0}, "num_frames"),
    ({"positions": "rotary"}, "positions"),
    ({"spatial_stride": 0}, "spatial_stride"),
    ({"clean_context_prob": 1.0}, "clean_context_prob"),
])  # fmt: skip
def test_bad_next_frame_options_are_config_errors_naming_the_key(bad, key):
    with pytest.raises(ConfigError, match=key):
        build_order({"name": "next_frame", **bad}, tiny_kl(), 8, 3)


def test_next_frame_needs_continuous_latents():
    from conftest import make_tiny_tokenizer

    with pytest.raises(ConfigError, match="continuous"):
        build_order({"name": "next_frame"}, make_tiny_tokenizer(), 16, 3)


def test_each_frame_is_fed_the_previous_frame_and_frame_zero_the_start_flag():
    order = build_order({"name": "next_frame", "num_frames": 3}, tiny_kl(), 8, 3)
    clip = torch.randn(2, 48, 4)
    inputs, targets = order.training_inputs(clip)
    assert inputs.shape == (2, 48, 5) and torch.equal(targets, clip)
    assert torch.equal(inputs[:, :16, :4], torch.zeros(2, 16, 4))
    assert torch.all(inputs[:, :16, 4] == 1) and torch.all(inputs[:, 16:, 4] == 0)
    assert torch.equal(inputs[:, 16:, :4], clip[:, :32])  # frame f's rows get frame f - 1
    with pytest.raises(ValueError, match="48"):
        order.training_inputs(torch.randn(2, 32, 4))


def test_context_noise_noises_only_the_fed_frames_at_each_samples_scale():
    """``training.context_noise``: fed frames get noise of their sample's standard deviation;
    the start frame, the indicator channel and the targets stay as they were."""
    order = build_order({"name": "next_frame", "num_frames": 3}, tiny_kl(), 8, 3)
    clip = torch.randn(2, 48, 4)
    inputs, _ = order.training_inputs(clip)
    sigma = torch.tensor([0.0, 0.5])
    noised = order.noised_inputs(inputs, sigma, torch.Generator().manual_seed(0))
    assert torch.equal(noised[:, :, 4], inputs[:, :, 4])  # the indicator
    assert torch.equal(noised[:, :16], inputs[:, :16])  # the start frame
    assert torch.equal(noised[0], inputs[0])  # sigma 0
    added = noised[1, 16:, :4] - inputs[1, 16:, :4]  # (32, 4) of N(0, 0.5^2)
    assert 0.4 < added.std() < 0.6 and abs(added.mean()) < 0.15
    again = order.noised_inputs(inputs, sigma, torch.Generator().manual_seed(0))
    assert torch.equal(noised, again)  # drawn from the generator


def test_cached_generation_matches_full_recompute_with_and_without_flexrope():
    pipe = make_tiny_video_pipeline()
    for slope in (0.0, 0.7):
        cached = latents(pipe, guidance_scale=2.5, flexrope_slope=slope)
        full = latents(pipe, guidance_scale=2.5, flexrope_slope=slope, use_cache=False)
        assert cached.shape == (2, 48, 4) and cached.std() > 0.1
        torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


def test_one_backbone_call_per_frame_and_seeds_reproduce():
    pipe = make_tiny_video_pipeline()
    rows, steps = [], []
    pipe.transformer.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[-2]))
    a = latents(pipe, seed=1, callback=lambda step, total, state: steps.append((step, total)))
    assert rows == [24, 16, 16, 16]  # the prompt, then one call per frame
    assert steps == [(0, 3), (1, 3), (2, 3)]
    assert torch.equal(a, latents(pipe, seed=1))
    assert not torch.equal(a, latents(pipe, seed=2))


def test_flexrope_changes_attention_only_across_frames():
    pipe = make_tiny_video_pipeline()
    layout = pipe.order.layout
    bias = layout.flexrope_bias(24 + 32, 24 + 48, 0.5)  # frame 2's rows against every key
    assert bias.shape == (16, 72)
    assert torch.all(bias[:, :24] == 0)  # the prompt is never decayed
    assert torch.all(bias[:, 24:40] == -1.0) and torch.all(bias[:, 40:56] == -0.5)
    assert torch.all(bias[:, 56:] == 0)  # inside the frame
    assert layout.flexrope_bias(0, 72, 0.0) is None  # off is exactly RoPE
    plain = latents(pipe)
    assert torch.equal(plain, latents(pipe, flexrope_slope=0.0))
    assert not torch.allclose(plain, latents(pipe, flexrope_slope=2.0))
    assert torch.equal(plain[:, :16], latents(pipe, flexrope_slope=2.0)[:, :16])  # frame 0


def test_given_frames_are_continued_with_one_call_for_them():
    pipe = make_tiny_video_pipeline(num_frames=4)
    clip = latents(pipe, seed=3)  # (2, 64, 4)
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[-2]))
    continued = latents(pipe, seed=5, given=clip[:, :32])
    hook.remove()
    assert rows == [24, 32, 16, 16]  # prompt, the two given frames at once, two new frames
    assert torch.equal(continued[:, :32], clip[:, :32])
    torch.testing.assert_close(
        continued, latents(pipe, seed=5, given=clip[:, :32], use_cache=False), atol=1e-4, rtol=1e-4
    )
    # at temperature 0 a frame is a function of the frames before it: continuing the model's
    # own first two frames gives its last two back
    cold = latents(pipe, temperature=0.0)
    torch.testing.assert_close(latents(pipe, temperature=0.0, given=cold[:, :32]), cold,
                               atol=1e-5, rtol=1e-5)  # fmt: skip
    with pytest.raises(ValueError, match="whole number"):
        latents(pipe, given=clip[:, :20])
    with pytest.raises(ValueError, match="nothing is left"):
        latents(pipe, given=clip)


def test_clips_longer_than_training_extrapolate_on_the_same_weights():
    pipe = make_tiny_video_pipeline(num_frames=3)
    long = pipe.order.with_frames(6)
    assert long.layout.length == 24 + 6 * 16 and long.num_frames == 6
    out = latents(pipe, order=long, flexrope_slope=0.3)
    assert out.shape == (2, 96, 4)
    torch.testing.assert_close(out[:, :48], latents(pipe, flexrope_slope=0.3))


def test_clean_context_frames_are_left_out_of_the_loss():
    from mmgen.models.flow_heads import GroupFlowHead

    torch.manual_seed(0)
    head = GroupFlowHead(32, 4, width=32, depth=1, num_heads=2, group_shapes=[[2, 2]],
                         clean_group_prob=0.5)  # fmt: skip
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.3)
    hidden, targets = torch.randn(64, 12, 32), torch.randn(64, 12, 4)  # 3 groups of 4 rows
    draws = head.training_draws(targets, torch.Generator().manual_seed(0))
    keep = draws["keep"]
    assert keep.shape == (64, 3) and 0.3 < keep.mean() < 0.7
    loss = head.loss(hidden, targets, draws)
    # the same loss by hand: mean over the kept (unit, group) pairs
    errors = []
    for g in range(3):
        rows = slice(4 * g, 4 * (g + 1))
        x, e, t = targets[:, rows], draws["noise"][:, rows], draws["t"][:, g]
        x_t = (1 - t[:, None, None]) * e + t[:, None, None] * x
        v = head.velocity(x_t, t, hidden[:, rows])
        errors.append((v - (x - e)).pow(2).mean(dim=(1, 2)))  # (64,)
    errors = torch.stack(errors, dim=1)  # (64, 3)
    expected = (errors * keep).sum() / keep.sum()
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, errors.mean())
    draws.pop("keep")
    torch.testing.assert_close(head.loss(hidden, targets, draws), errors.mean())


def test_the_pipeline_returns_frame_lists_arrays_tensors_or_latents(tmp_path):
    from diffusers.utils import export_to_video

    pipe = make_tiny_video_pipeline()
    pipe.set_progress_bar_config(disable=True)
    run = lambda kind, **kw: (
        pipe(
            PROMPTS,
            output_type=kind,
            num_inference_steps=2,  # noqa: E731
            generator=torch.Generator().manual_seed(0),
            **kw,
        ).frames
    )
    frames = run("pil")
    assert len(frames) == 2 and len(frames[0]) == 3 and frames[0][0].size == (8, 8)
    assert run("np").shape == (2, 3, 8, 8, 3) and run("pt").shape == (2, 3, 3, 8, 8)
    tokens = run("latent")
    assert tokens.shape == (2, 48, 4)
    decoded = (pipe.vq.decode(tokens.reshape(2, 3, 4, 4, 4).permute(0, 1, 4, 2, 3).flatten(0, 1))
               + 1) / 2  # fmt: skip
    torch.testing.assert_close(run("pt").flatten(0, 1), decoded.clamp(0, 1), atol=1e-6, rtol=0)
    assert len(run("pil", num_frames=5)[0]) == 5
    path = export_to_video(frames[0], str(tmp_path / "clip.mp4"), fps=4)
    import imageio.v3 as iio

    assert iio.imread(path).shape[0] == 3


def test_the_pipeline_continues_given_pil_frames(tmp_path):
    pipe = make_tiny_video_pipeline(num_frames=4)
    pipe.set_progress_bar_config(disable=True)
    kwargs = dict(num_inference_steps=2, output_type="latent")
    first = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), output_type="pil",
                 num_inference_steps=2).frames  # fmt: skip
    start = first[0][:2]  # two PIL frames, the same start for both videos
    out = pipe(PROMPTS, frames=start, generator=torch.Generator().manual_seed(1), **kwargs)
    encoded = pipe.encode_frames(start, 2)
    assert torch.equal(out.frames[:, :32], encoded)
    per_video = pipe(PROMPTS, frames=[first[0][:2], first[1][:2]],
                     generator=torch.Generator().manual_seed(1), **kwargs)  # fmt: skip
    assert not torch.equal(per_video.frames[1, :32], encoded[1])
    with pytest.raises(ValueError, match="none to generate"):
        pipe(PROMPTS, frames=first[0], num_frames=3)
    with pytest.raises(ValueError, match="8x8"):
        from PIL import Image

        pipe(PROMPTS, frames=[Image.new("RGB", (16, 16))])


def test_a_saved_video_pipeline_reloads_bit_identically(tmp_path):
    from mmgen import TextToVideoPipeline
    from mmgen.pipelines.ar_image import ARImagePipeline

    pipe = make_tiny_video_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    again = ARImagePipeline.from_pretrained(tmp_path / "pipe")
    assert isinstance(again, TextToVideoPipeline) and again.order.config() == pipe.order.config()
    kw = dict(num_inference_steps=2, output_type="latent", flexrope_slope=0.2, show_progress=False)
    a = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), **kw).frames
    b = again(PROMPTS, generator=torch.Generator().manual_seed(0), **kw).frames
    assert torch.equal(a, b)


def test_flexrope_slope_is_checked():
    pipe = make_tiny_video_pipeline()
    with pytest.raises(ValueError, match="flexrope_slope"):
        pipe("a red circle", flexrope_slope=-1.0)
    from conftest import make_tiny_pipeline

    with pytest.raises(ValueError, match="video order"):
        make_tiny_pipeline().resolve_sampling(flexrope_slope=0.5)


def test_patch_merges_each_block_of_latents_into_one_row_on_the_full_grid():
    T = 3
    order = build_order({"name": "next_frame", "num_frames": 2, "patch": 2, "positions": "axial"},
                        tiny_kl(), 8, T)  # fmt: skip
    assert order.frame_rows == 4 and order.channels == 16 and order.layout.length == T + 8
    assert order.head_config()["group_shapes"] == [[2, 2]]
    clip = torch.randn(1, 32, 4)  # 2 frames of 4x4 latents
    rows = order.patchify(clip)
    assert rows.shape == (1, 8, 16)
    grid = clip.reshape(2, 4, 4, 4)  # (F, h, w, C)
    # frame 1, block (r, c) = (1, 0): latents (2, 0), (2, 1), (3, 0), (3, 1)
    block = torch.cat([grid[1, 2, 0], grid[1, 2, 1], grid[1, 3, 0], grid[1, 3, 1]])
    assert torch.equal(rows[0, 4 + 2], block)
    assert torch.equal(order.unpatchify(rows), clip)
    assert order.layout.positions[T + 4 : T + 8].tolist() == [
        [T + 1, T, T], [T + 1, T, T + 2], [T + 1, T + 2, T], [T + 1, T + 2, T + 2]
    ]  # fmt: skip
    inputs, targets = order.training_inputs(clip)
    assert torch.equal(targets, rows) and torch.equal(inputs[:, 4:, :16], rows[:, :4])
    with pytest.raises(ConfigError, match="patch"):
        build_order({"name": "next_frame", "patch": 3}, tiny_kl(), 8, T)


def test_a_patched_order_generates_and_continues_through_the_pipeline():
    pipe = make_tiny_video_pipeline(num_frames=3, patch=2)
    assert latents(pipe).shape == (2, 48, 4)  # token space: 3 frames x 16 latents
    torch.testing.assert_close(latents(pipe, guidance_scale=2.0),
                               latents(pipe, guidance_scale=2.0, use_cache=False),
                               atol=1e-4, rtol=1e-4)  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    first = pipe(PROMPTS, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    start = [clip[:1] for clip in first.frames]
    out = pipe(PROMPTS, frames=start, num_inference_steps=2, output_type="latent",
               generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.equal(out.frames[:, :16], pipe.encode_frames(start, 2))


@pytest.mark.parametrize("backend", ["flex", "triton"])
def test_flexrope_generation_is_the_same_under_every_backend_that_takes_a_bias(backend):
    """The bias reaches the fused kernels (Triton runs under its interpreter on the CPU)
    through the KV cache path as through SDPA's dense mask."""
    pipe = make_tiny_video_pipeline(num_frames=2)
    reference = latents(pipe, flexrope_slope=0.8, guidance_scale=2.0)
    pipe.transformer.set_attention_backend(backend)
    fused = latents(pipe, flexrope_slope=0.8, guidance_scale=2.0)
    torch.testing.assert_close(fused, reference, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(fused, latents(pipe, guidance_scale=2.0), atol=1e-3)
