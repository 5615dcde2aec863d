"""tools/eval_best_of_n.py: N samples per prompt, the oracle pick and the model's own picks."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import eval_best_of_n  # noqa: E402

from mmgen.eval.prefix_eval import best_of_n  # noqa: E402
from mmgen.pipelines.text_to_image import TextToImagePipeline  # noqa: E402


@pytest.fixture(scope="module")
def pipe():
    pipe = TextToImagePipeline.from_pretrained("shapes-t2i-shuffle")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_one_sample_leaves_nothing_to_pick(pipe):
    rates = best_of_n(pipe, num_prompts=4, num_samples=1, seed=1, batch_prompts=2)
    assert len(set(rates.values())) == 1


def test_picks_lie_between_the_worst_and_the_oracle(pipe):
    rates = best_of_n(pipe, num_prompts=6, num_samples=3, seed=1, batch_prompts=4)
    oracle = rates["any of N (oracle)"]
    assert 0 < rates["per sample"] <= oracle <= 1
    for name in ("picked by log p(x|prompt)", "picked by log p(x|prompt) - log p(x)"):
        assert rates[name] <= oracle


def test_the_command_prints_every_rate(capsys):
    eval_best_of_n.main(["--model", "shapes-t2i-shuffle", "--num-prompts", "2",
                         "--num-samples", "2", "--temperature", "0.6"])  # fmt: skip
    out = capsys.readouterr().out
    assert "2 prompts x 2 samples" in out and "any of N (oracle)" in out
    with pytest.raises(SystemExit):
        eval_best_of_n.main(["--model", "shapes-t2i-shuffle", "--num-samples", "0"])


def test_the_model_picks_its_highest_scored_sample(pipe, monkeypatch):
    # sample 1 of every prompt passes and is the one the (stubbed) model scores highest
    import itertools
    from types import SimpleNamespace

    import torch

    from mmgen.eval import prefix_eval

    N, calls = 3, itertools.count()

    def fake_verify(image, text):
        return SimpleNamespace(passed=next(calls) % N == 1)

    empty = pipe.text_tokenizer([""])  # (1, T)

    def scores(pipe, tokens, condition_ids):
        second = (torch.arange(tokens.shape[0]) % N == 1).float()  # (B,)
        unconditional = bool(condition_ids.eq(empty).all())
        return -second if unconditional else second  # PMI: 2 x second

    monkeypatch.setattr(prefix_eval, "verify", fake_verify)
    monkeypatch.setattr(prefix_eval, "sequence_log_likelihood", scores)
    rates = best_of_n(pipe, num_prompts=4, num_samples=N, seed=1, batch_prompts=2)
    assert rates["per sample"] == pytest.approx(1 / N)
    assert rates["any of N (oracle)"] == 1.0
    assert rates["picked by log p(x|prompt)"] == 1.0
    assert rates["picked by log p(x|prompt) - log p(x)"] == 1.0
