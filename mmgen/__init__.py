"""mmgen: one group-causal autoregressive engine for images, video and audio.

Heavy dependencies (diffusers, accelerate, timm, imageio) are imported only where they are
used; public names below load on first access.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "TextToImagePipeline": "mmgen.pipelines.text_to_image",
    "ClassToImagePipeline": "mmgen.pipelines.class_to_image",
    "TextToVideoPipeline": "mmgen.pipelines.text_to_video",
    "TextToAudioPipeline": "mmgen.pipelines.text_to_audio",
    "AudioPipelineOutput": "mmgen.pipelines.outputs",
    "ImagePipelineOutput": "mmgen.pipelines.outputs",
    "VideoPipelineOutput": "mmgen.pipelines.outputs",
    "ARTransformer": "mmgen.models.transformer",
    "TransformerConfig": "mmgen.models.transformer",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmgen' has no attribute {name!r}")
