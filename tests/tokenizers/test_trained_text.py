import warnings

import pytest
import torch
from mmgen.tokenizers.trained_text import TrainedTextTokenizer

CAPTIONS = ["a red circle", "two blue squares", "a green triangle to the left of a red square"]


def test_word_level_rows_and_roundtrip(tmp_path):
    tok = TrainedTextTokenizer.train(CAPTIONS, kind="word", max_length=12)
    ids = tok(["a red circle", ""])
    assert ids.shape == (2, 12) and ids.dtype == torch.long
    row = ids[0].tolist()
    assert row[0] == tok.bos_id and row[4] == tok.eos_id and set(row[5:]) == {tok.pad_id}
    assert ids[1].tolist()[:3] == [tok.bos_id, tok.eos_id, tok.pad_id]  # the empty prompt
    assert tok.decode(ids[0]) == "a red circle"
    # every caption word has its own id, the four specials come first
    assert tok.vocab_size == 4 + len({w for c in CAPTIONS for w in c.split()})
    loaded = TrainedTextTokenizer.from_file(tok.save(tmp_path / "tokenizer.json"))
    assert torch.equal(loaded(CAPTIONS), tok(CAPTIONS)) and loaded.max_length == 12


def test_training_is_deterministic():
    a = TrainedTextTokenizer.train(CAPTIONS * 3, max_length=12)
    b = TrainedTextTokenizer.train(CAPTIONS * 3, max_length=12)
    assert a.tokenizer.get_vocab() == b.tokenizer.get_vocab()


def test_unknown_words_warn_once_per_call_naming_them():
    tok = TrainedTextTokenizer.train(CAPTIONS, max_length=12)
    with pytest.warns(UserWarning) as record:
        ids = tok(["a photo of a cat", "a red cat"])
    assert len(record) == 1
    message = str(record[0].message)
    assert "'photo'" in message and "'cat'" in message and "'red'" not in message
    assert (ids == tok.unk_id).sum() == 3  # photo, cat, cat
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tok(CAPTIONS)  # known words: silent


def test_truncation_warns():
    tok = TrainedTextTokenizer.train(CAPTIONS, max_length=5)
    with pytest.warns(UserWarning, match="truncated"):
        ids = tok("a green triangle to the left of a red square")
    assert ids.shape == (1, 5) and ids[0, -1] == tok.eos_id


def test_bpe_decodes_words_back():
    tok = TrainedTextTokenizer.train(CAPTIONS * 4, kind="bpe", vocab_size=60, max_length=24)
    assert tok.decode(tok("a green triangle")[0]) == "a green triangle"


def test_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        TrainedTextTokenizer.train(CAPTIONS, kind="char")
    with pytest.raises(ValueError, match="max_length"):
        TrainedTextTokenizer.train(CAPTIONS, max_length=2)
    with pytest.raises(TypeError):
        TrainedTextTokenizer.train(CAPTIONS)([1, 2])


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        TrainedTextTokenizer.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a tokenizers JSON"):
        TrainedTextTokenizer.from_file(tmp_path / "bad.json")
    tok = TrainedTextTokenizer.train(CAPTIONS, max_length=8)
    tok.tokenizer.no_padding()
    tok.tokenizer.save(str(tmp_path / "unpadded.json"))
    with pytest.raises(ValueError, match="fixed length"):
        TrainedTextTokenizer.from_file(tmp_path / "unpadded.json")
