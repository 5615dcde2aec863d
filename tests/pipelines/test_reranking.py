"""num_candidates: each image is the scorer's best of K candidates, drawn from its own generator
and rated on the tokenizer's codes of its 8-bit picture; a pipeline without a scorer refuses K >
1; the scorer saves and loads with it."""

import dataclasses

import pytest
import torch
from conftest import make_tiny_pipeline, own_candidates

from mmgen.models.match_scorer import MatchScorer, MatchScorerConfig
from mmgen.pipelines.text_to_image import TextToImagePipeline, prompt_ids

PROMPTS = ["a red circle", "two blue squares"]


def with_scorer(pipe, num_candidates=3, seed=0, grid=(8, 8)):
    text = pipe.text_tokenizer
    config = MatchScorerConfig(text.vocab_size, text.max_length, 32, grid, dim=16, depth=1,
                               num_heads=2)  # fmt: skip
    torch.manual_seed(seed)
    scorer = MatchScorer(config)
    with torch.no_grad():
        for p in scorer.parameters():
            p.normal_(0, 0.5)
    sampling = dataclasses.replace(pipe.sampling, num_candidates=num_candidates)
    return TextToImagePipeline(**{**pipe.components, "scorer": scorer}, image_size=16,
                               sampling=sampling)  # fmt: skip


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_each_image_is_the_best_scored_of_its_own_candidates():
    pipe = with_scorer(make_tiny_pipeline(), num_candidates=3)
    out = pipe(PROMPTS, generator=generators([5, 6]), output_type="latent",
               show_progress=False).images  # fmt: skip
    # the same candidates by hand: image i's three come from generators seeded by draws
    # from generator i; the scorer reads their pictures (8-bit) encoded again, and its argmax
    # is kept
    cond, _ = prompt_ids(pipe.text_tokenizer, PROMPTS, None, 1)
    for i, seed in enumerate([5, 6]):
        candidates = own_candidates(pipe, PROMPTS, i, seed, 3)
        pixels = pipe.decode_codes(candidates).clamp(-1, 1).add(1).mul(127.5).round()
        seen = pipe.order.token_layout.flatten(pipe.vq.encode(pixels.div(127.5).sub(1)))
        assert not torch.equal(seen, candidates)  # the test tells the two apart
        scores = pipe.scorer(cond[i : i + 1].repeat(3, 1), seen)
        assert len(set(map(tuple, candidates.tolist()))) > 1  # the candidates differ
        assert torch.equal(out[i], candidates[scores.argmax()])


def test_an_image_depends_on_its_own_generator_only():
    pipe = with_scorer(make_tiny_pipeline(), num_candidates=2)
    both = pipe(PROMPTS, generator=generators([1, 2]), output_type="latent", show_progress=False)
    alone = pipe(PROMPTS[1:], generator=generators([2]), output_type="latent", show_progress=False)
    assert torch.equal(both.images[1], alone.images[0])


def test_one_candidate_is_the_plain_pipeline():
    plain = make_tiny_pipeline()
    reranking = with_scorer(plain, num_candidates=4)
    a = plain(PROMPTS, generator=generators([3, 4]), output_type="latent", show_progress=False)
    b = reranking(PROMPTS, generator=generators([3, 4]), output_type="latent",
                  show_progress=False, num_candidates=1)  # fmt: skip
    assert torch.equal(a.images, b.images)


def test_num_candidates_is_checked():
    plain = make_tiny_pipeline()
    with pytest.raises(ValueError, match="has none"):
        plain("a red circle", num_candidates=2)
    with pytest.raises(ValueError, match="num_candidates must be an int >= 1"):
        with_scorer(plain)("a red circle", num_candidates=0)
    with pytest.raises(ValueError, match="the scorer reads"):
        with_scorer(plain, grid=(4, 4))


def test_the_scorer_and_its_default_save_and_load(tmp_path):
    pipe = with_scorer(make_tiny_pipeline(), num_candidates=3)
    pipe.save_pretrained(tmp_path / "p")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "p")
    assert loaded.sampling.num_candidates == 3
    assert isinstance(loaded.scorer, MatchScorer)
    a = pipe(PROMPTS, generator=generators([7, 8]), output_type="latent", show_progress=False)
    b = loaded(PROMPTS, generator=generators([7, 8]), output_type="latent", show_progress=False)
    assert torch.equal(a.images, b.images)
