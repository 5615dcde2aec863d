"""The waveform autoencoder (audio latents): shapes, space-to-channel shortcuts, a decoder whose
samples of latent i depend on latents <= i (what streaming needs), and training on tones."""

import pytest
import torch
from mmgen.tokenizers.waveform import (
    WaveformAutoencoder,
    WaveformConfig,
    channel_to_space,
    space_to_channel,
)

TINY = dict(channels=8, strides=(4, 5), channel_multiples=(2, 1), latent_channels=4)


def tiny(seed=0):
    torch.manual_seed(seed)
    return WaveformAutoencoder(WaveformConfig(**TINY)).eval()


def test_latents_are_one_per_hop_and_the_clip_is_padded_to_whole_latents():
    model = tiny()
    assert model.hop == 20 and model.num_latents(16000) == 800 and model.num_latents(41) == 3
    latents = model.encode(torch.randn(2, 41) * 0.3)
    assert latents.shape == (2, 4, 3)
    assert model.decode(latents).shape == (2, 60)
    layout = model.token_layout(16000)
    assert layout.grid == (800,) and layout.num_tokens == 800 and layout.is_continuous
    flat = layout.flatten(latents)
    assert flat.shape == (2, 3, 4) and torch.equal(layout.unflatten(flat), latents)


def test_shortcuts_move_time_into_channels_and_back():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).reshape(2, 3, 8)
    down = space_to_channel(x, 4, 6)  # 3 channels x 4 steps = 12 channels, averaged in pairs
    assert down.shape == (2, 6, 2)
    stacked = x.reshape(2, 3, 2, 4).permute(0, 1, 3, 2).reshape(2, 12, 2)
    torch.testing.assert_close(down, stacked.reshape(2, 6, 2, 2).mean(2))
    up = channel_to_space(down, 4, 3)
    assert up.shape == (2, 3, 8)
    # channel_to_space inverts the stacking when nothing was averaged
    torch.testing.assert_close(channel_to_space(space_to_channel(x, 4, 12), 4, 3), x)


def test_the_samples_of_a_latent_depend_on_it_and_earlier_latents_only():
    model = tiny()
    latents = torch.randn(1, 4, 10)
    full = model.decode(latents)
    changed = latents.clone()
    changed[:, :, 6] += 1.0
    moved = (model.decode(changed) - full).abs()[0] > 0
    assert not moved[: 6 * 20].any() and moved[6 * 20 : 7 * 20].any()
    for k in (1, 4, 9):  # decoding a prefix gives the full decode's first samples
        torch.testing.assert_close(model.decode(latents[:, :, :k]), full[:, : k * 20],
                                   atol=1e-6, rtol=0)  # fmt: skip


@pytest.mark.parametrize("bad,match", [
    (dict(strides=(4, 5), channel_multiples=(3, 1)), "must divide"),
    (dict(strides=(4,), channel_multiples=(2, 1)), "one entry per stage"),
    (dict(latent_channels=0), "latent_channels"),
])  # fmt: skip
def test_bad_configs_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        WaveformConfig(**{**TINY, **bad})


def test_the_loss_has_waveform_stft_and_kl_parts_and_the_generator_decides_the_noise():
    model = tiny().train()
    audio = torch.sin(torch.arange(1200) * 0.3)[None].repeat(2, 1) * 0.5  # > the largest FFT
    a = model(audio, generator=torch.Generator().manual_seed(0))
    b = model(audio, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.loss, b.loss) and a.reconstruction.shape == audio.shape
    assert a.kl_loss > 0 and a.reconstruction_loss > torch.nn.functional.l1_loss(
        a.reconstruction, audio) - 1e-6  # the STFT term adds to the L1  # fmt: skip
    a.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_calibrate_gives_zero_mean_unit_std_latents():
    model = tiny()
    audio = torch.randn(8, 400) * 0.2
    model.calibrate(audio)
    z = model.encode(audio)
    torch.testing.assert_close(z.mean(dim=(0, 2)), torch.zeros(4), atol=1e-4, rtol=0)
    torch.testing.assert_close(z.std(dim=(0, 2)), torch.ones(4), atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "config",
    [
        TINY,
        dict(channels=8, strides=(4, 5, 5, 8), channel_multiples=(2, 1, 1, 2), latent_channels=4),
    ],
)
def test_a_window_with_the_decoder_context_decodes_exactly_what_the_whole_line_does(config):
    torch.manual_seed(0)
    model = WaveformAutoencoder(WaveformConfig(**config)).eval()
    latents = torch.randn(1, 4, 24)
    hop, context = model.hop, model.decoder_context
    with torch.no_grad():
        whole = model.decode(latents)
        i, j = 12, 16
        window = model.decode(latents[:, :, i - context : j])[:, context * hop :]
        blind = model.decode(latents[:, :, i:j])  # no history: its first samples are wrong
    torch.testing.assert_close(window, whole[:, i * hop : j * hop], atol=1e-6, rtol=0)
    assert not torch.allclose(blind, whole[:, i * hop : j * hop], atol=1e-3)
