"""The built-in orders' layouts, teacher forcing and configuration errors."""

import pytest
import torch
from conftest import TINY_SCALES, make_tiny_tokenizer

from mmgen.orders import build_order
from mmgen.utils.config import ConfigError

T = 5  # condition rows


def order(spec, **kwargs):
    return build_order(spec, make_tiny_tokenizer(spec), 16, T, **kwargs)


def test_next_scale_mask_is_vars_rule():
    """A row attends a key iff the key's scale <= the row's scale (VAR: d >= d^T), and the
    condition prefix attends itself only."""
    o = order({"name": "next_scale"})
    scale_of_row = torch.cat(
        [torch.zeros(T, dtype=torch.long)]
        + [torch.full((p * p,), k + 1) for k, p in enumerate(TINY_SCALES)]
    )
    var_rule = scale_of_row[:, None] >= scale_of_row[None, :]  # (L, L)
    keys = torch.arange(o.layout.length)
    mask = keys[None, :] < o.layout.kv_end[:, None].long()  # row i attends keys [0, kv_end[i])
    assert torch.equal(mask, var_rule)
    assert [b - a for a, b in o.layout.image_groups] == [p * p for p in TINY_SCALES]


def test_next_scale_positions_sit_on_the_finest_grid():
    o = order({"name": "next_scale"})
    grid = TINY_SCALES[-1]
    rows = iter(o.layout.positions[T:].tolist())
    for p in TINY_SCALES:
        for r in range(p):
            for c in range(p):
                assert next(rows) == [T, T + r * grid / p, T + c * grid / p]


def test_next_scale_inputs_are_the_downsampled_accumulated_latent():
    """Scale k + 1 is fed area_down(f_hat_k, p_{k+1}) with a one-hot of its scale appended;
    scale 1 is fed a zero latent of level 0."""
    o = order({"name": "next_scale"})
    vq = o.tokenizer
    codes = torch.randint(0, 32, (2, o.token_layout.num_tokens),
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    inputs, targets = o.training_inputs(codes)
    C, K = o.channels, len(TINY_SCALES)
    assert inputs.shape == (2, o.token_layout.num_tokens, C + K) and torch.equal(targets, codes)
    assert torch.equal(inputs[:, 0, :C], torch.zeros(2, C))
    maps = vq.split_scales(codes)
    f_hat = sum(vq.scale_residual(k, maps[k], 8) for k in range(2))  # after scales 1 and 2
    expected = torch.nn.functional.interpolate(f_hat, size=(4, 4), mode="area")
    third = inputs[:, 1 + 4 : 1 + 4 + 16]  # scale 3 (4 x 4)
    torch.testing.assert_close(third[..., :C], expected.flatten(2).transpose(1, 2))
    assert torch.equal(third[..., C:], torch.eye(K)[2].expand(2, 16, K))


def test_windowed_next_scale_reads_each_divisible_scale_in_windows():
    """window 2 on scales 1, 2, 4, 8: rows 1 + 1 + 4 + 16, each window's latent vectors side by
    side (pixel_unshuffle) and its codes as the targets in raster order; the 1 x 1 start keeps
    one row predicting one code."""
    o = order({"name": "next_scale", "window": 2})
    assert [b - a for a, b in o.layout.image_groups] == [1, 1, 4, 16]
    assert o.config() == {"name": "next_scale", "window": 2}
    assert o.head_config()["kind"] == "multi_categorical"
    # a 4 x 4 scale's window (r, c) sits at the top-left of its 2 x 2 block on the 8 x 8 grid
    start = T + 1 + 1
    assert o.layout.positions[start + 1].tolist() == [T, T, T + 4]
    codes = torch.randint(0, 32, (2, o.token_layout.num_tokens),
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    inputs, targets = o.training_inputs(codes)
    C, K = o.channels, len(TINY_SCALES)
    assert inputs.shape == (2, 22, 4 * C + K) and targets.shape == (2, 22, 4)
    assert targets[:, 0, 0].tolist() == codes[:, 0].tolist()
    assert (targets[:, 0, 1:] == -100).all()  # the start row predicts one code
    assert targets[:, 1].tolist() == codes[:, 1:5].tolist()  # the 2 x 2 scale: one window
    scale3 = codes[:, 5:21].reshape(2, 4, 4)
    assert targets[:, 2 + 1].tolist() == scale3[:, 0:2, 2:4].reshape(2, 4).tolist()
    # inputs: area_down(f_hat) of the scale, window by window, channel-major (pixel_unshuffle)
    plain = order({"name": "next_scale"})
    plain.tokenizer.load_state_dict(o.tokenizer.state_dict())
    plain_inputs, _ = plain.training_inputs(codes)
    scale3_plain = plain_inputs[:, 5:21, :C].reshape(2, 4, 4, C)  # (B, r, c, C)
    window = inputs[:, 2 + 1, : 4 * C].reshape(2, C, 4)  # channel c, window slot (i, j)
    expected = scale3_plain[:, 0:2, 2:4].reshape(2, 4, C).transpose(1, 2)
    torch.testing.assert_close(window, expected)
    assert torch.equal(inputs[:, 0, : 4 * C], torch.zeros(2, 4 * C))
    # generation takes the sampled windows back to raster codes
    state = o.start(2, "cpu")
    for g, (a, b) in enumerate(o.layout.image_groups):
        o.take(state, g, targets[:, a - o.layout.text_length : b - o.layout.text_length])
    assert torch.equal(state.codes, codes)


def test_token_shuffle_windows_round_trip_in_raster_order():
    o = order({"name": "token_shuffle", "window": 2})
    codes = torch.arange(64).view(1, 64)  # the 8 x 8 grid in raster order
    windows = o.shuffle(codes)
    assert windows.shape == (1, 16, 4)
    assert windows[0, 0].tolist() == [0, 1, 8, 9]  # the top-left 2 x 2 window
    assert windows[0, 1].tolist() == [2, 3, 10, 11]
    assert windows[0, 4].tolist() == [16, 17, 24, 25]  # second row of windows
    assert torch.equal(o.unshuffle(windows), codes)
    inputs, targets = o.training_inputs(codes)
    assert inputs[0, 0].tolist() == [32] * 4  # the start window
    assert torch.equal(inputs[0, 1:], windows[0, :-1]) and torch.equal(targets, windows)


@pytest.mark.parametrize("spec", [{"name": "token_shuffle", "window": 2}, {"name": "next_token"}])
def test_context_noise_replaces_fed_codes_at_each_samples_rate(spec):
    """``training.context_noise`` over codes: each fed code becomes a uniform random code with
    its sample's probability; the start row stays; the draws come from the generator."""
    o = order(spec)
    codes = torch.randint(0, 32, (3, 64), generator=torch.Generator().manual_seed(1))
    inputs, _ = o.training_inputs(codes.repeat(100, 1))  # 300 samples of 64 codes
    rate = torch.tensor([0.0, 0.3, 1.0]).repeat(100)
    noised = o.noised_inputs(inputs, rate, torch.Generator().manual_seed(0))
    assert noised.shape == inputs.shape and noised.dtype == inputs.dtype
    assert torch.equal(noised[:, 0], inputs[:, 0])  # the start row
    changed = (noised[:, 1:] != inputs[:, 1:]).flatten(1).float().mean(1).view(100, 3).mean(0)
    # a replacement keeps the code with chance 1/32: changed = rate * 31 / 32
    assert changed[0] == 0 and abs(changed[1] - 0.3 * 31 / 32) < 0.02
    assert abs(changed[2] - 31 / 32) < 0.01
    assert noised.min() >= 0 and noised[:, 1:].max() < 32  # codes, never the start id
    again = o.noised_inputs(inputs, rate, torch.Generator().manual_seed(0))
    assert torch.equal(noised, again)


def test_shuffle_merge_and_unshuffle_keep_shapes():
    from mmgen.models.heads import MultiCategoricalHead
    from mmgen.models.inputs import ShuffleInput

    merge, head = ShuffleInput(32, 10, 2), MultiCategoricalHead(32, 10, 2)
    ids = torch.randint(0, 11, (3, 7, 4))
    x = merge(ids)
    assert x.shape == (3, 7, 32)
    assert head(x).shape == (3, 7, 4, 10)
    # the merge reads each window's codes in order: swapping two of them changes the row
    assert not torch.allclose(merge(ids[..., [1, 0, 2, 3]]), x)


def test_window_one_is_plain_next_token_layout():
    shuffled = order({"name": "token_shuffle", "window": 1})
    plain = order({"name": "next_token"})
    assert torch.equal(shuffled.layout.positions, plain.layout.positions)
    assert torch.equal(shuffled.layout.kv_end, plain.layout.kv_end)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "next_pixel"}, "order.name: unknown order 'next_pixel'"),
        ({"name": "token_shuffle", "window": 3}, "order.window 3 does not divide"),
        ({"name": "next_scale", "window": 3}, "order.window 3 does not divide"),
        ({"name": "next_frequency", "window": 3}, "order.window 3 does not divide"),
        ({"name": "next_scale", "window": 1.5}, "order.window must be an int >= 1"),
        ({"name": "token_shuffle", "window": 0}, "order.window must be an int >= 1"),
        ({"name": "token_shuffle", "windw": 2}, "order \\(token_shuffle\\).*windw"),
        ({"name": "no_such_module:Order"}, "order.name.*cannot import"),
    ],
)
def test_bad_order_configuration_is_a_config_error_naming_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        order(spec)


def test_next_scale_needs_scales_that_end_at_the_grid():
    from conftest import TINY_VQ
    from mmgen.tokenizers.multiscale_vq import MultiScaleVQConfig, MultiScaleVQModel

    vq = MultiScaleVQModel(MultiScaleVQConfig(**TINY_VQ, scales=(1, 2, 4)))  # grid is 8 x 8
    with pytest.raises(ConfigError, match="scales \\[1, 2, 4\\] must end at the token grid"):
        build_order({"name": "next_scale"}, vq, 16, T)
    with pytest.raises(ConfigError, match="needs a multi-scale tokenizer"):
        build_order({"name": "next_scale"}, make_tiny_tokenizer(), 16, T)


def test_a_tokenizer_without_a_token_layout_is_named():
    class NoLayout:
        pass

    with pytest.raises(ConfigError, match="NoLayout has no token_layout"):
        build_order(None, NoLayout(), 16, T)


def continuous_order(spec):
    return build_order(spec, make_tiny_tokenizer(continuous=True), 16, T)


def test_continuous_next_scale_feeds_the_upsampled_previous_scale_and_targets_downsamples():
    """FlowAR: scale k's targets are area_down(X, p_k) of the finest latent X; scale k + 1 is
    fed up(Y_k, p_{k+1}) with its level one-hot; scale 1 a zero latent of level 0."""
    import torch.nn.functional as F

    o = continuous_order({"name": "continuous_next_scale"})
    assert o.scales == TINY_SCALES and o.layout.group_starts == (0, T, T + 1, T + 5, T + 21, T + 85)
    X = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # (B, C, h, w)
    flat = X.flatten(2).transpose(1, 2)  # (B, 64, C): the engine's raster latents
    inputs, targets = o.training_inputs(flat)
    C, K = 4, len(TINY_SCALES)
    assert inputs.shape == (2, 85, C + K) and targets.shape == (2, 85, C)
    rows = lambda m: m.flatten(2).transpose(1, 2)  # noqa: E731
    Y = [F.interpolate(X, size=(p, p), mode="area") for p in TINY_SCALES]
    torch.testing.assert_close(targets, torch.cat([rows(y) for y in Y], dim=1))
    torch.testing.assert_close(targets[:, 21:], flat)  # the finest scale is the latent itself
    assert torch.equal(inputs[:, 0], torch.eye(C + K)[C].expand(2, C + K))  # zeros, level 0
    up = F.interpolate(Y[1], size=(4, 4), mode="bilinear", align_corners=False)
    third = inputs[:, 5:21]  # scale 3 (4 x 4) is fed scale 2 brought to 4 x 4
    torch.testing.assert_close(third[..., :C], rows(up))
    assert torch.equal(third[..., C:], torch.eye(K)[2].expand(2, 16, K))
    head = o.head_config()
    assert head["kind"] == "group_flow" and head["group_shapes"] == [[1, 1], [2, 2], [4, 4], [8, 8]]


def test_windowed_continuous_next_scale_packs_each_window_and_generation_feeds_the_same():
    """window 2: a 2 x 2 window's latents side by side in one row (pixel_unshuffle), the 1 x 1
    start zero-padded; given the true targets, generation's inputs equal teacher forcing's and
    the state's latent is the finest scale in raster order."""
    import torch.nn.functional as F

    o = continuous_order({"name": "continuous_next_scale", "window": 2})
    C, K = 4, len(TINY_SCALES)
    assert o.config()["window"] == 2 and o.input_config()["in_channels"] == 4 * C + K
    assert o.layout.group_starts == (0, T, T + 1, T + 2, T + 6, T + 22)  # rows 1, 1, 4, 16
    head = o.head_config()
    assert head["latent_channels"] == 4 * C and head["group_shapes"] == [
        [1, 1],
        [1, 1],
        [2, 2],
        [4, 4],
    ]
    X = torch.randn(2, C, 8, 8, generator=torch.Generator().manual_seed(0))  # (B, C, h, w)
    flat = X.flatten(2).transpose(1, 2)  # (B, 64, C)
    inputs, targets = o.training_inputs(flat)
    assert inputs.shape == (2, 22, 4 * C + K) and targets.shape == (2, 22, 4 * C)
    Y = [F.interpolate(X, size=(p, p), mode="area") for p in TINY_SCALES]
    assert torch.equal(targets[:, 0, C:], torch.zeros(2, 3 * C))  # the start's padding
    torch.testing.assert_close(targets[:, 0, :C], Y[0][:, :, 0, 0])
    window = targets[:, 6 + 2 * 4 + 1]  # row (2, 1) of the 8 x 8 scale's 4 x 4 windows
    expected = X[:, :, 4:6, 2:4].reshape(2, C * 4)  # channel-major, then the window in raster
    torch.testing.assert_close(window, expected)
    state, fed = o.start(2, "cpu"), []
    for g, (a, b) in enumerate(o.layout.image_groups):
        fed.append(o.group_inputs(state, g))
        o.take(state, g, targets[:, a - T : b - T])
    torch.testing.assert_close(torch.cat(fed, dim=1), inputs)
    torch.testing.assert_close(o.finish(state), flat)


def test_next_token_over_latents_feeds_the_previous_latent_to_a_flow_head():
    o = continuous_order({"name": "next_token"})
    assert o.input_config() == {"kind": "latent", "in_channels": 4}
    assert o.head_config() == {"kind": "flow_mlp", "latent_channels": 4}
    flat = torch.randn(2, 64, 4, generator=torch.Generator().manual_seed(0))
    inputs, targets = o.training_inputs(flat)
    assert torch.equal(inputs[:, 0], torch.zeros(2, 4)) and torch.equal(inputs[:, 1:], flat[:, :-1])
    assert torch.equal(targets, flat)
    with pytest.raises(ValueError, match=r"expected \(B, 64, 4\) latents"):
        o.training_inputs(flat[..., :3])


def test_context_noise_over_latents_noises_every_fed_latent_but_the_start_row():
    o = continuous_order({"name": "next_token"})
    inputs, _ = o.training_inputs(torch.randn(2, 64, 4, generator=torch.Generator().manual_seed(0)))
    noised = o.noised_inputs(inputs, torch.tensor([0.0, 0.5]), torch.Generator().manual_seed(0))
    assert torch.equal(noised[:, 0], inputs[:, 0]) and torch.equal(noised[0], inputs[0])
    added = noised[1, 1:] - inputs[1, 1:]  # (63, 4) of N(0, 0.5^2)
    assert 0.4 < added.std() < 0.6 and abs(added.mean()) < 0.15


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "continuous_next_scale", "scales": [1, 2, 4]}, "must increase strictly and end"),
        ({"name": "continuous_next_scale", "scales": [2, 1, 8]}, "must increase strictly"),
        ({"name": "continuous_next_scale", "upsample": "area"}, "order.upsample must be one of"),
        ({"name": "continuous_next_scale", "window": 3}, "order.window 3 does not divide"),
        ({"name": "continuous_next_scale", "window": 0}, "order.window must be an int >= 1"),
    ],
)
def test_bad_continuous_next_scale_configuration_names_the_key(spec, message):
    with pytest.raises(ConfigError, match=message):
        continuous_order(spec)


def test_continuous_next_scale_refuses_codes():
    with pytest.raises(ConfigError, match="needs a single-grid continuous tokenizer"):
        order({"name": "continuous_next_scale"})


def test_a_recipes_head_options_tune_the_orders_head_and_another_kind_replaces_it():
    from mmgen.training.tasks import merged_head_config

    order_head = continuous_order({"name": "continuous_next_scale"}).head_config()
    tuned = merged_head_config(order_head, {"width": 64, "depth": 1})
    assert tuned == {**order_head, "width": 64, "depth": 1}
    assert merged_head_config(order_head, None) == order_head
    other = {"kind": "flow_mlp", "latent_channels": 4}
    assert merged_head_config(order_head, other) == other


def test_next_frequency_window_reads_each_band_map_in_windows():
    """Bands on maps 1, 2, 4, 8 with window 2: one row per 2 x 2 window of every even map, and
    s^2 codes predicted per row."""
    windowed = order({"name": "next_frequency", "window": 2})
    assert [end - start for start, end in windowed.layout.image_groups] == [1, 1, 4, 16]
    assert windowed.config() == {"name": "next_frequency", "window": 2}
    assert windowed.head_config()["kind"] == "multi_categorical"
