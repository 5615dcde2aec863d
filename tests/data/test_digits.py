"""Tests for mmgen/data/digits.py: split sizes, determinism, image format and the dataset."""

import pytest
import torch

from mmgen.data.digits import (  # noqa: E402
    HELD_OUT_FRACTION,
    IMAGE_SIZE,
    NUM_CLASSES,
    DigitsDataset,
    _all_digits,
    _test_mask,
    load_digits_split,
)

NUM_DIGITS = 1797


def _keys(images: torch.Tensor) -> list[bytes]:
    return [bytes(img.flatten().tolist()) for img in images]


def test_splits_cover_all_images_with_twenty_percent_held_out():
    train_x, train_y = load_digits_split("train")
    test_x, test_y = load_digits_split("test")
    assert train_x.shape[0] + test_x.shape[0] == NUM_DIGITS
    assert abs(test_x.shape[0] - HELD_OUT_FRACTION * NUM_DIGITS) <= NUM_CLASSES
    assert train_y.shape == (train_x.shape[0],) and test_y.shape == (test_x.shape[0],)
    # The 1,797 source digits are pairwise distinct, so image bytes identify them.
    all_keys = _keys(_all_digits()[0])
    assert len(set(all_keys)) == NUM_DIGITS
    assert set(_keys(train_x)) | set(_keys(test_x)) == set(all_keys)


def test_splits_are_disjoint():
    assert not set(_keys(load_digits_split("train")[0])) & set(_keys(load_digits_split("test")[0]))


def test_labels_follow_their_images_into_the_split():
    all_x, all_y = _all_digits()
    label_of = dict(zip(_keys(all_x), all_y.tolist()))
    for split in ("train", "test"):
        images, labels = load_digits_split(split)
        assert [label_of[k] for k in _keys(images)] == labels.tolist()


def test_split_is_identical_when_recomputed():
    before = [t.clone() for t in load_digits_split("test")]
    load_digits_split.cache_clear()
    _test_mask.cache_clear()
    after = load_digits_split("test")
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])


def test_images_are_uint8_32x32_full_range_and_labels_cover_all_classes():
    for split in ("train", "test"):
        images, labels = load_digits_split(split)
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert tuple(images.shape[1:]) == (1, IMAGE_SIZE, IMAGE_SIZE)
        assert images.min() == 0 and images.max() == 255
        assert set(labels.tolist()) == set(range(NUM_CLASSES))


def test_upsampling_matches_bilinear_interpolation_of_source():
    from sklearn.datasets import load_digits

    source = torch.from_numpy(load_digits().images[:3]).float()[:, None] * (255 / 16)
    expected = torch.nn.functional.interpolate(
        source, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False
    )
    assert torch.equal(_all_digits()[0][:3], expected.round().to(torch.uint8))


def test_bad_split_name_raises_value_error_naming_it():
    with pytest.raises(ValueError, match="validation"):
        load_digits_split("validation")


def test_dataset_items():
    dataset = DigitsDataset("test")
    images, labels = load_digits_split("test")
    assert len(dataset) == images.shape[0]
    item = dataset[5]
    assert torch.equal(item["image"], images[5]) and item["image"].dtype == torch.uint8
    assert isinstance(item["label"], int) and item["label"] == int(labels[5])
    with pytest.raises(ValueError):
        DigitsDataset("val")
