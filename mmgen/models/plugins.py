"""Building input adapters and heads from their config dicts (``{"kind": ..., **options}``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mmgen.utils.config import ConfigError


def build_plugin(spec: dict[str, Any], dim: int, known: dict[str, str], what: str) -> nn.Module:
    """``known[kind](dim, **options)``, or a ``module:ClassName`` kind from outside mmgen.

    Raises:
        ConfigError: naming ``what.kind`` or the bad option.
    """
    from mmgen.registry import resolve_class

    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{what} must be a mapping with a 'kind', got {spec!r}")
    options = dict(spec)
    kind = options.pop("kind")
    target = known.get(kind, kind)
    if ":" not in str(target):
        raise ConfigError(f"{what}.kind: unknown {kind!r}; known: {sorted(known)}")
    try:
        cls = resolve_class(target, what=f"{what}.kind")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    try:
        return cls(dim, **options)
    except TypeError as err:
        raise ConfigError(f"{what} ({kind}): {err}") from None
