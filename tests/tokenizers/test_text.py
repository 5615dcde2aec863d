import pytest
import torch
from mmgen.tokenizers.text import ByteTokenizer


def test_bytes_with_bos_eos_and_padding_round_trip():
    tok = ByteTokenizer(max_length=12)
    ids = tok(["héllo", ""])
    assert ids.shape == (2, 12) and ids.dtype == torch.long
    assert ids[0, 0] == tok.bos_id and ids[1].tolist()[:3] == [tok.bos_id, tok.eos_id, tok.pad_id]
    assert tok.decode(ids[0]) == "héllo"


def test_long_prompts_are_truncated_with_one_warning():
    tok = ByteTokenizer(max_length=6)
    with pytest.warns(UserWarning, match="2 prompt\\(s\\) longer than 4 bytes were truncated"):
        ids = tok(["abcdefgh", "ok", "123456"])
    assert tok.decode(ids[0]) == "abcd" and ids[0, -1] == tok.eos_id


def test_non_string_prompt_is_a_type_error():
    with pytest.raises(TypeError, match="prompt must be a str"):
        ByteTokenizer()([b"bytes"])
    with pytest.raises(ValueError, match="max_length"):
        ByteTokenizer(max_length=2)
