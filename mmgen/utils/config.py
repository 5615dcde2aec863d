"""Config is data: typed dataclasses built from plain dicts, unknown keys rejected by name."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict does not match the dataclass it describes."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert YAML/JSON values to the annotated type where that is unambiguous."""
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation) and isinstance(value, dict):
        return from_dict(annotation, value, where=where)
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(annotation)
        inner = args[0] if args else Any
        return tuple(_coerce(v, inner, where) for v in value)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is type(None) and value is None:
                return None
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return from_dict(arg, value, where=where)
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; an unknown or missing key raises ConfigError.

    Args:
        cls: the dataclass type to build.
        data: plain dict (from YAML or JSON); None means empty.
        where: dotted section name used in error messages (e.g. ``"training"``).
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"section '{where or cls.__name__}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        section = f"section '{where}'" if where else cls.__name__
        raise ConfigError(
            f"unknown config key(s) {unknown} in {section}; known keys: {sorted(fields)}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        sub = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints.get(name, Any), sub)
    try:
        return cls(**kwargs)
    except TypeError as err:  # missing required fields
        raise ConfigError(f"{where or cls.__name__}: {err}") from None


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass -> plain dict with lists instead of tuples (JSON/YAML friendly)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(v) for v in value]
        return value

    return convert(config)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file into a dict, with errors that name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return data
