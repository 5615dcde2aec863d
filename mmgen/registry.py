"""Component classes by name: what ``model_index.json`` and ``config.json`` files refer to.

A component is named by a known short name (``"VQModel"``), by ``"package.module:ClassName"``,
or, as diffusers writes ``model_index.json``, by a ``[module, class_name]`` pair. A class outside
mmgen (a user's tokenizer, order or head) is found by its module path, so adding one needs no
edit inside the package.
"""

from __future__ import annotations

import importlib
from typing import Any

#: short name -> module, for classes that ship with mmgen
KNOWN_CLASSES: dict[str, str] = {
    "ARTransformer": "mmgen.models.transformer",
    "VQModel": "mmgen.tokenizers.vq",
    "MultiScaleVQModel": "mmgen.tokenizers.multiscale_vq",
    "KLModel": "mmgen.tokenizers.kl",
    "FrequencyVQModel": "mmgen.tokenizers.frequency_vq",
    "WaveformAutoencoder": "mmgen.tokenizers.waveform",
    "TextToImagePipeline": "mmgen.pipelines.text_to_image",
    "ClassToImagePipeline": "mmgen.pipelines.class_to_image",
    "TextToVideoPipeline": "mmgen.pipelines.text_to_video",
    "TextToAudioPipeline": "mmgen.pipelines.text_to_audio",
    "ByteTokenizer": "mmgen.tokenizers.text",
    "TrainedTextTokenizer": "mmgen.tokenizers.trained_text",
    "ClassLabelTokenizer": "mmgen.tokenizers.label",
}


def resolve_class(spec: Any, *, what: str = "class") -> type:
    """The class a spec names (see the module docstring).

    Raises:
        ValueError: naming the spec when it is malformed, its module does not import or the
            module has no such class.
    """
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        module_name, name = spec
    elif isinstance(spec, str) and ":" in spec:
        module_name, name = spec.split(":", 1)
    elif isinstance(spec, str) and spec in KNOWN_CLASSES:
        module_name, name = KNOWN_CLASSES[spec], spec
    else:
        raise ValueError(
            f"unknown {what} {spec!r}: give one of {sorted(KNOWN_CLASSES)} or 'module:ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{what} {spec!r}: cannot import {module_name!r} ({err})") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ValueError(f"{what} {spec!r}: module {module_name!r} has no class {name!r}")
    return cls


def class_spec(cls: type) -> list[str]:
    """``[module, class_name]`` of ``cls`` (diffusers' model_index.json form)."""
    name = cls.__name__
    if KNOWN_CLASSES.get(name) == cls.__module__:
        return [cls.__module__, name]
    return [cls.__module__, cls.__qualname__]


def resolve_named(name: Any, known: dict[str, str], key: str, noun: str = "") -> type:
    """The class a config value names: a key of ``known`` (short name -> ``module:Class``) or
    ``module:Class`` itself (a plug-in outside mmgen); ``noun`` words the error.

    Raises:
        ConfigError: naming ``key`` when the name is unknown or does not import.
    """
    from mmgen.utils.config import ConfigError

    target = known.get(name, name) if isinstance(name, str) else name
    if not isinstance(target, str) or ":" not in target:
        raise ConfigError(f"{key}: unknown {noun}{name!r}; known: {sorted(known)}")
    try:
        return resolve_class(target, what=key)
    except ValueError as err:
        raise ConfigError(str(err)) from None
