"""Verifier for the built-in ``digits`` class-to-image task.

Implements the verifier in ``DATASETS.md`` ("digits (class-to-image, real data)"): a small CNN
trained on the training split only classifies generated images; its accuracy on them is reported
next to its accuracy on the held-out real split, and the Frechet distance between generated and
held-out images is computed on its penultimate features. The distance between the training and
held-out real splits is reported as a floor: what real data scores against itself.

A model that reproduces its 1,438 training digits scores near that floor too, so the report also
counts near-copies: generated digits closer (pixel L2 at the data's 8 x 8 source resolution) to
their nearest training digit than all but ``COPY_PERCENTILE`` % of held-out digits are.

Everything is deterministic given ``seed`` and cached in-process, so repeated evaluations pay for
training once.

Examples:
    >>> from mmgen.data.digits import load_digits_split
    >>> images, labels = load_digits_split("test")
    >>> report = evaluate_digits(images, labels)
    >>> report["accuracy"] == report["real_accuracy"]
    True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmgen.data.digits import IMAGE_SIZE, NUM_CLASSES, load_digits_split

NUM_FEATURES = 64
DEFAULT_EPOCHS = 12
BATCH_SIZE = 64
LEARNING_RATE = 3e-3
MAX_SHIFT = 2  # training augmentation: random translation of up to this many pixels per axis
_EVAL_BATCH = 512
COPY_PERCENTILE = 5  # a digit nearer to the training split than all but 5% of held-out ones: a copy
SOURCE_SIZE = 8  # scikit-learn's digits are 8 x 8; the data upsamples them to IMAGE_SIZE


class DigitsClassifier(nn.Module):
    """Small CNN on ``(B, 1, 32, 32)`` float images in ``[-1, 1]``.

    Three stride-2 convolutions (32 -> 16 -> 8 -> 4), a hidden layer of ``num_features`` units
    (the penultimate features used for the Frechet distance) and a linear head.

    Args:
        num_features: Width ``F`` of the penultimate features.
    """

    def __init__(self, num_features: int = NUM_FEATURES) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, stride=2, padding=1),  # (B, 32, 16, 16)
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1),  # (B, 64, 8, 8)
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=2, padding=1),  # (B, 64, 4, 4)
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, num_features),
            nn.ReLU(),
        )
        self.head = nn.Linear(num_features, NUM_CLASSES)

    def features(self, x_B1HW: torch.Tensor) -> torch.Tensor:
        """Returns the ``(B, F)`` penultimate features of ``(B, 1, 32, 32)`` images in [-1, 1]."""
        return self.body(x_B1HW)

    def forward(self, x_B1HW: torch.Tensor) -> torch.Tensor:
        """Returns ``(B, 10)`` class logits of ``(B, 1, 32, 32)`` images in [-1, 1]."""
        return self.head(self.features(x_B1HW))


def _to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images in 0..255 -> float32 in [-1, 1]; float images pass through as float32."""
    images = torch.as_tensor(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(
            f"expected images of shape (N, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), "
            f"got {tuple(images.shape)}"
        )
    if images.dtype == torch.uint8:
        return images.to(torch.float32) / 127.5 - 1.0
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 or floating-point images, got {images.dtype}")
    return images.to(torch.float32)


def _random_shift(x_B1HW: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Translates each image by up to ``MAX_SHIFT`` pixels per axis, filling with background."""
    b, _, h, w = x_B1HW.shape
    padded = nn.functional.pad(x_B1HW, (MAX_SHIFT,) * 4, value=-1.0)  # (B, 1, h+2s, w+2s)
    dy_B, dx_B = torch.randint(0, 2 * MAX_SHIFT + 1, (2, b), generator=generator)
    rows_Bh = dy_B[:, None] + torch.arange(h)
    cols_Bw = dx_B[:, None] + torch.arange(w)
    batch_B = torch.arange(b)[:, None, None]
    return padded[batch_B, 0, rows_Bh[:, :, None], cols_Bw[:, None, :]].unsqueeze(1)


@cache
def _train_cached(seed: int, epochs: int, device: str) -> DigitsClassifier:
    images_N1HW, labels_N = load_digits_split("train")
    x_N1HW = _to_float(images_N1HW)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        classifier = DigitsClassifier()
    classifier.to(device).train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=LEARNING_RATE)
    num_steps = epochs * -(-x_N1HW.shape[0] // BATCH_SIZE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=LEARNING_RATE, total_steps=num_steps
    )
    for _ in range(epochs):
        order = torch.randperm(x_N1HW.shape[0], generator=generator)
        for start in range(0, order.numel(), BATCH_SIZE):
            index = order[start : start + BATCH_SIZE]
            x_B1HW = _random_shift(x_N1HW[index], generator).to(device)
            loss = nn.functional.cross_entropy(classifier(x_B1HW), labels_N[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    classifier.eval().requires_grad_(False)
    return classifier


def train_classifier(
    *, seed: int = 0, epochs: int = DEFAULT_EPOCHS, device: str | torch.device = "cpu"
) -> DigitsClassifier:
    """Trains the verifier's classifier on the training split only.

    Deterministic on CPU given ``seed`` (initialisation, shuffling and augmentation all draw from
    it) and cached in-process per ``(seed, epochs, device)``; the returned module is shared, in
    eval mode and frozen. About 2.5 s on one CPU thread; 0.989-0.997 held-out accuracy (seeds 0-5).

    Args:
        seed: Seed for initialisation, shuffling and random-shift augmentation.
        epochs: Passes over the 1,438 training images.
        device: Device to train on and to keep the classifier on.

    Returns:
        The trained :class:`DigitsClassifier`.
    """
    with torch.enable_grad():  # callers may be inside no_grad (validation, eval)
        return _train_cached(int(seed), int(epochs), str(torch.device(device)))


VERIFIER_WEIGHTS = Path(__file__).resolve().parents[1] / "builtin" / "digits-verifier.safetensors"


@cache
def _shipped_verifier(device: str) -> DigitsClassifier:
    from mmgen.utils.serialization import load_state_dict, load_weights_into

    classifier = DigitsClassifier()
    load_weights_into(classifier, load_state_dict(VERIFIER_WEIGHTS), source=VERIFIER_WEIGHTS)
    return classifier.to(device).eval().requires_grad_(False)


def verifier_classifier(*, seed: int = 0, device: str | torch.device = "cpu") -> DigitsClassifier:
    """The classifier that scores digits: for ``seed`` 0 the frozen copy shipped in the package
    (``train_classifier(seed=0)`` trained once, on one CPU thread, by
    ``tools/freeze_digits_verifier.py``), so scores do not depend on this machine's thread
    count; other seeds are trained here."""
    device = str(torch.device(device))
    if seed == 0 and VERIFIER_WEIGHTS.is_file():
        return _shipped_verifier(device)
    return train_classifier(seed=seed, device=device)


@torch.no_grad()
def _features_and_predictions(
    classifier: DigitsClassifier, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns float64 ``(N, F)`` features and int64 ``(N,)`` predictions, on the CPU."""
    x_N1HW = _to_float(images)
    device = next(classifier.parameters()).device
    feats, preds = [], []
    for start in range(0, x_N1HW.shape[0], _EVAL_BATCH):
        feat_BF = classifier.features(x_N1HW[start : start + _EVAL_BATCH].to(device))
        feats.append(feat_BF.double().cpu())
        preds.append(classifier.head(feat_BF).argmax(dim=-1).cpu())
    return torch.cat(feats), torch.cat(preds)


def classifier_accuracy(
    classifier: DigitsClassifier, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Fraction of images the classifier labels correctly.

    Args:
        classifier: A trained :class:`DigitsClassifier`.
        images: ``(N, 1, 32, 32)`` uint8 in 0..255, or float in [-1, 1].
        labels: ``(N,)`` integer class labels.

    Returns:
        Accuracy in [0, 1].
    """
    _, preds_N = _features_and_predictions(classifier, images)
    labels_N = torch.as_tensor(labels).to(torch.int64).reshape(-1).cpu()
    if labels_N.shape != preds_N.shape:
        raise ValueError(f"got {preds_N.numel()} images but {labels_N.numel()} labels")
    return (preds_N == labels_N).double().mean().item()


def _mean_and_covariance(features) -> tuple[np.ndarray, np.ndarray]:
    feats_NF = np.asarray(torch.as_tensor(features).detach().cpu(), dtype=np.float64)
    if feats_NF.ndim != 2 or feats_NF.shape[0] < 2:
        raise ValueError(f"expected features of shape (N >= 2, F), got {feats_NF.shape}")
    return feats_NF.mean(axis=0), np.atleast_2d(np.cov(feats_NF, rowvar=False))


def _psd_sqrt(matrix_FF: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via its eigen-decomposition."""
    eigvals, eigvecs = np.linalg.eigh((matrix_FF + matrix_FF.T) / 2)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to two feature sets.

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with unbiased covariances, in float64.
    ``Tr (S_a S_b)^(1/2)`` is computed as ``Tr (S_a^(1/2) S_b S_a^(1/2))^(1/2)``, whose argument is
    symmetric positive semi-definite, so one eigen-decomposition each gives a real, stable result
    even for singular covariances. Tiny negative results from rounding are clamped to 0.

    Args:
        features_a: ``(N, F)`` features, N >= 2 (tensor or array).
        features_b: ``(M, F)`` features, M >= 2.

    Returns:
        The distance, >= 0.
    """
    mu_a, cov_a = _mean_and_covariance(features_a)
    mu_b, cov_b = _mean_and_covariance(features_b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"feature widths differ: {mu_a.shape[0]} vs {mu_b.shape[0]}")
    sqrt_a = _psd_sqrt(cov_a)
    middle = sqrt_a @ cov_b @ sqrt_a
    eigvals = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = np.sqrt(np.clip(eigvals, 0.0, None)).sum()
    diff = mu_a - mu_b
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt
    return max(float(distance), 0.0)


@cache
def _real_reference(seed: int, device: str) -> tuple[torch.Tensor, float, float]:
    """Held-out features, held-out accuracy and the train-vs-held-out floor for one seed."""
    classifier = verifier_classifier(seed=seed, device=device)
    test_images, test_labels = load_digits_split("test")
    train_images, _ = load_digits_split("train")
    test_feats_NF, test_preds_N = _features_and_predictions(classifier, test_images)
    train_feats_NF, _ = _features_and_predictions(classifier, train_images)
    real_accuracy = (test_preds_N == test_labels).double().mean().item()
    return test_feats_NF, real_accuracy, frechet_distance(train_feats_NF, test_feats_NF)


def _source_pixels(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 32, 32) images -> (N, 64) pixels in [0, 1] at the 8 x 8 source resolution."""
    x_N1HW = (_to_float(images) + 1) / 2
    return nn.functional.adaptive_avg_pool2d(x_N1HW, SOURCE_SIZE).flatten(1)


def _nearest_train_distance(pixels_NP: torch.Tensor, train_MP: torch.Tensor) -> torch.Tensor:
    """(N,) L2 distance of each row of ``pixels_NP`` to its nearest training digit."""
    return torch.cat([torch.cdist(chunk, train_MP).amin(1) for chunk in pixels_NP.split(1024)])


@cache
def _copy_reference() -> tuple[torch.Tensor, float, float]:
    """Training pixels, the copy threshold (the ``COPY_PERCENTILE``-th percentile of held-out
    digits' nearest-training distances) and the held-out share under it."""
    train_MP = _source_pixels(load_digits_split("train")[0])
    held_out_N = _nearest_train_distance(_source_pixels(load_digits_split("test")[0]), train_MP)
    threshold = torch.quantile(held_out_N, COPY_PERCENTILE / 100).item()
    return train_MP, threshold, (held_out_N < threshold).double().mean().item()


def near_copy_rate(images: torch.Tensor) -> float:
    """Share of ``images`` nearer to a training digit than all but ``COPY_PERCENTILE`` % of the
    held-out digits are (pixel L2 at the 8 x 8 source resolution): about 0.05 for new digits
    drawn like the real ones, near 1 for a model that reproduces its training set."""
    train_MP, threshold, _ = _copy_reference()
    distances_N = _nearest_train_distance(_source_pixels(images), train_MP)
    return (distances_N < threshold).double().mean().item()


def evaluate_digits(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """Scores generated digits with the verifier of ``DATASETS.md``.

    Args:
        images: ``(N, 1, 32, 32)`` generated images, uint8 in 0..255 or float in [-1, 1]; N >= 2.
        labels: ``(N,)`` class each image was generated for.
        seed: Seed of the verifier classifier (see :func:`verifier_classifier`).
        device: Device to run the classifier on.

    Returns:
        ``{"accuracy": classifier accuracy on the given images, "real_accuracy": its accuracy on
        the held-out real split, "frechet_distance": FD(given images, held-out split),
        "frechet_floor": FD(train split, held-out split), "copy_rate": :func:`near_copy_rate`
        of the given images, "real_copy_rate": the same for the held-out split, "num_images":
        N}``, distances on the classifier's penultimate features. The Frechet distance is biased
        upward for small sets (the floor uses all 1,438 training images; 359 training images
        score about 3x higher), so compare sets of similar size; a model that copies its
        training digits also scores near the floor, which the copy rate shows.
    """
    device = str(torch.device(device))
    classifier = verifier_classifier(seed=seed, device=device)
    test_feats_NF, real_accuracy, floor = _real_reference(int(seed), device)
    feats_NF, preds_N = _features_and_predictions(classifier, images)
    labels_N = torch.as_tensor(labels).to(torch.int64).reshape(-1).cpu()
    if labels_N.shape != preds_N.shape:
        raise ValueError(f"got {preds_N.numel()} images but {labels_N.numel()} labels")
    return {
        "accuracy": (preds_N == labels_N).double().mean().item(),
        "real_accuracy": real_accuracy,
        "frechet_distance": frechet_distance(feats_NF, test_feats_NF),
        "frechet_floor": floor,
        "copy_rate": near_copy_rate(images),
        "real_copy_rate": _copy_reference()[2],
        "num_images": int(preds_N.numel()),
    }


def format_digits_report(report: dict) -> str:
    """Formats :func:`evaluate_digits`'s result as a small text table.

    The ``real`` column holds the classifier's held-out accuracy, the train-vs-held-out floor and
    the held-out split's near-copy rate.

    Examples:
        >>> print(format_digits_report({"accuracy": 0.9, "real_accuracy": 0.98,
        ...     "frechet_distance": 12.5, "frechet_floor": 1.25, "copy_rate": 0.5,
        ...     "real_copy_rate": 0.05, "num_images": 100}))
        digits verifier: 100 generated images
        metric               generated        real  real means
        accuracy                0.9000      0.9800  held-out split
        frechet distance       12.5000      1.2500  train vs held-out (floor)
        near-copies             0.5000      0.0500  held-out split
        the Frechet distance depends on the sample count (100 generated images here,
        1,438 train images in the floor): compare runs of the same size
    """
    rows = [
        ("accuracy", report["accuracy"], report["real_accuracy"], "held-out split"),
        (
            "frechet distance",
            report["frechet_distance"],
            report["frechet_floor"],
            "train vs held-out (floor)",
        ),
        ("near-copies", report["copy_rate"], report["real_copy_rate"], "held-out split"),
    ]
    lines = [
        f"digits verifier: {report['num_images']} generated images",
        f"{'metric':<18}{'generated':>12}{'real':>12}  real means",
    ]
    lines += [f"{name:<18}{gen:>12.4f}{real:>12.4f}  {note}" for name, gen, real, note in rows]
    lines.append(
        f"the Frechet distance depends on the sample count ({report['num_images']} generated "
        "images here,\n1,438 train images in the floor): compare runs of the same size"
    )
    return "\n".join(lines)
