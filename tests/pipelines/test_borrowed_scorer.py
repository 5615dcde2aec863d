"""A scorer borrowed from another pipeline: ``scorer_vq`` is the image tokenizer it reads (a
next-scale pipeline's pictures re-encoded as one grid of codes), and a scorer that records its
vocabulary reads a pipeline's prompt ids translated word for word."""

import dataclasses

import pytest
import torch
from conftest import make_tiny_pipeline, make_tiny_tokenizer, own_candidates
from mmgen.tokenizers.trained_text import TrainedTextTokenizer

from mmgen.models.match_scorer import MatchScorer, MatchScorerConfig, condition_id_map
from mmgen.pipelines.text_to_image import TextToImagePipeline, prompt_ids

PROMPTS = ["a red circle", "two blue squares"]
CAPTIONS = ["a red circle", "two blue squares", "a green triangle above a red square"]


def random_scorer(vocab_size, max_length, seed=0, **config):
    config = MatchScorerConfig(vocab_size, max_length, 32, (8, 8), dim=16, depth=1, num_heads=2,
                               **config)  # fmt: skip
    torch.manual_seed(seed)
    scorer = MatchScorer(config)
    with torch.no_grad():
        for p in scorer.parameters():
            p.normal_(0, 0.5)
    return scorer


def next_scale_with_borrowed_scorer(num_candidates=3):
    pipe = make_tiny_pipeline(order={"name": "next_scale"})
    text = pipe.text_tokenizer
    torch.manual_seed(1)
    lender_vq = make_tiny_tokenizer()  # a single-grid VQ: 8x8 codes of 32
    sampling = dataclasses.replace(pipe.sampling, num_candidates=num_candidates)
    components = {**pipe.components, "scorer": random_scorer(text.vocab_size, text.max_length),
                  "scorer_vq": lender_vq}  # fmt: skip
    return TextToImagePipeline(**components, image_size=16, sampling=sampling)


def generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_a_next_scale_pipeline_keeps_the_best_by_the_codes_of_the_scorers_own_tokenizer():
    pipe = next_scale_with_borrowed_scorer(num_candidates=3)
    out = pipe(PROMPTS, generator=generators([5, 6]), output_type="latent",
               show_progress=False).images  # fmt: skip
    assert out.shape[1] == pipe.order.token_layout.num_tokens  # the pyramid's codes (85)
    cond, _ = prompt_ids(pipe.text_tokenizer, PROMPTS, None, 1)
    for i, seed in enumerate([5, 6]):
        candidates = own_candidates(pipe, PROMPTS, i, seed, 3)
        pixels = pipe.decode_codes(candidates).clamp(-1, 1).add(1).mul(127.5).round()
        seen = pipe.scorer_vq.encode(pixels.div(127.5).sub(1)).flatten(1)  # (3, 64)
        scores = pipe.scorer(cond[i : i + 1].repeat(3, 1), seen)
        assert len(set(scores.tolist())) == 3  # the candidates are told apart
        assert torch.equal(out[i], candidates[scores.argmax()])


def test_a_scorer_that_cannot_read_the_pipelines_codes_or_rows_is_refused():
    pipe = make_tiny_pipeline(order={"name": "next_scale"})
    text = pipe.text_tokenizer
    scorer = random_scorer(text.vocab_size, text.max_length)
    with pytest.raises(ValueError, match="pass the tokenizer it was trained on as scorer_vq"):
        TextToImagePipeline(**{**pipe.components, "scorer": scorer}, image_size=16)
    with pytest.raises(ValueError, match="rows of 12 ids"):
        TextToImagePipeline(**{**pipe.components, "scorer": random_scorer(text.vocab_size, 12),
                               "scorer_vq": make_tiny_tokenizer()}, image_size=16)  # fmt: skip
    with pytest.raises(ValueError, match="got no scorer"):
        TextToImagePipeline(**{**pipe.components, "scorer_vq": make_tiny_tokenizer()},
                            image_size=16)  # fmt: skip


def test_the_borrowed_scorer_and_its_tokenizer_save_and_load(tmp_path):
    pipe = next_scale_with_borrowed_scorer(num_candidates=2)
    pipe.save_pretrained(tmp_path / "p")
    loaded = TextToImagePipeline.from_pretrained(tmp_path / "p")
    assert type(loaded.scorer_vq).__name__ == "VQModel"
    a = pipe(PROMPTS, generator=generators([7, 8]), output_type="latent", show_progress=False)
    b = loaded(PROMPTS, generator=generators([7, 8]), output_type="latent", show_progress=False)
    assert torch.equal(a.images, b.images)


def test_prompt_ids_are_translated_into_the_scorers_vocabulary():
    ours = TrainedTextTokenizer.train(CAPTIONS, max_length=12)
    # the same words, counted otherwise: other ids
    theirs = TrainedTextTokenizer.train(CAPTIONS[::-1] + ["square square blue"] * 3,
                                        max_length=12)  # fmt: skip
    assert ours.vocabulary != theirs.vocabulary
    config = MatchScorerConfig(theirs.vocab_size, 12, 32, (8, 8), dim=16, depth=1, num_heads=2,
                               condition_vocab=theirs.vocabulary)  # fmt: skip
    id_map = condition_id_map(ours, config)
    prompts = [*CAPTIONS, "a red", ""]
    assert torch.equal(id_map[ours(prompts)], theirs(prompts))
    # the same vocabulary reads the ids as they are; a word the scorer never saw is refused
    assert condition_id_map(theirs, config) is None
    wider = TrainedTextTokenizer.train([*CAPTIONS, "a purple hexagon"], max_length=12)
    with pytest.raises(ValueError, match="never saw 2 .*'hexagon', 'purple'"):
        condition_id_map(wider, config)


def test_the_pipeline_hands_the_scorer_its_own_vocabularys_ids():
    from mmgen.models.transformer import ARTransformer

    plain = make_tiny_pipeline()
    ours = TrainedTextTokenizer.train(CAPTIONS, max_length=12)
    theirs = TrainedTextTokenizer.train(CAPTIONS[::-1] + ["square square blue"] * 3,
                                        max_length=12)  # fmt: skip
    torch.manual_seed(0)  # the tiny transformer rebuilt for `ours`'s ids
    config = dataclasses.replace(plain.transformer.config, condition_vocab_size=ours.vocab_size)
    scorer = random_scorer(theirs.vocab_size, 12, condition_vocab=theirs.vocabulary)
    read = []
    scorer.register_forward_pre_hook(lambda module, args: read.append(args[0]))
    sampling = dataclasses.replace(plain.sampling, num_candidates=3)
    pipe = TextToImagePipeline(ARTransformer(config), plain.vq, ours, image_size=16,
                               sampling=sampling, scorer=scorer)  # fmt: skip
    pipe(PROMPTS, generator=generators([4, 5]), output_type="latent", show_progress=False)
    assert not torch.equal(ours(PROMPTS), theirs(PROMPTS))
    assert torch.equal(read[0], theirs(PROMPTS).repeat_interleave(3, 0))
