"""Argument checks shared by configs, plug-ins and pipelines: one test and one message for
"an int >= n" and "a finite number", raised as the caller's error type (``ValueError`` for
arguments, ``ConfigError`` for recipe keys)."""

from __future__ import annotations

import math


def check_int(
    name: str, value: object, minimum: int = 1, error: type[Exception] = ValueError
) -> int:
    """``value`` if it is an int >= ``minimum`` (a bool is not), else ``error`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise error(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def check_float(name: str, value: object, error: type[Exception] = ValueError) -> float:
    """``value`` as a float if it is a finite int or float (a bool is not), else ``error``
    naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise error(f"{name} must be a finite number, got {value!r}")
    return float(value)
