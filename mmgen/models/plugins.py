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
    from mmgen.registry import resolve_named

    if not isinstance(spec, dict) or "kind" not in spec:
        raise ConfigError(f"{what} must be a mapping with a 'kind', got {spec!r}")
    options = dict(spec)
    kind = options.pop("kind")
    cls = resolve_named(kind, known, f"{what}.kind")
    try:
        return cls(dim, **options)
    except TypeError as err:
        raise ConfigError(f"{what} ({kind}): {err}") from None
