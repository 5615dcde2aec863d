"""tools/reschedule_scales.py: a next-scale pipeline gets a new scale schedule; every scale it
keeps is embedded exactly as before, a new one starts from a zero level column, and the new
folder loads and generates through the public API."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import reschedule_scales  # noqa: E402

from mmgen.pipelines.text_to_image import TextToImagePipeline  # noqa: E402
from tests.conftest import make_tiny_pipeline  # noqa: E402


def level_embedding(pipe, latents_BnC, level):
    """The transformer's input rows for ``latents`` fed at scale index ``level``."""
    return pipe.transformer.inputs(pipe.order._with_level(latents_BnC, level))


@pytest.mark.parametrize("new_scales", [[1, 4, 8], [1, 2, 3, 4, 8]])
def test_kept_scales_embed_as_before_and_the_folder_generates(tmp_path, new_scales):
    old = make_tiny_pipeline(order={"name": "next_scale"})  # scales 1, 2, 4, 8
    old.save_pretrained(tmp_path / "old")
    report = reschedule_scales.reschedule(tmp_path / "old", new_scales, tmp_path / "new")
    new = TextToImagePipeline.from_pretrained(tmp_path / "new")
    assert report["old_scales"] == [1, 2, 4, 8]
    assert list(new.order.scales) == new_scales
    assert list(new.vq.config.scales) == new_scales

    x = torch.randn(2, 3, old.order.row_channels)
    with torch.no_grad():
        for k_new, side in enumerate(new_scales):
            got = level_embedding(new, x, k_new)
            if side in old.order.scales:
                want = level_embedding(old, x, list(old.order.scales).index(side))
                torch.testing.assert_close(got, want, rtol=0, atol=0)
            else:  # a new scale: the latent's projection plus the bias, no level term
                proj = new.transformer.inputs.proj
                want = x @ proj.weight[:, : x.shape[-1]].T + proj.bias
                torch.testing.assert_close(got, want)

    image = new("a red circle", generator=torch.Generator().manual_seed(0)).images[0]
    assert image.size == (16, 16)


def test_a_pipeline_of_another_order_is_refused(tmp_path):
    make_tiny_pipeline().save_pretrained(tmp_path / "token")
    with pytest.raises(ValueError, match="not a next-scale order"):
        reschedule_scales.reschedule(tmp_path / "token", [1, 2, 4, 8], tmp_path / "new")
