"""A learned prompt-image match scorer for reranking candidates (DALL-E's CLIP reranking,
Parti's CoCa reranking), here on the image tokenizer's codes.

:class:`MatchScorer` reads a condition (prompt ids) and an image's codes together through a
small transformer of the backbone's own :class:`DecoderBlock` and returns one score: how well
the image shows what the prompt says. Objective ``"match"``: a logit, which
``mmgen.training.scorer_task`` trains against corrupted prompts (:func:`corrupt_condition_ids`)
and, on procedural data, near misses (``mmgen.data.near_miss``); objective ``"caption"``: the
prompt's log-likelihood given the image (CoCa's captioning loss), trained on the data's own
pairs. A pipeline that holds one draws ``num_candidates`` images per output and keeps the one
it scores highest.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: what a scorer's number is: a match logit, or the prompt's log-likelihood given the image
OBJECTIVES = ("match", "caption")


@dataclass
class MatchScorerConfig:
    """Sizes of a :class:`MatchScorer`.

    Attributes:
        condition_vocab_size: ids of the condition tokenizer.
        condition_length: rows of a condition (the tokenizer's ``max_length``).
        num_codes: codebook size of the image tokenizer.
        grid: (h, w) of the code map.
        window: s: each s x s window of codes is one row (their embeddings concatenated, as
            token-shuffle merges them); the grid must be divisible by s.
        dim, depth, num_heads: the transformer's width, blocks and heads.
        objective: ``"match"``: a summary row's logit, trained against negatives (prompts and
            images that do not match); ``"caption"``: the prompt's log-likelihood given the
            image (CoCa's captioning loss; generative scores read word order and relations
            where matching ones tend to a bag of words), trained on positives only: condition
            row t sees every window and the rows before it and predicts id t + 1.
        pad_id: the condition tokenizer's padding id (``"caption"``: padding is not scored).
        condition_vocab: the token of each condition id the scorer was trained on (a learned
            text tokenizer's vocabulary), so that a pipeline with another vocabulary can
            translate its ids; None (byte prompts, or scorers saved before it): the ids of the
            pipeline it was trained for, as they are.
        fixed_positions: also add fixed sinusoidal features of each row's place (a condition
            row's index; a window's row and column), a third of the width per axis, as loud as
            the rows' content: the learned rows start at 0.02 against content of ~0.6 and stay
            there, which leaves where things are (relations, word order) unread. False (the
            scorers trained before it) adds nothing.
    """

    condition_vocab_size: int
    condition_length: int
    num_codes: int
    grid: tuple[int, int]
    window: int = 2
    dim: int = 192
    depth: int = 4
    num_heads: int = 4
    fixed_positions: bool = False
    objective: str = "match"
    pad_id: int | None = None
    condition_vocab: tuple[str, ...] | None = None

    def __post_init__(self):
        self.grid = tuple(int(g) for g in self.grid)
        if self.condition_vocab is not None:
            self.condition_vocab = tuple(self.condition_vocab)
            if len(self.condition_vocab) != self.condition_vocab_size:
                raise ValueError(
                    f"condition_vocab holds {len(self.condition_vocab)} tokens, "
                    f"condition_vocab_size is {self.condition_vocab_size}"
                )
        if len(self.grid) != 2 or any(g % self.window for g in self.grid):
            raise ValueError(f"grid {self.grid} must be (h, w) divisible by window {self.window}")
        if self.dim % (self.window**2) or self.dim % self.num_heads:
            raise ValueError(
                f"dim {self.dim} must be divisible by window^2 ({self.window**2}) and "
                f"num_heads ({self.num_heads})"
            )
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r}: expected one of {OBJECTIVES}")
        if self.objective == "caption" and self.pad_id is None:
            raise ValueError("objective 'caption' needs the condition tokenizer's pad_id")
        if self.fixed_positions and self.dim % 6:
            raise ValueError(f"dim {self.dim} must be divisible by 6 for fixed_positions")


class MatchScorer(nn.Module):
    """(condition ids (B, T), codes (B, h * w) or (B, h, w)) -> score (B,): higher, better.

    Rows, each with a learned position embedding (and, with ``fixed_positions``, sinusoidal
    features of its place): objective ``"match"``: one summary row, the T condition rows, then
    one row per s x s window of codes, full attention, the summary row's output is the logit;
    ``"caption"``: the windows, then the condition rows, windows attending to windows and each
    condition row to the windows and itself and the rows before it (group-causal ``kv_end``),
    the score the summed log-probability of the prompt's ids after the first.
    """

    config_class = MatchScorerConfig

    def __init__(self, config: MatchScorerConfig):
        super().__init__()
        from mmgen.models.blocks import DecoderBlock

        self.config = c = config
        s = c.window
        self.num_windows = (c.grid[0] // s) * (c.grid[1] // s)
        self.condition_embed = nn.Embedding(c.condition_vocab_size, c.dim)
        self.code_embed = nn.Embedding(c.num_codes, c.dim // s**2)
        self.window_proj = nn.Linear(c.dim, c.dim)
        captions = c.objective == "caption"
        if not captions:
            self.summary = nn.Parameter(torch.zeros(1, 1, c.dim))
        rows = (0 if captions else 1) + c.condition_length + self.num_windows
        self.position = nn.Parameter(torch.randn(rows, c.dim) * 0.02)
        if c.fixed_positions:  # computed, not saved: the config says everything about it
            self.register_buffer("fixed_position", self.place_features(), persistent=False)
        self.blocks = nn.ModuleList(
            DecoderBlock(
                c.dim,
                c.num_heads,
                c.num_heads,
                4 * c.dim,
                qk_norm=True,
                norm_eps=1e-6,
                backend="sdpa",
            )  # fmt: skip
            for _ in range(c.depth)
        )
        self.norm = nn.RMSNorm(c.dim, eps=1e-6)
        self.out = nn.Linear(c.dim, c.condition_vocab_size if captions else 1)

    def place_features(self) -> torch.Tensor:
        """(rows, dim) sinusoidal features of each row's place (t, h, w), dim/3 per axis: the
        summary (0, 0, 0), condition row i (i + 1, 0, 0), window (r, c) (0, r + 1, c + 1), in
        the objective's row order."""
        from mmgen.models.rope import sinusoidal_features

        c = self.config
        gh, gw = c.grid[0] // c.window, c.grid[1] // c.window
        t = torch.arange(1, c.condition_length + 1)
        r, col = torch.meshgrid(torch.arange(1, gh + 1), torch.arange(1, gw + 1), indexing="ij")
        text = torch.stack([t, torch.zeros_like(t), torch.zeros_like(t)], dim=1)  # (T, 3)
        windows = torch.stack([torch.zeros(gh * gw, dtype=torch.long), r.flatten(), col.flatten()],
                              dim=1)  # (W, 3)  # fmt: skip
        if c.objective == "caption":
            places = torch.cat([windows, text])  # (rows, 3)
        else:
            places = torch.cat([torch.zeros(1, 3, dtype=torch.long), text, windows])
        return torch.cat([sinusoidal_features(places[:, a], c.dim // 3) for a in range(3)], -1)

    def window_rows(self, codes_Bhw: torch.Tensor) -> torch.Tensor:
        """Codes (B, h, w) -> one row per s x s window (B, h/s * w/s, dim), raster order."""
        B, h, w = codes_Bhw.shape
        s = self.config.window
        e = self.code_embed(codes_Bhw)  # (B, h, w, dim/s^2)
        e = e.view(B, h // s, s, w // s, s, -1).permute(0, 1, 3, 2, 4, 5)  # (B, h/s, w/s, s, s, .)
        return self.window_proj(e.reshape(B, (h // s) * (w // s), -1))

    def forward(self, condition_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Scores (B,) of condition ids (B, T) and codes (B, h * w) or (B, h, w): match logits,
        or (``"caption"``) the prompts' log-likelihoods given the images."""
        if self.config.objective == "caption":
            return self.caption_log_probs(condition_ids, codes).sum(1)  # (B,)
        return self.out(self.norm(self.hidden(condition_ids, codes)[:, 0])).squeeze(-1)  # (B,)

    def caption_log_probs(self, condition_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(``"caption"``) log-probabilities (B, T - 1) of ids 1..T-1 given the image and the ids
        before each; 0 where the id is padding."""
        x = self.hidden(condition_ids, codes)  # (B, W + T, dim)
        logits = self.out(self.norm(x[:, self.num_windows : -1])).float()  # (B, T - 1, vocab)
        targets = condition_ids[:, 1:].long()  # (B, T - 1)
        log_probs = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
        return log_probs * (targets != self.config.pad_id)

    def hidden(self, condition_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The last block's output (B, L, dim) over the objective's rows."""
        c = self.config
        h, w = c.grid
        if codes.dim() == 2 and codes.shape[1] == h * w:
            codes = codes.view(-1, h, w)
        if condition_ids.shape[1] != c.condition_length or tuple(codes.shape[1:]) != c.grid:
            raise ValueError(
                f"the scorer reads conditions of {c.condition_length} ids and codes of "
                f"{c.grid}, got {tuple(condition_ids.shape)} and {tuple(codes.shape)}"
            )
        B, W = codes.shape[0], self.num_windows
        text, windows = self.condition_embed(condition_ids), self.window_rows(codes.long())
        if c.objective == "caption":
            x = torch.cat([windows, text], dim=1)  # (B, L, dim)
        else:
            x = torch.cat([self.summary.expand(B, -1, -1), text, windows], dim=1)
        x = x + self.position
        if c.fixed_positions:
            x = x + self.fixed_position.to(x.dtype)
        L, half = x.shape[1], c.dim // c.num_heads // 2
        cos = torch.ones(L, half, device=x.device, dtype=x.dtype)  # no rotation: learned rows
        sin = torch.zeros(L, half, device=x.device, dtype=x.dtype)
        kv_end = torch.full((L,), L, dtype=torch.int32, device=x.device)  # full attention
        if c.objective == "caption":  # windows see windows; condition row t sees up to itself
            kv_end[:W] = W
            kv_end[W:] = torch.arange(W + 1, L + 1, dtype=torch.int32, device=x.device)
        for block in self.blocks:
            x = block(x, cos, sin, kv_end)
        return x


def corrupt_condition_ids(
    ids_BT: torch.Tensor, special_ids: set[int], generator: torch.Generator
) -> torch.Tensor:
    """Each row with one word replaced by a different word seen at the same place in another
    prompt of the batch with as many words (a prompt of the same form: a colour for a colour,
    a count for a count). Only places where such prompts differ are picked, so words that
    never vary there ("a") are left alone; a row whose form no other prompt shares gets a
    random other word.

    Args:
        ids_BT: condition ids (B, T).
        special_ids: ids that are not words (padding, BOS, EOS, unknown): never picked or given.
        generator: the only source of randomness.

    Returns:
        (B, T) ids; rows without content ids are returned unchanged.
    """
    ids = ids_BT.clone()
    special = torch.tensor(sorted(special_ids), dtype=ids.dtype)
    content = ~torch.isin(ids_BT, special)  # (B, T)
    lengths = content.sum(1)  # (B,) words per prompt
    vocab = int(ids_BT.max()) + 1
    words = [i for i in range(vocab) if i not in special_ids]
    for b in range(ids.shape[0]):
        same_form = lengths == lengths[b]  # (B,)
        choices = {}  # place -> the other words seen there in prompts of the same form
        for t in content[b].nonzero().flatten().tolist():
            column = ids_BT[:, t][same_form & content[:, t]]
            others = column[column != ids_BT[b, t]].unique()
            if len(others):
                choices[t] = others
        if not choices:  # no prompt of the same form differs anywhere: any other word
            for t in content[b].nonzero().flatten().tolist():
                others = torch.tensor([w for w in words if w != int(ids_BT[b, t])], dtype=ids.dtype)
                if len(others):
                    choices[t] = others
        if not choices:
            continue
        places = sorted(choices)
        t = places[int(torch.randint(len(places), (1,), generator=generator))]
        ids[b, t] = choices[t][torch.randint(len(choices[t]), (1,), generator=generator)]
    return ids


def condition_id_map(tokenizer, config: MatchScorerConfig) -> torch.Tensor | None:
    """How a scorer reads the ids of a pipeline's condition ``tokenizer``: None when they are
    its own ids (the same vocabulary, or a scorer that records none and has as many ids), else
    (V,) int64: the scorer's id of each of the tokenizer's tokens, looked up by the token's
    text in ``config.condition_vocab`` (prompts are translated token for token, so both must
    split words alike: word-level vocabularies).

    Raises:
        ValueError: rows of another length, another vocabulary the scorer records none of, or
            tokens the scorer never saw (named).
    """
    if tokenizer.max_length != config.condition_length:
        raise ValueError(
            f"the scorer reads condition rows of {config.condition_length} ids; this "
            f"pipeline's tokenizer pads to {tokenizer.max_length}"
        )
    vocabulary = getattr(tokenizer, "vocabulary", None)
    if config.condition_vocab is None or tuple(vocabulary or ()) == config.condition_vocab:
        if tokenizer.vocab_size != config.condition_vocab_size:
            raise ValueError(
                f"the scorer reads {config.condition_vocab_size} condition ids; this "
                f"pipeline's tokenizer has {tokenizer.vocab_size}"
            )
        return None
    if vocabulary is None:
        raise ValueError(
            f"the scorer was trained on a learned vocabulary of {config.condition_vocab_size} "
            f"tokens; this pipeline's {type(tokenizer).__name__} has none to translate"
        )
    scorer_ids = {token: i for i, token in enumerate(config.condition_vocab)}
    unseen = [token for token in vocabulary if token not in scorer_ids]
    if unseen:
        raise ValueError(
            f"the scorer never saw {len(unseen)} of this pipeline's tokens: "
            f"{', '.join(map(repr, unseen[:10]))}"
        )
    return torch.tensor([scorer_ids[token] for token in vocabulary], dtype=torch.long)
