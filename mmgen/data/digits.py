"""Real handwritten digits for the built-in ``digits`` class-to-image task.

The numbers here are the contract in ``DATASETS.md`` ("digits (class-to-image, real data)"):
scikit-learn's bundled 1,797 handwritten digits (8 x 8, 17 grey levels 0..16, classes 0-9),
scaled to 0..255 and upsampled to 32 x 32 with bilinear interpolation, with a fixed, seeded 20%
held-out split for evaluation. Nothing is downloaded: the data ships inside scikit-learn.

The split is stratified: each class's images are permuted with one ``torch.Generator`` seeded with
``SPLIT_SEED``, and the first ``round(HELD_OUT_FRACTION * n_class)`` of each go to ``"test"``, so
every class appears in both splits in the same proportion.

Examples:
    >>> from mmgen.data.digits import load_digits_split
    >>> images, labels = load_digits_split("test")
    >>> tuple(images.shape[1:]), images.dtype, labels.dtype
    ((1, 32, 32), torch.uint8, torch.int64)
"""

from __future__ import annotations

from functools import cache

import torch
import torch.nn.functional as F

NUM_CLASSES = 10
IMAGE_SIZE = 32
HELD_OUT_FRACTION = 0.2
SPLIT_SEED = 0
SPLITS = ("train", "test")

_SOURCE_MAX = 16.0  # sklearn's digits use grey levels 0..16


@cache
def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as uint8 ``(N, 1, 32, 32)`` images and int64 ``(N,)`` labels."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn is only needed for this task

    bunch = load_digits()
    images_N188 = torch.from_numpy(bunch.images).to(torch.float32).unsqueeze(1) * (
        255.0 / _SOURCE_MAX
    )  # (N, 1, 8, 8) in 0..255
    images_N1HW = F.interpolate(
        images_N188, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )
    images_N1HW = images_N1HW.round().clamp(0, 255).to(torch.uint8)
    labels_N = torch.from_numpy(bunch.target).to(torch.int64)
    return images_N1HW, labels_N


@cache
def _test_mask() -> torch.Tensor:
    """Bool ``(N,)`` mask of the held-out images: a seeded, per-class (stratified) permutation."""
    _, labels_N = _all_digits()
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    mask_N = torch.zeros(labels_N.shape[0], dtype=torch.bool)
    for c in range(NUM_CLASSES):
        members = (labels_N == c).nonzero().squeeze(1)
        order = torch.randperm(members.numel(), generator=generator)
        num_test = round(HELD_OUT_FRACTION * members.numel())
        mask_N[members[order[:num_test]]] = True
    return mask_N


@cache
def load_digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Loads one split of the digits data.

    The result is cached in-process and shared between callers: do not modify it in place.

    Args:
        split: ``"train"`` (about 80%, 1,438 images) or ``"test"`` (the held-out 20%, 359 images).

    Returns:
        ``(images, labels)``: uint8 ``(N, 1, 32, 32)`` images in 0..255 (ink is bright, background
        0) and int64 ``(N,)`` labels in 0..9, in the order of scikit-learn's data.

    Raises:
        ValueError: If ``split`` is not ``"train"`` or ``"test"``.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown digits split {split!r}; expected one of {SPLITS}")
    images_N1HW, labels_N = _all_digits()
    mask_N = _test_mask() if split == "test" else ~_test_mask()
    return images_N1HW[mask_N], labels_N[mask_N]


class DigitsDataset(torch.utils.data.Dataset):
    """Map-style dataset over one split of the digits data.

    Args:
        split: ``"train"`` or ``"test"``; see :func:`load_digits_split`.

    Examples:
        >>> item = DigitsDataset("train")[0]
        >>> tuple(item["image"].shape), item["label"]
        ((1, 32, 32), 0)
    """

    def __init__(self, split: str = "train") -> None:
        self.split = split
        self.images, self.labels = load_digits_split(split)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, index: int) -> dict:
        """Returns ``{"image": uint8 (1, 32, 32), "label": int}``."""
        return {"image": self.images[index], "label": int(self.labels[index])}
