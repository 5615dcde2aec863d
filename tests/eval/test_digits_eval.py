"""Tests for mmgen/eval/digits_eval.py: the classifier, the Frechet distance and the report."""

import numpy as np
import pytest
import torch

from mmgen.data.digits import load_digits_split  # noqa: E402
from mmgen.eval.digits_eval import (  # noqa: E402
    DigitsClassifier,
    classifier_accuracy,
    evaluate_digits,
    format_digits_report,
    frechet_distance,
    train_classifier,
)


def _gaussian(n: int, f: int, seed: int, *, shift: float = 0.0) -> torch.Tensor:
    return (
        torch.randn(n, f, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        + shift
    )


def test_classifier_shapes():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = DigitsClassifier()
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    assert model(x).shape == (3, 10)
    assert model.features(x).ndim == 2 and model.features(x).shape[0] == 3


def test_classifier_reaches_97_percent_on_held_out_split():
    images, labels = load_digits_split("test")
    assert classifier_accuracy(train_classifier(seed=0), images, labels) >= 0.97


def test_classifier_accepts_float_images_in_minus_one_to_one():
    images, labels = load_digits_split("test")
    classifier = train_classifier(seed=0)
    as_float = images.float() / 127.5 - 1
    assert classifier_accuracy(classifier, as_float, labels) == classifier_accuracy(
        classifier, images, labels
    )


def test_training_is_deterministic_given_seed():
    # epochs=1 keeps this cheap; train_classifier caches, so bypass the cache for the second run.
    from mmgen.eval.digits_eval import _train_cached

    first = train_classifier(seed=3, epochs=1)
    second = _train_cached.__wrapped__(3, 1, "cpu")
    assert all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values())
    )
    other = train_classifier(seed=4, epochs=1)
    assert not torch.equal(first.head.weight, other.head.weight)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = _gaussian(200, 16, 0)
    assert frechet_distance(feats, feats) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_is_symmetric():
    a, b = _gaussian(300, 8, 0), _gaussian(250, 8, 1) * 1.5
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)


def test_frechet_distance_grows_with_shift():
    a, b = _gaussian(300, 8, 0), _gaussian(300, 8, 1)
    distances = [frechet_distance(a, b + s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert distances == sorted(distances) and distances[-1] > 8 * 2.0**2 * 0.9


def test_frechet_distance_matches_one_dimensional_closed_form():
    a, b = _gaussian(100, 1, 0) * 2 + 1, _gaussian(150, 1, 1) * 0.5 - 3
    m1, m2 = a.mean().item(), b.mean().item()
    s1, s2 = a.std().item(), b.std().item()  # unbiased, like the implementation
    assert frechet_distance(a, b) == pytest.approx((m1 - m2) ** 2 + (s1 - s2) ** 2, rel=1e-9)


def test_frechet_distance_matches_scipy_sqrtm_reference():
    from scipy.linalg import sqrtm

    a, b = _gaussian(120, 6, 0), _gaussian(90, 6, 1) @ torch.rand(6, 6, dtype=torch.float64)
    an, bn = a.numpy(), b.numpy()
    ca, cb = np.cov(an, rowvar=False), np.cov(bn, rowvar=False)
    diff = an.mean(0) - bn.mean(0)
    expected = diff @ diff + np.trace(ca + cb - 2 * sqrtm(ca @ cb).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_handles_singular_covariance():
    a = torch.zeros(50, 4, dtype=torch.float64)
    a[:, 0] = _gaussian(50, 1, 0)[:, 0]  # rank-1 covariance
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, a + 1) == pytest.approx(4.0, rel=1e-9)


def test_evaluate_on_real_held_out_images_matches_real_accuracy_and_zero_distance():
    images, labels = load_digits_split("test")
    report = evaluate_digits(images, labels)
    assert report["accuracy"] == report["real_accuracy"] >= 0.97
    assert report["frechet_distance"] == pytest.approx(0.0, abs=1e-6)
    assert report["frechet_floor"] > 0 and report["num_images"] == images.shape[0]
    assert report["copy_rate"] == report["real_copy_rate"] == pytest.approx(0.05, abs=0.01)


def test_training_digits_count_as_near_copies_and_noise_does_not():
    """A model that reproduced its training split would score near the Frechet floor; the copy
    rate tells it apart from one that draws new digits."""
    from mmgen.eval.digits_eval import near_copy_rate

    train, _ = load_digits_split("train")
    assert near_copy_rate(train[:300]) == 1.0
    shifted = torch.roll(train[:300], shifts=4, dims=-1)  # the same digits one source pixel over
    assert near_copy_rate(shifted) < 0.5
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (200, 1, 32, 32), generator=generator, dtype=torch.uint8)
    assert near_copy_rate(noise) == 0.0


def test_evaluate_on_noise_gives_low_accuracy_and_distance_far_above_floor():
    generator = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 256, (200, 1, 32, 32), generator=generator, dtype=torch.uint8)
    report = evaluate_digits(noise, torch.arange(200) % 10)
    assert report["accuracy"] < 0.3
    assert report["frechet_distance"] > 10 * report["frechet_floor"]


def test_format_report_shows_both_accuracies_and_both_distances():
    report = {
        "accuracy": 0.5,
        "real_accuracy": 0.99,
        "frechet_distance": 123.4567,
        "frechet_floor": 7.25,
        "copy_rate": 0.625,
        "real_copy_rate": 0.05,
        "num_images": 40,
    }
    text = format_digits_report(report)
    for number in ("0.5000", "0.9900", "123.4567", "7.2500", "0.6250", "0.0500", "40"):
        assert number in text
    accuracy_line = next(line for line in text.splitlines() if line.startswith("accuracy"))
    assert "0.5000" in accuracy_line and "0.9900" in accuracy_line


def test_shipped_verifier_is_frozen_and_used_for_seed_zero():
    from mmgen.data.digits import load_digits_split
    from mmgen.eval.digits_eval import VERIFIER_WEIGHTS, verifier_classifier

    assert VERIFIER_WEIGHTS.is_file()
    shipped = verifier_classifier()
    assert verifier_classifier() is shipped  # loaded once
    assert not any(p.requires_grad for p in shipped.parameters())
    images, labels = load_digits_split("test")
    assert classifier_accuracy(shipped, images, labels) >= 0.995  # 358/359 when it was frozen
    assert verifier_classifier(seed=1, device="cpu") is not shipped  # other seeds train here
