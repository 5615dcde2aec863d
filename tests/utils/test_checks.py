"""The shared argument checks: one test and one message, raised as the caller's error type."""

import math

import pytest

from mmgen.utils.checks import check_float, check_int
from mmgen.utils.config import ConfigError


def test_an_int_at_or_above_the_minimum_passes_through():
    assert check_int("width", 3) == 3
    assert check_int("cutoff", 0, minimum=0) == 0


@pytest.mark.parametrize("value", [0, -2, True, 2.0, "2", None])
def test_anything_else_is_an_error_naming_the_key(value):
    with pytest.raises(ValueError, match=r"^width must be an int >= 1, got "):
        check_int("width", value)


def test_the_caller_chooses_the_error_type():
    with pytest.raises(ConfigError, match=r"order.window must be an int >= 1, got 0"):
        check_int("order.window", 0, error=ConfigError)
    with pytest.raises(ConfigError, match=r"kl_weight must be a finite number, got nan"):
        check_float("kl_weight", math.nan, error=ConfigError)


def test_a_finite_number_comes_back_as_a_float():
    assert check_float("beta", 1) == 1.0 and isinstance(check_float("beta", 1), float)
    for value in (math.inf, True, "0.5", None):
        with pytest.raises(ValueError, match="beta must be a finite number"):
            check_float("beta", value)
