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
        image = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)
    return image.float() / 127.5 - 1.0


@dataclass
class VideoPipelineOutput:
    """Output of video pipelines.

    Attributes:
        frames: one list of PIL frames per video (``output_type="pil"``; what
            ``diffusers.utils.export_to_video`` takes), a float numpy array (B, F, H, W, 3) in
            [0, 1] (``"np"``), a float tensor (B, F, 3, H, W) in [0, 1] (``"pt"``), or the
            (B, F * h * w, C) frame latents (``"latent"``).
    """

    frames: Any


def to_video_output_type(videos: torch.Tensor, output_type: str) -> Any:
    """Convert (B, F, 3, H, W) videos in [-1, 1] to the output type."""
    B, F = videos.shape[:2]
    flat = to_output_type(videos.flatten(0, 1), output_type)  # B * F frames
    if output_type == "pil":
        return [flat[b * F : (b + 1) * F] for b in range(B)]
    return flat.reshape(B, F, *flat.shape[1:])


@dataclass
class AudioPipelineOutput:
    """Output of audio pipelines.

    Attributes:
        audios: one 1-D float32 numpy array in [-1, 1] per clip (``output_type="np"``), a
            (B, S) float tensor (``"pt"``), or the (B, N, C) latents (``"latent"``).
        sample_rate: samples per second.
    """

    audios: Any
    sample_rate: int
