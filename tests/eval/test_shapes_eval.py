"""What ``evaluate_shapes`` reports: the sampling used, empty families, prompts on the sheet."""

import json

import numpy as np
from conftest import make_tiny_pipeline
from PIL import Image

from mmgen.eval.shapes_eval import evaluate_shapes, format_report
from mmgen.utils.images import caption_spans, image_grid


def test_the_report_holds_the_sampling_used_and_empty_families_are_dashes(tmp_path):
    pipe = make_tiny_pipeline()
    report = evaluate_shapes(pipe, num_prompts=2, out_dir=tmp_path, show_progress=False,
                             guidance_scale=1.5)  # fmt: skip
    saved = json.loads((tmp_path / "report.json").read_text())
    defaults = pipe.sampling
    assert saved["sampling"]["guidance_scale"] == 1.5  # given
    assert saved["sampling"]["temperature"] == defaults.temperature  # the pipeline's default
    assert set(saved["sampling"]) == set(defaults.__dataclass_fields__)
    empty = [f for f, n in report["counts"].items() if n == 0]
    assert empty  # 2 prompts cannot cover the 4 families
    assert all(report["families"][f] is None for f in empty)
    table = format_report(report)
    for family in empty:
        assert next(line for line in table.splitlines() if line.startswith(family)).endswith(" -")
    assert "nan" not in table


def test_captions_are_written_under_each_image():
    tiles = [Image.new("RGB", (16, 16), (200, 0, 0)) for _ in range(4)]
    plain = image_grid(tiles, cols=2, scale=2)
    captioned = image_grid(tiles, cols=2, scale=2,
                           captions=["a red circle to the left of a blue square"] * 4)  # fmt: skip
    assert captioned.size[0] == plain.size[0] and captioned.size[1] > plain.size[1]
    under_first = np.asarray(captioned)[36 : captioned.size[1] // 2, :36]  # below tile 0
    assert (under_first.sum(-1) < 200).any()  # dark text pixels


def test_a_caption_runs_on_under_the_empty_captioned_tiles_of_its_row():
    tiles = [Image.new("RGB", (16, 16), (200, 0, 0)) for _ in range(8)]
    text = "a red circle moving left and a blue square moving right"
    each = image_grid(tiles, cols=4, captions=[text] * 8)
    once = image_grid(tiles, cols=4, captions=[text, "", "", ""] * 2)  # a row captioned once
    assert once.size[0] == each.size[0] and once.size[1] < each.size[1]  # fewer, longer lines
    text_rows = np.asarray(once)[20 : once.size[1] // 2]  # under row 0
    assert (text_rows[:, 60:].sum(-1) < 200).any()  # the text reaches under the fourth tile
    assert caption_spans([text, "", "", "", text, "x", "", ""], 4) == [4, 1, 1, 1, 1, 3, 1, 1]
