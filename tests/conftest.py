"""Shared tiny, seeded components (2 layers, width 32) for fast CPU tests."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # the Triton kernels run on CPU tensors under Triton's interpreter; Triton reads this when
    # a kernel module is imported, so it is set before any test imports one
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import settings
from mmgen.tokenizers.text import ByteTokenizer
from mmgen.tokenizers.vq import VQConfig, VQModel

from mmgen.models.transformer import ARTransformer, transformer_config_from_preset
from mmgen.pipelines.text_to_image import TextToImagePipeline
from mmgen.sequence import TokenSpace

# CI draws the same hypothesis examples on every run (a failure there is reproducible at once);
# local runs keep exploring new ones
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

TINY_VQ = dict(block_out_channels=(16, 16), norm_num_groups=8, latent_channels=16, codebook_size=32)


def make_tiny_pipeline(seed: int = 0, *, rope: str = "2d") -> TextToImagePipeline:
    """A randomly initialised 16x16-pixel pipeline (8x8 codes) with non-trivial logits."""
    text = ByteTokenizer(max_length=24)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vq = VQModel(VQConfig(**TINY_VQ))
        space = TokenSpace(text.vocab_size, vq.codebook_size)
        model = ARTransformer(
            transformer_config_from_preset(
                "debug", vocab_size=space.vocab_size, num_codes=space.num_codes, rope=rope
            )
        )
        torch.nn.init.normal_(model.head.weight, std=0.3)  # zero-init head would be uniform
    return TextToImagePipeline(model, vq, text, image_size=16)


@pytest.fixture
def tiny_pipeline() -> TextToImagePipeline:
    return make_tiny_pipeline()
