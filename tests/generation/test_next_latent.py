"""Next-latent audio (CLEAR) on the shared engine: chunks of latents, the per-token flow head,
the KV cache, streaming that equals the one-shot clip."""

import numpy as np
import pytest
import torch
from conftest import TINY_WAVEFORM, make_tiny_audio_pipeline

from mmgen.orders import build_order
from mmgen.utils.config import ConfigError

PROMPTS = ["play C4 E4", "play G4"]


def autoencoder():
    from mmgen.tokenizers.waveform import WaveformAutoencoder, WaveformConfig

    return WaveformAutoencoder(WaveformConfig(**TINY_WAVEFORM))


def test_one_group_per_chunk_on_1d_positions_fed_the_chunk_before():
    order = build_order({"name": "next_latent", "chunk": 2}, autoencoder(), 200, 5)
    layout = order.layout
    assert [b - a for a, b in layout.image_groups] == [2] * 5
    assert layout.positions.tolist() == [[i, i, i] for i in range(15)]
    assert layout.kv_end[5:].tolist() == [7, 7, 9, 9, 11, 11, 13, 13, 15, 15]
    latents = torch.randn(2, 10, 4)
    inputs, targets = order.training_inputs(latents)
    assert torch.equal(targets, latents) and inputs.shape == (2, 10, 5)
    assert torch.all(inputs[:, :2, :4] == 0) and torch.all(inputs[:, :2, 4] == 1)
    assert torch.equal(inputs[:, 2:, :4], latents[:, :8]) and torch.all(inputs[:, 2:, 4] == 0)


@pytest.mark.parametrize("bad,key", [({"chunk": 3}, "chunk"), ({"chunk": 0}, "chunk")])
def test_bad_chunks_are_config_errors(bad, key):
    with pytest.raises(ConfigError, match=key):
        build_order({"name": "next_latent", **bad}, autoencoder(), 200, 5)


def test_cached_generation_matches_recompute_one_call_per_chunk():
    pipe = make_tiny_audio_pipeline()
    pipe.set_progress_bar_config(disable=True)
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a: rows.append(a[0].shape[-2]))
    kw = dict(output_type="latent", guidance_scale=2.0, num_inference_steps=3)
    cached = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), **kw).audios
    hook.remove()
    assert rows == [24] + [2] * 5 and cached.shape == (2, 10, 4) and cached.std() > 0.1
    full = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), use_cache=False, **kw).audios
    torch.testing.assert_close(cached, full, atol=1e-4, rtol=1e-4)


def test_the_pipeline_returns_float32_clips_in_range_at_the_sample_rate():
    pipe = make_tiny_audio_pipeline()
    out = pipe(PROMPTS, num_inference_steps=2, show_progress=False,
               generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.sample_rate == 16000 and len(out.audios) == 2
    assert all(a.shape == (200,) and a.dtype == np.float32 for a in out.audios)
    assert all(np.abs(a).max() <= 1 for a in out.audios)
    with pytest.raises(ValueError, match="output_type"):
        pipe("play C4", output_type="pil")


@pytest.mark.parametrize("chunk", [1, 2, 5])
def test_stream_chunks_concatenated_equal_the_one_shot_clip(chunk):
    pipe = make_tiny_audio_pipeline(chunk=chunk)
    pipe.set_progress_bar_config(disable=True)
    kw = dict(guidance_scale=2.0, num_inference_steps=3)
    chunks = list(pipe.stream("play C4 E4", generator=torch.Generator().manual_seed(3), **kw))
    assert len(chunks) == 10 // chunk and all(c.shape == (20 * chunk,) for c in chunks)
    one_shot = pipe("play C4 E4", generator=torch.Generator().manual_seed(3), **kw).audios[0]
    np.testing.assert_allclose(np.concatenate(chunks), one_shot, atol=1e-6, rtol=0)


def test_a_stream_stopped_early_stops_the_generation():
    pipe = make_tiny_audio_pipeline(chunk=1)
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda m, a: calls.append(1))
    stream = pipe.stream("play C4", num_inference_steps=2, generator=torch.Generator())
    first = next(stream)
    assert first.shape == (20,) and len(calls) == 2  # the prompt, then the first latent
    stream.close()
    assert stream.gi_frame is None and len(calls) == 2  # nothing ran on
    with pytest.raises(StopIteration):
        next(stream)


def test_a_saved_audio_pipeline_reloads_bit_identically(tmp_path):
    from mmgen import TextToAudioPipeline
    from mmgen.pipelines.ar_image import ARImagePipeline

    pipe = make_tiny_audio_pipeline()
    pipe.save_pretrained(tmp_path / "pipe")
    again = ARImagePipeline.from_pretrained(tmp_path / "pipe")
    assert isinstance(again, TextToAudioPipeline) and again.num_samples == 200
    kw = dict(num_inference_steps=2, show_progress=False)
    a = pipe(PROMPTS, generator=torch.Generator().manual_seed(0), **kw).audios
    b = again(PROMPTS, generator=torch.Generator().manual_seed(0), **kw).audios
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
