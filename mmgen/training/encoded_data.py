"""Encoded training data, computed once and never stale.

A generation run trains on its tokenizer's codes of the data set's images. Encoding (and, for
``shapes``, rendering) costs minutes at the sizes recipes use, so the codes and the conditions
(prompts or class labels) are kept in a cache folder shared between runs, under a key made of
everything they depend on: the tokenizer's weights and config, the data spec (and, for an image
folder, its file list and metadata), and mmgen's version. A changed tokenizer or data spec is a
new key, so it misses and encodes again; a hit skips rendering and encoding both.

The folder is ``cache_dir`` of the recipe, else ``$MMGEN_CACHE``, else
``$XDG_CACHE_HOME/mmgen`` (``~/.cache/mmgen``); entries live in its ``encoded/`` subfolder, one
folder per key with ``codes.safetensors``, ``conditions.json`` and a readable ``spec.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from mmgen.utils.config import to_dict

CODES = "codes.safetensors"
CONDITIONS = "conditions.json"
SPEC = "spec.json"


def default_cache_dir() -> Path:
    """``$MMGEN_CACHE``, else ``$XDG_CACHE_HOME/mmgen``, else ``~/.cache/mmgen``."""
    if os.environ.get("MMGEN_CACHE"):
        return Path(os.environ["MMGEN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mmgen"


def module_digest(module: nn.Module) -> str:
    """sha256 of a module's class, config and every tensor of its state dict (names, dtypes,
    shapes and bytes): equal digests mean the same encoder."""
    digest = hashlib.sha256(type(module).__qualname__.encode())
    config = getattr(module, "config", None)
    if config is not None:
        digest.update(json.dumps(to_dict(config), sort_keys=True, default=str).encode())
    for name, tensor in sorted(module.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().flatten()
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def data_spec(data) -> dict:
    """What a data set's images (or clips) and conditions depend on (a ``DataConfig``). A media
    folder adds a fingerprint of its metadata.jsonl and of every file's name, size and mtime."""
    import mmgen

    spec = {"name": data.name, "resolution": data.resolution, "mmgen": mmgen.__version__}
    if data.name in ("moving_shapes", "videofolder"):
        spec.update(num_frames=data.num_frames)
    if data.two_object_weight != 1:  # only when set: the even split keeps its existing keys
        spec.update(two_object_weight=data.two_object_weight)
    if data.family_weights is not None:  # only when set, as above
        spec.update(family_weights=dict(sorted(data.family_weights.items())))
    if data.near_miss:  # only when set, as above
        spec.update(near_miss=True)
    if data.name in ("tones", "audiofolder"):
        spec.update(seconds=data.seconds)
    if data.name in ("shapes", "moving_shapes", "tones"):
        spec.update(num_samples=data.num_samples, seed=data.seed)
    elif data.name in ("imagefolder", "videofolder", "audiofolder"):
        folder = Path(data.path).resolve()
        files = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            stat = path.stat()
            files.update(f"{path.relative_to(folder)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        spec.update(path=str(folder), strict=data.strict, files=files.hexdigest())
    return spec


class EncodedDataCache:
    """Codes and conditions of one (tokenizer, data spec) pair in ``cache_dir/encoded/<key>``.

    Args:
        cache_dir: the cache folder (:func:`default_cache_dir` when None).
        tokenizer: the image tokenizer whose codes are cached.
        data: the run's ``DataConfig``.
    """

    def __init__(self, cache_dir: str | Path | None, tokenizer: nn.Module, data):
        self.spec = {"tokenizer": module_digest(tokenizer), "data": data_spec(data)}
        key = hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()[:24]
        root = Path(cache_dir) if cache_dir else default_cache_dir()
        self.folder = root / "encoded" / f"{data.name}-{key}"

    def load(self) -> tuple[torch.Tensor, list] | None:
        """(codes, conditions) on a hit, None on a miss. An entry that fails to read (a
        crash mid-write elsewhere) counts as a miss and is rewritten."""
        from mmgen.utils.serialization import CheckpointError, load_state_dict, read_json

        if not (self.folder / CODES).is_file():
            return None
        try:
            codes = load_state_dict(self.folder / CODES)["codes"]
            conditions = read_json(self.folder / CONDITIONS)
        except (CheckpointError, KeyError, ValueError, OSError):
            return None
        if len(conditions) != len(codes):
            return None
        return codes, conditions

    def save(self, codes: torch.Tensor, conditions: list) -> None:
        """Write the entry; the codes file is written last (each file atomically), so a
        reader never sees codes without their conditions."""
        from mmgen.utils.serialization import save_state_dict, write_json

        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(self.folder / SPEC, self.spec)
        write_json(self.folder / CONDITIONS, list(conditions))
        save_state_dict({"codes": codes}, self.folder / CODES)
