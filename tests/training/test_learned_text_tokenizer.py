"""A word-level text tokenizer learned by the training command, saved and loaded with the
pipeline, warning about words it never saw."""

import json

import pytest
import torch
from mmgen.tokenizers.trained_text import TrainedTextTokenizer
from training_recipes import run, t2i_recipe

from mmgen import TextToImagePipeline


@pytest.fixture(scope="module")
def word_pipeline(tmp_path_factory, trained_vq):
    tmp_path = tmp_path_factory.mktemp("word")
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", max_steps=2)
    run(recipe, text_tokenizer={"kind": "word"}, text_max_length=14)
    return tmp_path / "t2i" / "final"


def test_training_learns_and_saves_the_vocabulary(word_pipeline):
    index = json.loads((word_pipeline / "model_index.json").read_text())
    entry = index["text_tokenizer"]
    assert entry["file"] == "tokenizer.json" and entry["max_length"] == 14
    assert entry["_class_name"][1] == "TrainedTextTokenizer"
    tok = TrainedTextTokenizer.from_file(word_pipeline / "tokenizer.json")
    from mmgen.data.shapes import ShapesDataset

    captions = [ShapesDataset(32, seed=0)[i]["prompt"] for i in range(32)]  # the recipe's data
    words = {w for c in captions for w in c.split()}
    assert set(tok.tokenizer.get_vocab()) == words | {"[PAD]", "[BOS]", "[EOS]", "[UNK]"}
    pipe = TextToImagePipeline.from_pretrained(word_pipeline)
    assert isinstance(pipe.text_tokenizer, TrainedTextTokenizer)
    assert pipe.transformer.config.condition_vocab_size == tok.vocab_size < 60


def test_reloaded_pipeline_generates_identically(word_pipeline, tmp_path):
    pipe = TextToImagePipeline.from_pretrained(word_pipeline)
    pipe.set_progress_bar_config(disable=True)
    again = TextToImagePipeline.from_pretrained(pipe.save_pretrained(tmp_path / "copy"))
    again.set_progress_bar_config(disable=True)
    kwargs = dict(output_type="latent", guidance_scale=2.0)
    a = pipe("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).images
    b = again("a red circle", generator=torch.Generator().manual_seed(0), **kwargs).images
    assert torch.equal(a, b)


def test_unknown_words_warn_through_the_pipeline(word_pipeline):
    pipe = TextToImagePipeline.from_pretrained(word_pipeline)
    pipe.set_progress_bar_config(disable=True)
    with pytest.warns(UserWarning, match="'cat'.*'photo'"):
        pipe("a photo of a cat", output_type="latent", generator=torch.Generator())


def test_missing_tokenizer_file_is_a_checkpoint_error(word_pipeline, tmp_path):
    from mmgen.utils.serialization import CheckpointError

    pipe = TextToImagePipeline.from_pretrained(word_pipeline)
    copy = pipe.save_pretrained(tmp_path / "copy")
    (copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="tokenizer.json"):
        TextToImagePipeline.from_pretrained(copy)


def test_bad_text_tokenizer_config(tmp_path, trained_vq):
    from mmgen.training.config import load_run_config
    from mmgen.utils.config import ConfigError

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final")
    with pytest.raises(ConfigError, match="text_tokenizer.kind"):
        load_run_config(recipe, text_tokenizer={"kind": "chars"})
    with pytest.raises(ConfigError, match="vocab_size"):
        load_run_config(recipe, text_tokenizer={"kind": "word", "vocab_size": 10})


def test_init_from_a_pipeline_keeps_its_vocabulary(word_pipeline, trained_vq, tmp_path):
    """A run started from a trained pipeline's transformer reads prompts with that pipeline's
    vocabulary: one learned from its own (fewer) captions would number the words otherwise,
    and the copied condition embeddings would start on the wrong words."""
    from mmgen.data.shapes import ShapesDataset

    source = TrainedTextTokenizer.from_file(word_pipeline / "tokenizer.json")
    captions = [ShapesDataset(12, seed=0)[i]["prompt"] for i in range(12)]
    relearned = TrainedTextTokenizer.train(captions, kind="word", max_length=14)
    assert relearned.tokenizer.get_vocab() != source.tokenizer.get_vocab()  # ids would move

    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", max_steps=1)
    run(recipe, text_tokenizer={"kind": "word"}, text_max_length=14, data={"num_samples": 12},
        init_from=str(word_pipeline / "transformer"))  # fmt: skip
    inherited = TrainedTextTokenizer.from_file(tmp_path / "t2i" / "final" / "tokenizer.json")
    assert inherited.tokenizer.get_vocab() == source.tokenizer.get_vocab()


def test_init_from_a_vocabulary_missing_caption_words_learns_a_new_one(
    word_pipeline, trained_vq, tmp_path
):
    from mmgen.data.shapes import ShapesDataset

    source = TrainedTextTokenizer.from_file(word_pipeline / "tokenizer.json")
    captions = [ShapesDataset(400, seed=5)[i]["prompt"] for i in range(400)]
    assert {w for c in captions for w in c.split()} - set(source.tokenizer.get_vocab())
    recipe = t2i_recipe(tmp_path, trained_vq[0] / "final", max_steps=1)
    with pytest.warns(UserWarning, match="does not know every caption word"):
        run(recipe, text_tokenizer={"kind": "word"}, text_max_length=14,
            data={"num_samples": 400, "seed": 5},
            init_from=str(word_pipeline / "transformer"))  # fmt: skip
    learned = TrainedTextTokenizer.from_file(tmp_path / "t2i" / "final" / "tokenizer.json")
    assert set(learned.tokenizer.get_vocab()) >= {w for c in captions for w in c.split()}
