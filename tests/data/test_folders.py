"""User image folders: bad entries are counted and skipped (or raise when strict); any image
size and mode becomes an RGB square of the configured resolution."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from mmgen.data.folders import DataError, load_image, read_image_folder


def save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path.name


@pytest.fixture
def messy_folder(tmp_path):
    """5 usable entries and 7 bad ones (one of each kind)."""
    good = [
        (save(Image.new("RGB", (50, 30), (220, 40, 40)), tmp_path / "wide.png"), "a wide red"),
        (save(Image.new("RGBA", (20, 20), (0, 0, 0, 0)), tmp_path / "clear.png"), "transparent"),
        (save(Image.new("L", (40, 64), 128), tmp_path / "grey.jpg"), "grey"),
        (save(Image.new("I;16", (33, 33), 4000), tmp_path / "deep.png"), "16-bit"),
        (save(Image.new("P", (17, 45), 3), tmp_path / "palette.gif"), "palette"),
    ]
    full = tmp_path / "full.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(full)
    (tmp_path / "truncated.png").write_bytes(full.read_bytes()[:60])
    (tmp_path / "notes.png").write_text("not an image")
    lines = [json.dumps({"file_name": name, "text": text}) for name, text in good]
    lines += [
        json.dumps({"file_name": "truncated.png", "text": "cut short"}),
        json.dumps({"file_name": "notes.png", "text": "text file"}),
        json.dumps({"file_name": "full.png"}),  # no caption
        json.dumps({"file_name": "full.png", "text": "   "}),  # empty caption
        "{not json",
        json.dumps({"file_name": "absent.png", "text": "missing"}),
        json.dumps({"text": "no file name"}),
        "",  # blank lines are not entries
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_bad_entries_are_skipped_with_one_counting_warning(messy_folder):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, texts = read_image_folder(messy_folder, 32)
    assert images.shape == (5, 3, 32, 32) and images.dtype.is_floating_point is False
    assert texts == ["a wide red", "transparent", "grey", "16-bit", "palette"]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "skipped 7 of 12 entries" in message
    for reason in (
        "2 unreadable image",
        "2 no caption",
        "1 not JSON",
        "1 file missing",
        "1 no file_name",
    ):
        assert reason in message, message
    assert "truncated.png" in message


def test_strict_data_raises_at_the_first_bad_entry(messy_folder):
    with pytest.raises(DataError, match=r"truncated\.png.*unreadable image.*strict"):
        read_image_folder(messy_folder, 32, strict=True)


def test_folder_without_metadata_or_usable_entries_raises(tmp_path):
    with pytest.raises(DataError, match="no metadata.jsonl"):
        read_image_folder(tmp_path, 32)
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "x.png", "text": "a"}))
    with pytest.warns(UserWarning, match="1 file missing"):
        with pytest.raises(DataError, match="no usable entries"):
            read_image_folder(tmp_path, 32)


def test_modes_and_sizes_become_rgb_squares(tmp_path):
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (10, 10), (255, 0, 0, 0)).save(clear)
    assert load_image(clear, 16).unique().tolist() == [255]  # transparent -> white

    # wide image, left third red, right two thirds blue: the centre crop keeps mostly blue
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, :30] = (220, 40, 40)
    wide[:, 30:] = (40, 90, 220)
    path = tmp_path / "wide.png"
    Image.fromarray(wide).save(path)
    square = load_image(path, 12)  # (3, 12, 12): the crop covers columns 30..60 of the original
    assert square.shape == (3, 12, 12)
    assert square[:, :, 2:].float().mean(dim=(1, 2)).round().tolist() == [40.0, 90.0, 220.0]

    deep = tmp_path / "deep.png"
    Image.fromarray(np.repeat(np.array([[0, 0, 65535, 65535]], np.uint16), 4, axis=0)).save(deep)
    grey = load_image(deep, 4)  # already 4 x 4: no resampling
    assert grey.min() == 0 and grey.max() == 255  # 16-bit range mapped to 8 bits
