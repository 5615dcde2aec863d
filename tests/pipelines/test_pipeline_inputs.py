"""Property-based: whatever a user passes, the pipeline returns valid finite images or raises
ValueError/TypeError naming an argument that was wrong, and only when one was."""

import math
import re
from collections import Counter

import numpy as np
import pytest
import torch
from conftest import make_tiny_pipeline
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

NUMBERS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 5),
    st.floats(-2, 6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
PROMPT_TEXT = st.text(max_size=200)  # any unicode, empty included; long ones truncate
# what the documented contract accepts, per argument
VALID = {
    "prompt": st.one_of(PROMPT_TEXT, st.lists(st.text(max_size=60), min_size=1, max_size=3)),
    "num_images_per_prompt": st.integers(1, 3),
    "guidance_scale": st.one_of(st.none(), st.floats(0, 6)),
    "temperature": st.one_of(st.none(), st.floats(0, 3)),
    "top_k": st.one_of(st.none(), st.integers(0, 40)),
    "top_p": st.one_of(st.none(), st.floats(0.01, 1.0)),
    "output_type": st.sampled_from(["pil", "np", "pt", "latent"]),
}
# anything at all, valid values included
ANYTHING = {
    "prompt": st.one_of(
        PROMPT_TEXT,
        st.lists(st.text(max_size=60), max_size=3),
        st.none(),
        st.integers(),
        st.lists(st.one_of(st.integers(), st.none()), min_size=1, max_size=2),
    ),
    "num_images_per_prompt": st.one_of(st.integers(-2, 3), NUMBERS),
    "guidance_scale": NUMBERS,
    "temperature": NUMBERS,
    "top_k": st.one_of(st.integers(-3, 40), NUMBERS),
    "top_p": st.one_of(st.floats(-0.5, 1.5), NUMBERS),
    "output_type": st.sampled_from(["pil", "np", "pt", "latents", "PIL", None]),
}


@st.composite
def pipeline_arguments(draw) -> dict:
    """Valid values for every argument but at most one, which may be anything: most examples
    reach generation, and a rejection has one argument to blame."""
    anything = draw(st.sampled_from([None] * 10 + sorted(VALID)))
    return {name: draw(ANYTHING[name] if name == anything else VALID[name]) for name in VALID}


def is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def invalid_arguments(args: dict) -> set[str]:
    """The arguments that the documented contract rejects."""
    bad = set()
    prompt = args["prompt"]
    if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt
                                         and all(isinstance(p, str) for p in prompt))):  # fmt: skip
        bad.add("prompt")
    n = args["num_images_per_prompt"]
    if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        bad.add("num_images_per_prompt")
    scale = args["guidance_scale"]
    if scale is not None and not (is_number(scale) and 0 <= scale <= 1000):
        bad.add("guidance_scale")
    temperature = args["temperature"]
    if temperature is not None and not (is_number(temperature) and temperature >= 0):
        bad.add("temperature")
    top_k = args["top_k"]
    if top_k is not None and not (
        isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 0
    ):
        bad.add("top_k")
    top_p = args["top_p"]
    if top_p is not None and not (is_number(top_p) and 0 < top_p <= 1):
        bad.add("top_p")
    if args["output_type"] not in ("pil", "np", "pt", "latent"):
        bad.add("output_type")
    return bad


def names_argument(message: str, name: str) -> bool:
    """``name`` as a whole word ("prompt" is not named by "num_images_per_prompt")."""
    return re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", message) is not None


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline()


OUTCOMES = Counter()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=pipeline_arguments(), seed=st.integers(0, 2**63 - 1))
def check_any_input(pipe, args, seed):
    bad = invalid_arguments(args)
    try:
        out = pipe(**args, generator=torch.Generator().manual_seed(seed))
    except (ValueError, TypeError) as err:
        OUTCOMES["raised"] += 1
        event("raised")
        assert bad, f"valid arguments {args} raised {err!r}"
        assert any(names_argument(str(err), name) for name in bad), (
            f"{err!r} names none of {sorted(bad)}"
        )
        return
    assert not bad, f"{sorted(bad)} accepted: {args}"
    OUTCOMES["generated"] += 1
    event("generated")
    prompts = [args["prompt"]] if isinstance(args["prompt"], str) else args["prompt"]
    expected = len(prompts) * args["num_images_per_prompt"]
    images = out.images
    if args["output_type"] == "pil":
        assert len(images) == expected
        assert all(im.size == (16, 16) and im.mode == "RGB" for im in images)
        return
    if args["output_type"] == "latent":  # the (B, N) codes, before the decoder
        assert images.shape == (expected, 64) and images.dtype == torch.long
        assert 0 <= images.min() and images.max() < pipe.vq.codebook_size
        return
    array = images.numpy() if args["output_type"] == "pt" else images
    assert len(array) == expected
    assert np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1


def test_any_input_gives_valid_images_or_a_named_error(pipe):
    OUTCOMES.clear()
    check_any_input(pipe)
    total = sum(OUTCOMES.values())
    assert OUTCOMES["generated"] > total / 2, f"most examples must reach generation: {OUTCOMES}"
    assert OUTCOMES["raised"] > 0, f"some examples must be rejected: {OUTCOMES}"


def test_error_names_are_matched_as_whole_words():
    assert names_argument("prompt must be a str, got int", "prompt")
    assert not names_argument("num_images_per_prompt must be >= 1, got 0", "prompt")
    assert names_argument("num_images_per_prompt must be >= 1, got 0", "num_images_per_prompt")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prompt=st.one_of(PROMPT_TEXT, st.text(min_size=500, max_size=2000)),
    num_images_per_prompt=st.integers(1, 3),
    guidance_scale=st.floats(0, 8),
    temperature=st.floats(0, 3),
    top_k=st.integers(0, 64),
    top_p=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**63 - 1),
)
def test_valid_inputs_always_generate_finite_images(pipe, seed, **args):
    out = pipe(**args, output_type="np", generator=torch.Generator().manual_seed(seed))
    assert out.images.shape == (args["num_images_per_prompt"], 16, 16, 3)
    assert np.isfinite(out.images).all()
    assert out.images.min() >= 0 and out.images.max() <= 1
