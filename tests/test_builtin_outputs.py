"""The shipped models' images, pinned: a refactor of the engine must leave what ``shapes-t2i``,
``shapes-t2i-shuffle`` and ``digits-c2i`` draw for a fixed seed bit-identical (sha256 of the
8-bit pixels of PIL output).

When a change is meant to alter them (new weights, a sampling fix), regenerate the digests with
``python tests/test_builtin_outputs.py`` and say why in the commit.
"""

import hashlib

import numpy as np
import pytest
import torch

from mmgen import ClassToImagePipeline, TextToImagePipeline

PROMPTS = ["a red circle", "two blue squares to the left of a green triangle"]
CASES = {
    # name -> (pipeline class, model, condition, keyword arguments)
    "shapes-t2i default sampling": (TextToImagePipeline, "shapes-t2i", PROMPTS,
                                    dict(num_images_per_prompt=2)),
    "shapes-t2i guided top-k": (TextToImagePipeline, "shapes-t2i", PROMPTS,
                                dict(guidance_scale=3.0, temperature=1.0, top_k=50,
                                     guidance_schedule="linear")),
    "shapes-t2i greedy": (TextToImagePipeline, "shapes-t2i", PROMPTS[:1],
                          dict(temperature=0.0)),
    "shapes-t2i-shuffle default sampling": (TextToImagePipeline, "shapes-t2i-shuffle", PROMPTS,
                                            dict(num_images_per_prompt=2)),
    "digits-c2i default sampling": (ClassToImagePipeline, "digits-c2i", list(range(10)), {}),
    "digits-c2i guided": (ClassToImagePipeline, "digits-c2i", [3, 8],
                          dict(num_images_per_class=2, guidance_scale=2.0)),
}  # fmt: skip
DIGESTS = {
    "shapes-t2i default sampling": "fd7a92f9eeab9105bf81d89b7dad2ae9c1f4f6cc45fad3e7a7db373eb49dfa40",  # noqa: E501
    "shapes-t2i guided top-k": "cf07099403b21a612c664990d02900d3c18acd778d8229481a131993a0a990d6",
    "shapes-t2i greedy": "efc2718edd431f579ca1a15974e3d5915c2aab65aefcc3a297f57f1204c8e179",
    "shapes-t2i-shuffle default sampling": "cbbe7917cd49997c49132be69ebb29659cacc31b7981f1989de550db63600165",  # noqa: E501
    "digits-c2i default sampling": "cdd4fa20ca77fd89b0bd887fc54e6abd617f5c3dbeb79a4f541f7641c9d65c41",  # noqa: E501
    "digits-c2i guided": "a8d5489e90bcbfd08cbf8d5cd9146738c2e5e9b365c6abc0b384309429718f2b",
}


def images_digest(name: str) -> str:
    cls, model, condition, kwargs = CASES[name]
    pipe = cls.from_pretrained(model)
    images = pipe(condition, generator=torch.Generator().manual_seed(0), **kwargs).images
    digest = hashlib.sha256()
    for image in images:
        digest.update(np.asarray(image).tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_builtin_images_are_unchanged(name):
    assert images_digest(name) == DIGESTS[name]


if __name__ == "__main__":
    for case in CASES:
        print(f"    {case!r}: {images_digest(case)!r},")
