"""Property-based: whatever a user passes, the pipeline returns valid finite images or raises
ValueError/TypeError naming an argument that was wrong, and only when one was."""

import math

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
PROMPTS = st.one_of(
    PROMPT_TEXT,
    st.lists(st.text(max_size=60), max_size=3),
    st.none(),
    st.integers(),
    st.lists(st.one_of(st.integers(), st.none()), min_size=1, max_size=2),
)


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
    for name in ("guidance_scale", "temperature"):
        value = args[name]
        if value is not None and not (is_number(value) and value >= 0):
            bad.add(name)
    top_k = args["top_k"]
    if top_k is not None and not (
        isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 0
    ):
        bad.add("top_k")
    top_p = args["top_p"]
    if top_p is not None and not (is_number(top_p) and 0 < top_p <= 1):
        bad.add("top_p")
    if args["output_type"] not in ("pil", "np", "pt"):
        bad.add("output_type")
    return bad


@pytest.fixture(scope="module")
def pipe():
    return make_tiny_pipeline()


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    prompt=PROMPTS,
    num_images_per_prompt=st.one_of(st.integers(-2, 3), NUMBERS),
    guidance_scale=NUMBERS,
    temperature=NUMBERS,
    top_k=st.one_of(st.integers(-3, 40), NUMBERS),
    top_p=st.one_of(st.floats(-0.5, 1.5), NUMBERS),
    seed=st.integers(0, 2**63 - 1),
    output_type=st.sampled_from(["pil", "np", "pt", "latent", None]),
)
def test_any_input_gives_valid_images_or_a_named_error(pipe, seed, **args):
    bad = invalid_arguments(args)
    try:
        out = pipe(**args, generator=torch.Generator().manual_seed(seed))
    except (ValueError, TypeError) as err:
        event("raised")
        assert bad, f"valid arguments {args} raised {err!r}"
        assert any(name in str(err) for name in bad), f"{err!r} names none of {sorted(bad)}"
        return
    assert not bad, f"{sorted(bad)} accepted: {args}"
    event("generated")
    prompts = [args["prompt"]] if isinstance(args["prompt"], str) else args["prompt"]
    expected = len(prompts) * args["num_images_per_prompt"]
    images = out.images
    if args["output_type"] == "pil":
        assert len(images) == expected
        assert all(im.size == (16, 16) and im.mode == "RGB" for im in images)
        return
    array = images.numpy() if args["output_type"] == "pt" else images
    assert len(array) == expected
    assert np.isfinite(array).all() and array.min() >= 0 and array.max() <= 1


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
