"""``evaluate_moving_shapes``'s given frames: the first k frames of every clip from a true clip
of its prompt, the rest the model's."""

from types import SimpleNamespace

import pytest
from PIL import Image

from mmgen.eval.moving_shapes_eval import evaluate_moving_shapes, format_report


class BlankContinuation:
    """A stand-in pipeline: returns the given frames, then white frames up to ``num_frames``;
    records what every call was given."""

    def __init__(self):
        self.calls = []

    def resolve_sampling(self, **sampling):
        return sampling

    def __call__(self, texts, *, generator, show_progress, num_frames=None, frames=None,
                 **sampling):  # fmt: skip
        self.calls.append(frames)
        blank = Image.new("RGB", (64, 64), "white")
        given = frames or [[] for _ in texts]
        return SimpleNamespace(frames=[list(c) + [blank] * (12 - len(c)) for c in given])


@pytest.mark.parametrize("given", [1, 3])
def test_given_frames_come_from_a_true_clip_of_each_prompt(given):
    pipe = BlankContinuation()
    report = evaluate_moving_shapes(pipe, num_prompts=6, batch_size=4, given_frames=given,
                                    show_progress=False)  # fmt: skip
    assert [len(call) for call in pipe.calls] == [4, 2]  # one clip per prompt of each batch
    assert all(len(clip) == given for call in pipe.calls for clip in call)
    # the given frames show the prompt's objects (the verifier passes them), the blanks not
    assert all(r["frames"] == [True] * given + [False] * (12 - given) for r in report["results"])
    assert report["given_frames"] == given and report["overall"] == 0
    assert f"the first {given} frame(s)" in format_report(report)


def test_without_given_frames_nothing_is_given():
    pipe = BlankContinuation()
    report = evaluate_moving_shapes(pipe, num_prompts=2, batch_size=2, show_progress=False)
    assert pipe.calls == [None] and report["given_frames"] == 0
    assert "given" not in format_report(report)
    with pytest.raises(ValueError, match="given_frames"):
        evaluate_moving_shapes(pipe, num_prompts=2, given_frames=-1, show_progress=False)
