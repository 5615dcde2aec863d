"""Saving and loading modules as ``config.json`` + ``model.safetensors``; never unpickles."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from mmgen.utils.config import ConfigError, from_dict, to_dict

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

M = TypeVar("M", bound=nn.Module)


class CheckpointError(RuntimeError):
    """A saved folder or weights file is missing, corrupt or does not match its config."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename: never a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None


def save_state_dict(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors as safetensors (contiguous CPU copies), atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(Path(path), save(tensors))


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file; pickle formats are refused with the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: refusing to load a pickle-based file; mmgen loads safetensors only "
            "because unpickling can run arbitrary code"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from None


def save_module(module: nn.Module, folder: str | Path) -> Path:
    """Write ``module.config`` to config.json and its weights to model.safetensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "_class_name": type(module).__name__,
        "_module": type(module).__module__,
        **to_dict(module.config),
    }
    write_json(folder / CONFIG_NAME, config)
    save_state_dict(module.state_dict(), folder / WEIGHTS_NAME)
    return folder


def load_module(cls: type[M], folder: str | Path, *, torch_dtype: torch.dtype | None = None) -> M:
    """Rebuild ``cls`` from a folder written by :func:`save_module`.

    Raises CheckpointError naming the file and the problem: missing folder or config, corrupt
    weights, missing or unexpected keys, wrong shapes.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: model folder not found")
    config_path = folder / CONFIG_NAME
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} in this folder")
    raw = read_json(config_path)
    raw.pop("_class_name", None)
    raw.pop("_module", None)
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file():
        pickles = [p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        hint = f" (found pickle files {pickles}; only safetensors are loaded)" if pickles else ""
        raise CheckpointError(f"{weights_path}: weights file not found{hint}")
    state = load_state_dict(weights_path)
    upgrade = getattr(cls, "upgrade_checkpoint", None)
    if upgrade is not None:  # a converter from an older layout, run on load
        try:
            raw, state = upgrade(raw, state)
        except KeyError as err:
            raise CheckpointError(f"{config_path}: cannot upgrade old checkpoint ({err})") from None
    try:
        config = from_dict(cls.config_class, raw, where=str(config_path))
    except (ConfigError, ValueError) as err:
        raise CheckpointError(f"{config_path}: {err}") from None
    module = cls(config)
    load_weights_into(module, state, source=weights_path)
    if torch_dtype is not None:
        module.to(torch_dtype)
    return module.eval()


def load_component(
    folder: str | Path, *, torch_dtype: torch.dtype | None = None, spec: Any = None
) -> nn.Module:
    """Load a module folder whose class is named by ``spec`` or, when None, by its config.json
    (``_module`` + ``_class_name``; folders written before ``_module`` existed give a known
    class name)."""
    from mmgen.registry import resolve_class

    folder = Path(folder)
    if spec is None:
        raw = read_json(folder / CONFIG_NAME)
        name = raw.get("_class_name")
        spec = [raw["_module"], name] if "_module" in raw else name
    try:
        cls = resolve_class(spec, what="component class")
    except ValueError as err:
        raise CheckpointError(f"{folder / CONFIG_NAME}: {err}") from None
    return load_module(cls, folder, torch_dtype=torch_dtype)


def load_matching_weights(module: nn.Module, folder: str | Path) -> dict[str, list[str]]:
    """Copy into ``module`` every tensor of ``folder/model.safetensors`` whose name and shape
    match one of the module's (fine-tuning from a related model); the rest keep their values.

    Returns ``{"copied": [...], "kept": [...], "ignored": [...]}``: the module's tensors that were
    copied, its tensors the file has no match for, and the file's tensors left unused.
    Raises :class:`CheckpointError` when the file is missing or not one tensor matches.
    """
    weights_path = Path(folder) / WEIGHTS_NAME
    if not weights_path.is_file():
        raise CheckpointError(
            f"{weights_path}: weights file not found (name a component folder, e.g. shapes-t2i/vq)"
        )
    state = load_state_dict(weights_path)
    own = module.state_dict()
    copied = sorted(k for k in own if k in state and state[k].shape == own[k].shape)
    if not copied:
        raise CheckpointError(f"{weights_path}: no tensor matches the model's names and shapes")
    with torch.no_grad():
        for key in copied:
            own[key].copy_(state[key])
    return {
        "copied": copied,
        "kept": sorted(set(own) - set(copied)),
        "ignored": sorted(set(state) - set(copied)),
    }


def load_weights_into(module: nn.Module, state: dict[str, torch.Tensor], *, source: Path) -> None:
    """Strictly copy ``state`` into ``module`` with a readable report of any mismatch."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}")
    if wrong:
        problems.append(f"wrong shapes {wrong[:8]}")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the config: " + "; ".join(problems))
    module.load_state_dict(state, strict=True)
