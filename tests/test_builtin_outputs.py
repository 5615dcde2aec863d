"""The shipped models' outputs, pinned: a refactor of the engine must leave what ``shapes-t2i``,
``shapes-t2i-shuffle``, ``shapes-t2i-scale`` and ``digits-c2i`` draw for a fixed seed
bit-identical (sha256 of the 8-bit pixels of PIL output), and what ``tones-t2a`` plays
unchanged: its float samples differ in the last bits with the number of CPU threads (2 threads
against CI's 1 flipped hundreds of 16-bit PCM roundings), so the clip is pinned by the RMS
of each 50 ms chunk to 1e-4.

When a change is meant to alter them (new weights, a sampling fix), regenerate the digests with
``python tests/test_builtin_outputs.py`` and say why in the commit. Where the CPU's kernels
(``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512) sum floats in orders that flip a
sampled code, a case holds one digest per capability, and a capability with none pinned skips
with that reason.
"""

import hashlib

import numpy as np
import pytest
import torch

from mmgen import ClassToImagePipeline, TextToAudioPipeline, TextToImagePipeline

PROMPTS = ["a red circle", "two blue squares to the left of a green triangle"]
CASES = {
    # name -> (pipeline class, model, condition, keyword arguments)
    "shapes-t2i default sampling": (TextToImagePipeline, "shapes-t2i", PROMPTS,
                                    dict(num_images_per_prompt=2)),
    "shapes-t2i one candidate": (TextToImagePipeline, "shapes-t2i", PROMPTS,
                                 dict(num_images_per_prompt=2, num_candidates=1)),
    "shapes-t2i guided top-k": (TextToImagePipeline, "shapes-t2i", PROMPTS,
                                dict(guidance_scale=3.0, temperature=1.0, top_k=50,
                                     guidance_schedule="linear", num_candidates=1)),
    "shapes-t2i greedy": (TextToImagePipeline, "shapes-t2i", PROMPTS[:1],
                          dict(temperature=0.0, num_candidates=1)),
    "shapes-t2i-shuffle default sampling": (TextToImagePipeline, "shapes-t2i-shuffle", PROMPTS,
                                            dict(num_images_per_prompt=2)),
    "shapes-t2i-shuffle one candidate": (TextToImagePipeline, "shapes-t2i-shuffle", PROMPTS,
                                         dict(num_images_per_prompt=2, num_candidates=1)),
    "shapes-t2i-scale default sampling": (TextToImagePipeline, "shapes-t2i-scale", PROMPTS,
                                          dict(num_images_per_prompt=2)),
    "digits-c2i default sampling": (ClassToImagePipeline, "digits-c2i", list(range(10)), {}),
    "digits-c2i guided": (ClassToImagePipeline, "digits-c2i", [3, 8],
                          dict(num_images_per_class=2, guidance_scale=2.0)),
}  # fmt: skip
DIGESTS = {
    # the CPU-trained flagship (2026-12-07, AMD EPYC; the bf16 chain's weights): its generator
    # alone ...
    "shapes-t2i one candidate": "ab9bc6a66c9bedd84002f7deee7aca2ffc7365047a388284ab80cfdac63b61f2",
    "shapes-t2i guided top-k": "ca5cfa293fa52cf1816863c76bdfff1cc8a1af17b66f02157401f18ebc4de750",
    "shapes-t2i greedy": "810eb254cf0e2e78ddd896c1058603d267f3ae50f7bc28edb95afd6d86027b62",
    # ... and the best of 16 by its captioning scorer (4x4 windows, 2026-12-07), on re-encoded
    # pictures: per kernel family
    "shapes-t2i default sampling": {
        "AVX512": "13b1cacc8f6d82a83da8cfeef5def489927fcca947f2f1eb36e1b0d81125a95f",
    },
    # the generator alone (its weights and sampling before the scorer came): unchanged
    "shapes-t2i-shuffle one candidate": "d4937392d8468ad081a6e3970e66d1fa59c8fc8c36b7bd84af58b13a5376b7c5",  # noqa: E501
    # the best of 4 by the scorer, which reads each candidate's picture encoded again (a
    # convolutional encoder): pinned per CPU kernel family
    "shapes-t2i-shuffle default sampling": {
        "AVX512": "c7fb55c9b4872b6a4b9835d68339df6d2f2601a168dfac67909ae153db28f20c",
    },
    # pinned on an AVX2 CPU (AMD EPYC, 2026-12-04, the one-GPU weights of
    # configs/shapes_t2i_scale_gpu.yaml) and on an AVX-512 one (AMD EPYC, 2026-12-06: the same
    # digest at 1 and 2 threads)
    "shapes-t2i-scale default sampling": {
        "AVX2": "7bed624d667022583993a7c231ab91ce863723072d78bea1fcaebeb4ebd87775",
        "AVX512": "7bed624d667022583993a7c231ab91ce863723072d78bea1fcaebeb4ebd87775",
    },
    # pinned on an AVX2 CPU (AMD EPYC, 2026-12-04, the weights of configs/digits_c2i_long.yaml)
    # and on an AVX-512 one (AMD EPYC, 2026-12-06, 1 and 2 threads alike): the default case
    # matches, the guided case draws other codes there
    "digits-c2i default sampling": {
        "AVX2": "1cc08a60569fc978cd8bd45101d1683483e1d50403384b1bb28f9f18dcedcc11",
        "AVX512": "1cc08a60569fc978cd8bd45101d1683483e1d50403384b1bb28f9f18dcedcc11",
    },
    "digits-c2i guided": {
        "AVX2": "08b4145519dea5ce41f4290a2b7570d96dc8adf7d3c0f379f91d89258f04bfba",
        "AVX512": "896417c10293715ae9b3724b1634a09bff957f2328a3df82a8cab06773da5066",
    },
}


def images_digest(name: str) -> str:
    """sha256 of the case's images, drawn on one torch thread (as under ``make test``): float
    sums in another thread count's order flip a sampled code of ``shapes-t2i``."""
    cls, model, condition, kwargs = CASES[name]
    pipe = cls.from_pretrained(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = pipe(condition, generator=torch.Generator().manual_seed(0), **kwargs)
    finally:
        torch.set_num_threads(threads)
    digest = hashlib.sha256()
    for image in out.images:
        digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_images_are_unchanged(name):
    pinned = DIGESTS[name]  # one digest, or one per CPU kernel family where they differ
    if isinstance(pinned, dict):
        capability = torch.backends.cpu.get_cpu_capability()
        if capability not in pinned:
            pytest.skip(f"{name}: no digest pinned for {capability} CPUs yet (pin one with "
                        f"python tests/test_builtin_outputs.py on such a machine)")  # fmt: skip
        pinned = pinned[capability]
    assert images_digest(name) == pinned


AUDIO_PROMPTS = ["play C4 E4 G4", "play B4 A4 G4 F4"]
AUDIO_CHUNK_RMS = [
    [0.34594, 0.37318, 0.37282, 0.37192, 0.28695, 0.34443, 0.36995, 0.3695, 0.36964, 0.28537,
     0.34435, 0.36713, 0.35346, 0.35839, 0.28451, 0.00262, 0.00249, 0.00248, 0.00247, 0.00249],
    [0.34732, 0.3581, 0.35871, 0.36943, 0.29037, 0.34742, 0.3739, 0.3752, 0.37631, 0.292,
     0.34239, 0.3671, 0.35396, 0.35916, 0.28475, 0.34072, 0.36936, 0.37017, 0.36776, 0.28599],
]  # fmt: skip


def audio_chunk_rms() -> list[list[float]]:
    pipe = TextToAudioPipeline.from_pretrained("tones-t2a")
    out = pipe(AUDIO_PROMPTS, generator=torch.Generator().manual_seed(0))
    return [np.sqrt((a.reshape(20, 800).astype(np.float64) ** 2).mean(1)).round(5).tolist()
            for a in out.audios]  # fmt: skip


def test_builtin_audio_is_unchanged():
    np.testing.assert_allclose(audio_chunk_rms(), AUDIO_CHUNK_RMS, atol=1e-4, rtol=0)


if __name__ == "__main__":
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for case in CASES:
        print(f"    {case!r}: {images_digest(case)!r},")
    print(f"AUDIO_CHUNK_RMS = {audio_chunk_rms()!r}")
