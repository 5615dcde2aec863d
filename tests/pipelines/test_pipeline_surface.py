"""The diffusers surface every pipeline has: progress bars, components, config, device, dtype,
to(), per-image generators, num_images_per_prompt, output_type="latent", make_image_grid."""

import pytest
import torch
from conftest import make_tiny_pipeline

from mmgen import ClassToImagePipeline, TextToImagePipeline

COMPONENT_NAMES = {"transformer", "vq", "condition_tokenizer", "order", "scorer", "scorer_vq"}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_list_of_generators_makes_each_image_depend_on_its_own(tiny_pipeline):
    pipe = tiny_pipeline
    prompts = ["a red circle", "two blue squares", "a green triangle"]
    batch = pipe(prompts, generator=[seeded(5), seeded(6), seeded(7)], output_type="latent")
    alone = [pipe(p, generator=seeded(s), output_type="latent").images
             for p, s in zip(prompts, (5, 6, 7))]  # fmt: skip
    assert torch.equal(batch.images, torch.cat(alone))
    swapped = pipe(prompts, generator=[seeded(6), seeded(5), seeded(7)], output_type="latent")
    assert not torch.equal(swapped.images[0], batch.images[0])
    with pytest.raises(ValueError, match="got 2 generators for 3 images"):
        pipe(prompts, generator=[seeded(0), seeded(1)])


def test_an_int_seed_is_refused_with_the_generator_form(tiny_pipeline):
    with pytest.raises(TypeError, match=r"generator=torch.Generator\(\).manual_seed\(0\)"):
        tiny_pipeline("a red circle", generator=0)
    with pytest.raises(TypeError, match="a list holding \\['int'\\]"):
        tiny_pipeline("a red circle", generator=[1])


def test_latent_output_is_the_codes_the_decoder_turns_into_the_images(tiny_pipeline):
    codes = tiny_pipeline("a red circle", generator=seeded(0), output_type="latent").images
    assert codes.dtype == torch.long and codes.shape == (1, 64)
    images = tiny_pipeline("a red circle", generator=seeded(0), output_type="pt").images
    decoded = (tiny_pipeline.decode_codes(codes).clamp(-1, 1) + 1) / 2
    assert torch.equal(images, decoded)


def test_components_config_device_dtype_and_to(tiny_pipeline, tmp_path):
    pipe = tiny_pipeline
    parts = pipe.components
    assert set(parts) == COMPONENT_NAMES
    # optional ones are listed as None, as diffusers lists a missing component
    assert parts["scorer"] is None and parts["scorer_vq"] is None
    assert parts["transformer"] is pipe.transformer and parts["vq"] is pipe.vq
    rebuilt = TextToImagePipeline(**parts, image_size=16)
    assert torch.equal(rebuilt("a", generator=seeded(1), output_type="latent").images,
                       pipe("a", generator=seeded(1), output_type="latent").images)  # fmt: skip
    pipe.save_pretrained(tmp_path / "p")
    import json

    assert pipe.config == json.loads((tmp_path / "p" / "model_index.json").read_text())
    pipe.config["image_size"] = 999  # a copy: the pipeline is unchanged
    assert pipe.config["image_size"] == 16
    assert pipe.device == torch.device("cpu") and pipe.dtype == torch.float32
    assert pipe.to(torch.float64) is pipe and pipe.dtype == torch.float64
    assert next(pipe.vq.parameters()).dtype == torch.float64
    pipe.to("cpu", torch.float32)
    assert pipe.dtype == torch.float32
    pipe.to(device="cpu", dtype=torch.float64)
    assert pipe.dtype == torch.float64
    with pytest.raises(TypeError, match="floating-point dtype"):
        pipe.to(torch.int64)
    with pytest.raises(TypeError, match="a device and/or a torch.dtype"):
        pipe.to(3.5)


def test_components_rebuild_a_pipeline_of_another_order():
    pipe = make_tiny_pipeline(order={"name": "next_scale"})
    rebuilt = TextToImagePipeline(**pipe.components, image_size=16)
    assert rebuilt.order.name == "next_scale"
    assert torch.equal(rebuilt("a", generator=seeded(2), output_type="latent").images,
                       pipe("a", generator=seeded(2), output_type="latent").images)  # fmt: skip


def test_progress_bar_shows_by_default_and_set_progress_bar_config_silences_it(capsys):
    pipe = make_tiny_pipeline()
    pipe("a red circle", generator=seeded(0))
    err = capsys.readouterr().err  # shown by default, as in diffusers, labelled from the start
    assert [line for line in err.split("\r") if line.strip()][0].startswith("groups")
    pipe.set_progress_bar_config(disable=True)
    pipe("a red circle", generator=seeded(0))
    assert capsys.readouterr().err == ""
    pipe.set_progress_bar_config(desc="mine")
    assert list(pipe.progress_bar(range(3))) == [0, 1, 2]
    pipe("a red circle", generator=seeded(0), show_progress=False)
    assert "groups" not in capsys.readouterr().err


def test_the_class_pipeline_takes_num_images_per_prompt_and_make_image_grid_works():
    from diffusers.utils import make_image_grid

    pipe = ClassToImagePipeline.from_pretrained("digits-c2i")
    pipe.set_progress_bar_config(disable=True)
    by_prompt = pipe([3, 7], num_images_per_prompt=2, generator=seeded(0)).images
    by_class = pipe([3, 7], num_images_per_class=2, generator=seeded(0)).images
    assert [im.tobytes() for im in by_prompt] == [im.tobytes() for im in by_class]
    assert set(pipe.components) == COMPONENT_NAMES
    with pytest.raises(ValueError, match="disagree"):
        pipe(3, num_images_per_class=2, num_images_per_prompt=3)
    grid = make_image_grid(by_prompt, rows=2, cols=2)
    assert grid.size == (2 * 32, 2 * 32)


def media_pipeline(kind):
    """A tiny video or audio pipeline and what one output and its count argument are called."""
    from conftest import make_tiny_audio_pipeline, make_tiny_video_pipeline

    if kind == "video":
        return make_tiny_video_pipeline(), "frames", "num_videos_per_prompt"
    return make_tiny_audio_pipeline(), "audios", "num_audios_per_prompt"


@pytest.mark.parametrize("kind", ["video", "audio"])
def test_video_and_audio_pipelines_have_the_same_surface(kind, capsys, tmp_path):
    pipe, outputs, per_prompt = media_pipeline(kind)
    kw = dict(num_inference_steps=2, output_type="latent")
    # progress bar by default, silenced by set_progress_bar_config
    pipe("a", generator=seeded(0), **kw)
    assert capsys.readouterr().err != ""
    pipe.set_progress_bar_config(disable=True)
    first = getattr(pipe("a", generator=seeded(0), **kw), outputs)
    assert capsys.readouterr().err == ""
    # one generator per output, as diffusers: each output depends on its own
    batch = getattr(pipe(["a", "b"], generator=[seeded(5), seeded(6)], **kw), outputs)
    alone = getattr(pipe("b", generator=seeded(6), **kw), outputs)
    close = dict(atol=1e-4, rtol=1e-4)  # continuous: a batch of 2 rounds unlike a batch of 1
    torch.testing.assert_close(batch[1:], alone, **close)
    swapped = getattr(pipe(["a", "b"], generator=[seeded(6), seeded(5)], **kw), outputs)
    assert not torch.allclose(swapped[1:], alone, **close)
    with pytest.raises(TypeError, match=r"generator=torch.Generator\(\).manual_seed\(0\)"):
        pipe("a", generator=0)
    two = getattr(pipe("a", generator=seeded(0), **{per_prompt: 2}, **kw), outputs)
    assert two.shape[0] == 2 and not torch.allclose(two[0], two[1])
    # callback_on_step_end after every group, with the state so far
    steps = []
    pipe("a", generator=seeded(0), callback_on_step_end=lambda s, n, st: steps.append((s, n)),
         **kw)  # fmt: skip
    assert steps == [(g, pipe.order.num_groups) for g in range(pipe.order.num_groups)]
    # components rebuild it; config is model_index.json; dtype and to()
    rebuilt = type(pipe)(**pipe.components, image_size=pipe.image_size)
    assert torch.equal(getattr(rebuilt("a", generator=seeded(0), **kw), outputs), first)
    pipe.save_pretrained(tmp_path / "p")
    import json

    assert pipe.config == json.loads((tmp_path / "p" / "model_index.json").read_text())
    assert pipe.device == torch.device("cpu") and pipe.dtype == torch.float32
    assert pipe.to(torch.float64) is pipe and pipe.dtype == torch.float64
    with pytest.raises(TypeError, match="floating-point dtype"):
        pipe.to(torch.int64)
