import pytest
import torch
from conftest import token_model_config
from mmgen.tokenizers.label import ClassLabelTokenizer
from mmgen.tokenizers.vq import VQConfig, VQModel

from mmgen import ClassToImagePipeline
from mmgen.models.transformer import ARTransformer


@pytest.fixture
def class_pipeline():
    labels = ClassLabelTokenizer(10)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        vq = VQModel(
            VQConfig(
                in_channels=1,
                block_out_channels=(16, 16),
                norm_num_groups=8,
                latent_channels=16,
                codebook_size=32,
            )
        )
        model = ARTransformer(token_model_config(labels.vocab_size, vq.codebook_size))
        torch.nn.init.normal_(model.head.proj.weight, std=0.3)
    return ClassToImagePipeline(model, vq, labels, image_size=16)


def test_grey_images_per_class(class_pipeline):
    images = class_pipeline(
        [3, 7], num_images_per_class=2, generator=torch.Generator().manual_seed(0)
    ).images
    assert len(images) == 4 and images[0].mode == "L" and images[0].size == (16, 16)
    arr = class_pipeline(1, output_type="np", generator=torch.Generator().manual_seed(0)).images
    assert arr.shape == (1, 16, 16, 1)


def test_class_changes_the_output_and_guidance_is_reproducible(class_pipeline):
    def run(label, **kw):
        return class_pipeline(
            label,
            num_images_per_class=4,
            output_type="pt",
            generator=torch.Generator().manual_seed(0),
            **kw,
        ).images

    assert not torch.equal(run(0), run(5))
    a = class_pipeline(
        2, output_type="pt", guidance_scale=3.0, generator=torch.Generator().manual_seed(4)
    ).images
    b = class_pipeline(
        2, output_type="pt", guidance_scale=3.0, generator=torch.Generator().manual_seed(4)
    ).images
    assert torch.equal(a, b)


def test_save_load_is_bit_identical(class_pipeline, tmp_path):
    class_pipeline.save_pretrained(tmp_path / "c2i")
    loaded = ClassToImagePipeline.from_pretrained(tmp_path / "c2i")
    kw = dict(output_type="pt", generator=torch.Generator().manual_seed(0))
    first = class_pipeline([1, 2], **kw).images
    kw["generator"] = torch.Generator().manual_seed(0)
    assert torch.equal(first, loaded([1, 2], **kw).images)


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (10, ValueError, "class label"),
        (-1, ValueError, "class label"),
        ("3", TypeError, "class"),
        ([], TypeError, "class_labels"),
        ([1.5], TypeError, "class label"),
    ],
)
def test_bad_labels_raise_clear_errors(class_pipeline, labels, error, match):
    with pytest.raises(error, match=match):
        class_pipeline(labels)


def test_label_tokenizer_null_class():
    tok = ClassLabelTokenizer(4)
    assert tok([0, None, 3]).tolist() == [[0], [4], [3]]
    assert tok.vocab_size == 5
    with pytest.raises(ValueError, match="num_classes"):
        ClassLabelTokenizer(0)
