"""Shared tiny, seeded components (2 layers, width 32) for fast CPU tests."""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    # the Triton kernels run on CPU tensors under Triton's interpreter; Triton reads this when
    # a kernel module is imported, so it is set before any test imports one
    os.environ.setdefault("TRITON_INTERPRET", "1")

# encoded training data is cached per session, never in the user's ~/.cache
if "MMGEN_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["MMGEN_CACHE"] = tempfile.mkdtemp(prefix="mmgen-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MMGEN_CACHE"], ignore_errors=True)

if "PYTEST_XDIST_WORKER" in os.environ:
    # one torch thread per worker: two workers on two cores, never four threads contending
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # and in the subprocesses tests start

import pytest  # noqa: E402
from hypothesis import settings
from mmgen.tokenizers.text import ByteTokenizer
from mmgen.tokenizers.vq import VQConfig, VQModel

from mmgen.models.transformer import ARTransformer, transformer_config_from_preset
from mmgen.orders import build_order
from mmgen.pipelines.text_to_image import TextToImagePipeline

# CI draws the same hypothesis examples on every run (a failure there is reproducible at once);
# local runs keep exploring new ones
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

TINY_VQ = dict(block_out_channels=(16, 16), norm_num_groups=8, latent_channels=16, codebook_size=32)


def token_model_config(condition_vocab_size: int, num_codes: int, preset: str = "debug", **fields):
    """A transformer config with the token input and categorical head over ``num_codes``."""
    return transformer_config_from_preset(
        preset,
        condition_vocab_size=condition_vocab_size,
        input={"kind": "token", "num_codes": num_codes},
        head={"kind": "categorical", "num_codes": num_codes},
        **fields,
    )


TINY_SCALES = (1, 2, 4, 8)
#: one config per built-in order, for tests that run them all
ORDER_SPECS = {
    "next_token": {"name": "next_token"},
    "next_scale": {"name": "next_scale"},
    "next_scale_window": {"name": "next_scale", "window": 2},
    "token_shuffle": {"name": "token_shuffle", "window": 2},
    "next_frequency": {"name": "next_frequency"},
    "next_frequency_window": {"name": "next_frequency", "window": 2},
}


#: orders over continuous latents (the tiny KL tokenizer), by test id
CONTINUOUS_ORDER_SPECS = {
    "continuous_next_token": {"name": "next_token"},
    "continuous_next_scale": {"name": "continuous_next_scale"},
    "continuous_next_scale_window": {"name": "continuous_next_scale", "window": 2},
}
TINY_KL = dict(block_out_channels=(8, 8), norm_num_groups=4, latent_channels=4)


def make_tiny_tokenizer(order: dict | None = None, *, continuous: bool = False):
    """The tiny VQ (16x16 pixels -> 8x8 codes), multi-scale (1, 2, 4, 8) for next-scale,
    frequency-band (the same scales) for next-frequency, or
    with ``continuous`` the tiny KL autoencoder (8x8 latents of 4 channels)."""
    if continuous:
        from mmgen.tokenizers.kl import KLConfig, KLModel

        return KLModel(KLConfig(**TINY_KL))
    if order is not None and order.get("name") == "next_scale":
        from mmgen.tokenizers.multiscale_vq import MultiScaleVQConfig, MultiScaleVQModel

        return MultiScaleVQModel(MultiScaleVQConfig(**TINY_VQ, scales=TINY_SCALES))
    if order is not None and order.get("name") == "next_frequency":
        from mmgen.tokenizers.frequency_vq import FrequencyVQConfig, FrequencyVQModel

        return FrequencyVQModel(FrequencyVQConfig(**TINY_VQ, scales=TINY_SCALES))
    return VQModel(VQConfig(**TINY_VQ))


def make_tiny_pipeline(
    seed: int = 0, *, rope: str = "2d", order: dict | None = None, continuous: bool = False
) -> TextToImagePipeline:
    """A randomly initialised 16x16-pixel pipeline (8x8 codes) with non-trivial logits, in
    ``order`` (next-token by default); ``continuous``: over the tiny KL's latents, with a flow
    head whose velocities depend on the hidden states."""
    text = ByteTokenizer(max_length=24)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        vq = make_tiny_tokenizer(order, continuous=continuous)
        built = build_order(order, vq, 16, text.max_length, flat_positions=rope == "1d")
        model = ARTransformer(
            transformer_config_from_preset(
                "debug",
                condition_vocab_size=text.vocab_size,
                input=built.input_config(),
                head=built.head_config(),
                rope=rope,
            )
        )
        # non-trivial logits (a zero-init head is uniform; 0.02-std MLPs pass rows through
        # almost unchanged, so every row would look alike)
        if continuous:  # a flow head starts at zero velocity: give every layer weights
            for module in [*model.inputs.modules(), *model.head.modules()]:
                if isinstance(module, torch.nn.Linear):
                    torch.nn.init.normal_(module.weight, std=1.0 / module.in_features**0.5)
        else:
            for module in [*model.inputs.modules(), *model.head.modules()]:
                if isinstance(module, torch.nn.Linear) and module is not model.head.proj:
                    torch.nn.init.normal_(module.weight, std=3.0 / module.in_features**0.5)
            torch.nn.init.normal_(model.head.proj.weight, std=0.3)
    return TextToImagePipeline(model, vq, text, image_size=16, order=order)


def own_candidates(pipe, prompts: list[str], i: int, seed: int, k: int) -> torch.Tensor:
    """Codes (k, N) of the k candidates a reranking ``pipe`` draws for image i of ``prompts``
    generated with one generator per image (image i's seeded ``seed``): k child generators
    seeded by draws from it, the prompt's rows repeated."""
    from mmgen.pipelines.text_to_image import prompt_ids

    cond, uncond = prompt_ids(pipe.text_tokenizer, prompts, None, 1)
    child_seeds = torch.randint(2**62, (k,), generator=torch.Generator().manual_seed(seed))
    children = [torch.Generator().manual_seed(int(s)) for s in child_seeds]
    return pipe.generate_tokens(
        cond[i : i + 1].repeat(k, 1), uncond[i : i + 1].repeat(k, 1), pipe.resolve_sampling(),
        generator=children, use_cache=True, show_progress=False,
    )  # fmt: skip


@pytest.fixture
def tiny_pipeline() -> TextToImagePipeline:
    return make_tiny_pipeline()


def make_tiny_video_pipeline(seed: int = 0, *, rope: str = "mmrope", num_frames: int = 3,
                             **order_options):  # fmt: skip
    """A randomly initialised video pipeline: 8x8-pixel frames through the tiny KL (4x4
    latents of 4 channels per frame), next-frame order over ``num_frames`` frames, one
    attention head of 32 channels (MM-RoPE needs 32), every input and head layer given weights
    (a flow head starts at zero velocity)."""
    from mmgen.tokenizers.kl import KLConfig, KLModel

    from mmgen.pipelines.text_to_video import TextToVideoPipeline

    text = ByteTokenizer(max_length=24)
    spec = {"name": "next_frame", "num_frames": num_frames, **order_options}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        kl = KLModel(KLConfig(**TINY_KL))
        built = build_order(spec, kl, 8, text.max_length)
        model = ARTransformer(
            transformer_config_from_preset(
                "debug", condition_vocab_size=text.vocab_size, input=built.input_config(),
                head=built.head_config(), rope=rope, num_heads=1,
            )
        )  # fmt: skip
        for module in [*model.inputs.modules(), *model.head.modules()]:
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=1.0 / module.in_features**0.5)
        for block in model.blocks:  # attention that differs between rows (FlexRoPE shows)
            torch.nn.init.normal_(block.attn.qkv.weight, std=1.0 / block.attn.qkv.in_features**0.5)
    return TextToVideoPipeline(model, kl, text, image_size=8, order=spec)


TINY_WAVEFORM = dict(channels=8, strides=(4, 5), channel_multiples=(2, 1), latent_channels=4)


def make_tiny_audio_pipeline(seed: int = 0, *, chunk: int = 2, num_samples: int = 200):
    """A randomly initialised text-to-audio pipeline: the tiny waveform autoencoder (20 samples
    per latent: 10 latents of 4 channels for 200 samples), next-latent order in chunks of
    ``chunk``, the flow MLP head given weights (it starts at zero velocity)."""
    from mmgen.tokenizers.waveform import WaveformAutoencoder, WaveformConfig

    from mmgen.pipelines.text_to_audio import TextToAudioPipeline

    text = ByteTokenizer(max_length=24)
    spec = {"name": "next_latent", "chunk": chunk}
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        autoencoder = WaveformAutoencoder(WaveformConfig(**TINY_WAVEFORM))
        built = build_order(spec, autoencoder, num_samples, text.max_length)
        model = ARTransformer(
            transformer_config_from_preset(
                "debug", condition_vocab_size=text.vocab_size, input=built.input_config(),
                head=built.head_config(), rope="1d",
            )
        )  # fmt: skip
        for module in [*model.inputs.modules(), *model.head.modules()]:
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=1.0 / module.in_features**0.5)
    return TextToAudioPipeline(model, autoencoder, text, image_size=num_samples, order=spec)
