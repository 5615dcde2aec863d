import numpy as np
import pytest
import torch
from PIL import Image

from mmgen import TextToImagePipeline
from mmgen.utils.serialization import CheckpointError


def run(pipe, **kwargs):
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return pipe("a red circle", **kwargs)


def test_output_types_and_counts(tiny_pipeline):
    pil = run(tiny_pipeline, num_images_per_prompt=3).images
    assert len(pil) == 3 and all(isinstance(i, Image.Image) and i.size == (16, 16) for i in pil)
    arr = run(tiny_pipeline, output_type="np").images
    assert arr.shape == (1, 16, 16, 3) and arr.dtype == np.float32
    assert 0 <= arr.min() and arr.max() <= 1
    pt = run(tiny_pipeline, output_type="pt", num_images_per_prompt=2).images
    assert pt.shape == (2, 3, 16, 16)
    (tuple_images,) = run(tiny_pipeline, output_type="pt", return_dict=False)
    assert torch.equal(tuple_images, run(tiny_pipeline, output_type="pt").images)


def test_prompt_list_orders_images_per_prompt(tiny_pipeline):
    # greedy decoding makes each image a function of its prompt alone: the batch must be the
    # images of the first prompt, then those of the second
    def greedy(prompts, n=1):
        return tiny_pipeline(prompts, num_images_per_prompt=n, temperature=0.0,
                             output_type="pt").images  # fmt: skip

    red, blue = greedy("a red circle"), greedy("a blue square")
    assert not torch.allclose(red, blue)
    batch = greedy(["a red circle", "a blue square"], n=2)
    assert batch.shape == (4, 3, 16, 16)
    torch.testing.assert_close(batch, torch.cat([red, red, blue, blue]), atol=1e-5, rtol=0)


def test_same_seed_same_images(tiny_pipeline):
    a = run(tiny_pipeline, output_type="pt", guidance_scale=3.0).images
    b = run(tiny_pipeline, output_type="pt", guidance_scale=3.0).images
    assert torch.equal(a, b)


def test_save_load_generate_is_bit_identical(tiny_pipeline, tmp_path):
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "pipe")
    for name, tensor in tiny_pipeline.transformer.state_dict().items():
        assert torch.equal(tensor, loaded.transformer.state_dict()[name]), name
    kwargs = dict(output_type="pt", guidance_scale=2.0, top_k=8, num_images_per_prompt=2)
    assert torch.equal(run(tiny_pipeline, **kwargs).images, run(loaded, **kwargs).images)
    assert (tmp_path / "pipe" / "transformer" / "model.safetensors").is_file()
    assert (tmp_path / "pipe" / "vq" / "config.json").is_file()


def test_saved_sampling_defaults_are_used(tiny_pipeline, tmp_path):
    from mmgen.generation.loop import SamplingConfig

    tiny_pipeline.sampling = SamplingConfig(temperature=0.0)
    tiny_pipeline.save_pretrained(tmp_path / "pipe")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "pipe")
    assert loaded.sampling.temperature == 0.0
    greedy_a = loaded("a red circle", output_type="pt", generator=torch.Generator().manual_seed(1))
    greedy_b = loaded("a red circle", output_type="pt", generator=torch.Generator().manual_seed(2))
    assert torch.equal(greedy_a.images, greedy_b.images)


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(prompt=3), TypeError, "prompt"),
        (dict(prompt=["ok", None]), TypeError, "prompt"),
        (dict(prompt=[]), ValueError, "prompt"),
        (dict(num_images_per_prompt=0), ValueError, "num_images_per_prompt"),
        (dict(num_images_per_prompt=1.5), TypeError, "num_images_per_prompt"),
        (dict(guidance_scale=-1.0), ValueError, "guidance_scale"),
        (dict(top_p=0.0), ValueError, "top_p"),
        (dict(top_p=1.01), ValueError, "top_p"),
        (dict(top_k=-1), ValueError, "top_k"),
        (dict(temperature=-0.1), ValueError, "temperature"),
        (dict(output_type="latents"), ValueError, "output_type"),
        (dict(negative_prompt=["a", "b"]), ValueError, "negative_prompt"),
        (dict(generator=0), TypeError, "generator"),
    ],
)
def test_bad_arguments_raise_clear_errors(tiny_pipeline, kwargs, error, name):
    kwargs = {"prompt": "a red circle", **kwargs}
    with pytest.raises(error, match=name):
        tiny_pipeline(**kwargs)


def test_empty_and_unicode_prompts_work(tiny_pipeline):
    out = tiny_pipeline(
        ["", "ünïcødé ✓ 🟥"], output_type="np", generator=torch.Generator().manual_seed(0)
    ).images
    assert out.shape == (2, 16, 16, 3) and np.isfinite(out).all()


def test_missing_or_corrupt_files_raise_checkpoint_errors(tiny_pipeline, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        TextToImagePipeline.from_pretrained(tmp_path / "nothing")
    folder = tiny_pipeline.save_pretrained(tmp_path / "pipe")
    weights = folder / "transformer" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="model.safetensors.*corrupt"):
        TextToImagePipeline.from_pretrained(folder)
    weights.unlink()
    with pytest.raises(CheckpointError, match="weights file not found"):
        TextToImagePipeline.from_pretrained(folder)
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="model_index.json"):
        TextToImagePipeline.from_pretrained(folder)
