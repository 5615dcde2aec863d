"""Pipeline output dataclasses and image conversions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

OUTPUT_TYPES = ("pil", "np", "pt")


@dataclass
class ImagePipelineOutput:
    """Output of image pipelines.

    Attributes:
        images: a list of PIL images (``output_type="pil"``), a float numpy array (B, H, W, 3)
            in [0, 1] (``"np"``) or a float tensor (B, 3, H, W) in [0, 1] (``"pt"``).
    """

    images: Any


def to_output_type(images: torch.Tensor, output_type: str) -> Any:
    """Convert (B, C, H, W) images in [-1, 1] (C = 3, or 1 for grey) to the output type."""
    images = ((images.float().clamp(-1, 1) + 1) / 2).cpu()  # (B, 3, H, W) in [0, 1]
    if output_type == "pt":
        return images
    array = images.permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    if output_type == "np":
        return array
    from PIL import Image

    pixels = np.round(array * 255).astype(np.uint8)
    if pixels.shape[-1] == 1:  # grey images become mode "L"
        return [Image.fromarray(p[..., 0]) for p in pixels]
    return [Image.fromarray(p) for p in pixels]


def image_to_tensor(image) -> torch.Tensor:
    """PIL image or uint8 (3, H, W) tensor -> float (3, H, W) in [-1, 1]."""
    if not isinstance(image, torch.Tensor):
        image = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
    return image.float() / 127.5 - 1.0
