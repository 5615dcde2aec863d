"""Text tokenizer learned from the training captions (Hugging Face ``tokenizers``).

A word-level vocabulary says a shapes prompt in about 12 tokens where the byte tokenizer needs
56. Words outside the vocabulary map to ``[UNK]``, and every call that meets one warns once,
naming them, so that "a photo of a cat" does not silently draw shapes.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

KINDS = ("word", "bpe")
PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0..3, in this order
FILE_NAME = "tokenizer.json"


class TrainedTextTokenizer:
    """Fixed-length rows ``[BOS] tokens... [EOS] [PAD]...`` from a ``tokenizers.Tokenizer``.

    Build one with :meth:`train` (from captions) or :meth:`from_file` (a saved
    ``tokenizer.json``, which holds the vocabulary, the row length and the BOS/EOS template).
    The empty prompt is ``[BOS] [EOS]``: the unconditional prompt of classifier-free guidance.

    Args:
        tokenizer: a ``tokenizers.Tokenizer`` with ``[PAD]``, ``[BOS]``, ``[EOS]``, ``[UNK]`` as
            ids 0-3, fixed padding and truncation to ``max_length``.
    """

    pad_id, bos_id, eos_id, unk_id = range(4)

    def __init__(self, tokenizer):
        padding = tokenizer.padding
        if not padding or not isinstance(padding.get("length"), int):
            raise ValueError("tokenizer.json must pad to a fixed length (enable_padding(length=))")
        for expected, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != expected:
                raise ValueError(f"tokenizer.json must hold {token} as id {expected}")
        self.tokenizer = tokenizer
        self.max_length = padding["length"]

    @classmethod
    def train(
        cls,
        captions: Iterable[str],
        *,
        kind: str = "word",
        max_length: int = 16,
        vocab_size: int = 1000,
    ) -> TrainedTextTokenizer:
        """Learn a vocabulary from ``captions``: ``kind="word"`` (one id per lower-cased word or
        punctuation mark, every word seen) or ``"bpe"`` (byte-pair merges up to
        ``vocab_size``). Deterministic for the same captions."""
        from tokenizers import (
            Tokenizer,
            decoders,
            models,
            normalizers,
            pre_tokenizers,
            processors,
            trainers,
        )

        if kind not in KINDS:
            raise ValueError(f"text tokenizer kind must be one of {list(KINDS)}, got {kind!r}")
        if max_length < 3:
            raise ValueError(f"max_length must be >= 3 (BOS, EOS and one token), got {max_length}")
        if kind == "word":
            tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
            trainer = trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS, show_progress=False)
        else:  # "</w>" marks word ends, so that decoding can put the spaces back
            tokenizer = Tokenizer(models.BPE(unk_token=UNK, end_of_word_suffix="</w>"))
            tokenizer.decoder = decoders.BPEDecoder(suffix="</w>")
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                special_tokens=SPECIAL_TOKENS,
                end_of_word_suffix="</w>",
                show_progress=False,
            )
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.train_from_iterator(captions, trainer)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}", special_tokens=[(BOS, cls.bos_id), (EOS, cls.eos_id)]
        )
        tokenizer.enable_truncation(max_length)
        tokenizer.enable_padding(length=max_length, pad_id=cls.pad_id, pad_token=PAD)
        return cls(tokenizer)

    @classmethod
    def from_file(cls, path: str | Path) -> TrainedTextTokenizer:
        """Load a ``tokenizer.json`` written by :meth:`save`."""
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: text tokenizer file not found")
        try:
            tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # the Rust side raises a bare Exception on bad JSON
            raise ValueError(f"{path}: not a tokenizers JSON file ({err})") from None
        return cls(tokenizer)

    def save(self, path: str | Path) -> Path:
        """Write ``tokenizer.json`` (Hugging Face's format; ``Tokenizer.from_file`` reads it)."""
        from mmgen.utils.serialization import atomic_write_bytes

        path = Path(path)
        atomic_write_bytes(path, self.tokenizer.to_str(pretty=True).encode())
        return path

    @property
    def kind(self) -> str | None:
        """``"word"`` or ``"bpe"``, as :meth:`train` was asked; None for another model type."""
        import json

        model_type = json.loads(self.tokenizer.to_str())["model"]["type"]
        return {"WordLevel": "word", "BPE": "bpe"}.get(model_type)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """The token of each id, in id order (what a model trained on these ids read)."""
        by_id = {i: token for token, i in self.tokenizer.get_vocab().items()}
        return tuple(by_id[i] for i in range(len(by_id)))

    @property
    def config(self) -> dict:
        """What ``model_index.json`` records; the vocabulary itself is in ``tokenizer.json``."""
        return {"file": FILE_NAME, "max_length": self.max_length}

    def __call__(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Encode one prompt or a list of prompts to ids of shape (B, max_length), int64.
        Warns once per call naming the words outside the vocabulary, and once if any prompt
        was truncated."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not isinstance(prompts, Sequence) or not all(isinstance(p, str) for p in prompts):
            raise TypeError("prompt must be a str or a list of str")
        encodings = self.tokenizer.encode_batch(list(prompts)) if prompts else []
        unknown = sorted(
            {
                prompt[start:end]
                for prompt, enc in zip(prompts, encodings)
                for token_id, (start, end) in zip(enc.ids, enc.offsets)
                if token_id == self.unk_id
            }
        )
        if unknown:
            warnings.warn(
                f"words not in the text tokenizer's vocabulary (read as [UNK]): "
                f"{', '.join(map(repr, unknown))}; the model was trained on other captions",
                stacklevel=2,
            )
        truncated = [p for p, enc in zip(prompts, encodings) if enc.overflowing]
        if truncated:
            warnings.warn(
                f"{len(truncated)} prompt(s) longer than {self.max_length - 2} tokens were "
                f"truncated (max_length={self.max_length}), e.g. {truncated[0][:40]!r}",
                stacklevel=2,
            )
        rows = [enc.ids for enc in encodings]
        return torch.tensor(rows, dtype=torch.long).reshape(len(rows), self.max_length)

    def decode(self, ids: torch.Tensor | Sequence[int]) -> str:
        """Inverse of encoding one row (special tokens dropped; words lower-cased)."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.tokenizer.decode(values, skip_special_tokens=True)
