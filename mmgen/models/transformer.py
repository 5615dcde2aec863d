"""The shared decoder transformer: condition embedding, an input adapter, decoder blocks, a head.

The backbone (rotary positions, decoder blocks, final norm) maps (B, L, D) embeddings to hidden
states. Around it sit three plug-ins chosen by config: the condition embedding (prompt bytes or
class ids), the input adapter of the generated rows (``mmgen.models.inputs``) and the head
(``mmgen.models.heads``). Orders (``mmgen.orders``) say what each row is fed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmgen.models.attention import check_attention_backend
from mmgen.models.blocks import DecoderBlock
from mmgen.models.heads import build_head
from mmgen.models.inputs import build_input
from mmgen.models.kv_cache import KVCache
from mmgen.models.rope import ROPE_KINDS, RotaryEmbedding
from mmgen.utils.config import ConfigError


@dataclass(kw_only=True)
class TransformerConfig:
    """Architecture of :class:`ARTransformer`.

    Args:
        condition_vocab_size: ids of the condition segment (text bytes and specials, or class
            labels and the null class).
        input: the input adapter of the generated rows, ``{"kind": ..., **options}`` (see
            ``mmgen.models.inputs.INPUT_KINDS``); the order that trains the model sets it.
        head: the head, ``{"kind": ..., **options}`` (``mmgen.models.heads.HEAD_KINDS``).
        dim: model width D.
        num_layers: decoder blocks.
        num_heads: query heads H; ``dim`` must divide by it.
        num_kv_heads: key/value heads (GQA); None means ``num_heads``.
        mlp_ratio: SwiGLU hidden width as a multiple of ``dim`` (rounded up to 32).
        qk_norm: RMS-normalise queries and keys per head.
        rope: rotary layout, one of ``ROPE_KINDS``.
        rope_base: rotary base frequency.
        norm_eps: RMSNorm epsilon.
        attention_backend: one of ``mmgen.models.attention.ATTENTION_BACKENDS``.
    """

    condition_vocab_size: int
    input: dict[str, Any]
    head: dict[str, Any]
    dim: int = 256
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int | None = None
    mlp_ratio: float = 8 / 3
    qk_norm: bool = True
    rope: str = "2d"
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    attention_backend: str = "sdpa"

    def __post_init__(self):
        for name in ("condition_vocab_size", "dim", "num_layers", "num_heads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} is not divisible by num_kv_heads {self.kv_heads}"
            )
        if self.rope not in ROPE_KINDS:
            raise ValueError(f"rope must be one of {list(ROPE_KINDS)}, got {self.rope!r}")
        check_attention_backend(self.attention_backend)

    @property
    def kv_heads(self) -> int:
        return self.num_kv_heads or self.num_heads

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        return 32 * math.ceil(self.mlp_ratio * self.dim / 32)


TRANSFORMER_PRESETS: dict[str, dict] = {
    "debug": dict(dim=32, num_layers=2, num_heads=2, rope="2d"),
    "tiny": dict(dim=128, num_layers=4, num_heads=4, rope="2d"),
    "small": dict(dim=256, num_layers=6, num_heads=8, rope="2d"),
    "base": dict(dim=512, num_layers=12, num_heads=8, rope="2d"),
}


def transformer_config_from_preset(preset: str, **overrides) -> TransformerConfig:
    """A named architecture (``TRANSFORMER_PRESETS``) with fields overridden."""
    if preset not in TRANSFORMER_PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {list(TRANSFORMER_PRESETS)}")
    return TransformerConfig(**{**TRANSFORMER_PRESETS[preset], **overrides})


def upgrade_legacy_checkpoint(config: dict, state: dict) -> tuple[dict, dict]:
    """Folders written before the plug-ins (one ``embed`` table of text + codes + start, a bare
    ``head`` Linear) -> today's keys; the same numbers, so outputs stay bit-identical."""
    if "condition_vocab_size" in config or "vocab_size" not in config:
        return config, state
    config = dict(config)
    vocab, codes = config.pop("vocab_size"), config.pop("num_codes")
    text_vocab = vocab - codes - 1
    config.update(
        condition_vocab_size=text_vocab,
        input={"kind": "token", "num_codes": codes},
        head={"kind": "categorical", "num_codes": codes},
    )
    state = dict(state)
    table = state.pop("embed.weight")  # (text + codes + start, D)
    state["condition_embed.weight"] = table[:text_vocab].clone()
    state["inputs.embed.weight"] = table[text_vocab:].clone()
    state["head.proj.weight"] = state.pop("head.weight")
    return config, state


def head_spec(head: dict, input_spec: dict) -> dict:
    """The head's build options: ``reads_inputs: true`` becomes ``input_channels``, the input
    adapter's ``in_channels`` (a flow head that also reads each row's backbone input).

    Raises:
        ConfigError: when ``reads_inputs`` is set over an input adapter without channels.
    """
    options = dict(head)
    if not options.pop("reads_inputs", False):
        return options
    if "in_channels" not in input_spec:
        raise ConfigError(f"head reads_inputs needs a latent input adapter, got {input_spec!r}")
    options["input_channels"] = input_spec["in_channels"]
    return options


class ARTransformer(nn.Module):
    """Decoder-only transformer over group-causal sequences.

    The mask is described by ``kv_end`` (row i attends keys ``[0, kv_end[i])``) and every token
    carries a 3-D position (t, h, w) for rotary embeddings.
    """

    config_class = TransformerConfig
    upgrade_checkpoint = staticmethod(upgrade_legacy_checkpoint)

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        c = config
        self.condition_embed = nn.Embedding(c.condition_vocab_size, c.dim)
        self.inputs = build_input(c.input, c.dim)
        self.rope = RotaryEmbedding(c.head_dim, kind=c.rope, base=c.rope_base)
        self.blocks = nn.ModuleList(
            DecoderBlock(
                c.dim,
                c.num_heads,
                c.kv_heads,
                c.hidden_dim,
                qk_norm=c.qk_norm,
                norm_eps=c.norm_eps,
                backend=c.attention_backend,
            )
            for _ in range(c.num_layers)
        )
        self.norm = nn.RMSNorm(c.dim, eps=c.norm_eps)
        self.head = build_head(head_spec(c.head, c.input), c.dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 0.02
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
        # GPT-2 style: residual output projections shrink with depth
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=std / math.sqrt(2 * len(self.blocks)))
            nn.init.normal_(block.mlp.w2.weight, std=std / math.sqrt(2 * len(self.blocks)))
        if hasattr(self.head, "zero_init"):
            self.head.zero_init()

    @property
    def device(self) -> torch.device:
        return self.condition_embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.condition_embed.weight.dtype

    @property
    def uses_flat_positions(self) -> bool:
        """1-D RoPE reads only t, so sequences give every token t = h = w = its index."""
        return self.config.rope == "1d"

    def make_caches(self, batch_size: int, max_length: int) -> list[KVCache]:
        """One preallocated KV cache per layer."""
        c = self.config
        return [
            KVCache(
                batch_size, c.kv_heads, max_length, c.head_dim, dtype=self.dtype, device=self.device
            )
            for _ in range(c.num_layers)
        ]

    def forward(
        self,
        positions: torch.Tensor,
        kv_end: torch.Tensor | None,
        *,
        condition_ids: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        caches: list[KVCache] | None = None,
        start: int | torch.Tensor = 0,
        targets: torch.Tensor | None = None,
        draws: dict[str, torch.Tensor] | None = None,
        attention_bias: torch.Tensor | None = None,
        target_rows: torch.Tensor | None = None,
        row_weights: torch.Tensor | None = None,
        extra_sequences: dict | None = None,
    ) -> torch.Tensor:
        """Hidden states of a chunk of rows ``[start, start + L)``, or the head's training loss.

        Args:
            positions: (L, 3) or (B, L, 3) (t, h, w) positions of the chunk.
            kv_end: (L,) or (B, L) absolute key prefix ends (``start`` included), or None for
                plain causal attention (SDPA keeps its flash path under ``torch.compile``);
                not with the static-shape decode step, whose cache tail kv_end must mask.
            condition_ids: (B, T) condition ids; the chunk's first T rows.
            inputs: what the input adapter embeds for the generated rows that follow (ids
                (B, n), latents (B, n, C), windows (B, n, s^2)).
            caches: per-layer KV caches; keys of this chunk are written at ``start``.
            start: absolute index of the chunk's first row (a 0-d tensor for the static-shape
                decode step, see ``KVCache.update``).
            targets: when given, return ``head.loss`` of the input rows' hidden states against
                them (inside ``forward``, so DDP and ``torch.compile`` wrap the whole step).
            draws: the head's ``training_draws(targets, generator)`` (a flow head's noise and
                times), drawn outside so that no generator enters the compiled graph.
            attention_bias: an additive score bias on allowed pairs, (L, Lk) or (B, L, Lk) with
                Lk the keys attended (``start + L`` against a cache): FlexRoPE's frame-distance
                decay (``mmgen.models.rope.flexrope_bias``) and -inf on pairs an order's mask
                excludes (``SequenceLayout.attention_bias``); None is plain RoPE.
            target_rows: with ``targets``, the indices among the input rows that have them
                (``SequenceLayout.target_index``: a long-context order's context-only rows
                have none); None is every input row.
            row_weights: with ``targets``, (n_targets,) weights of the rows in the head's
                loss (``training.group_loss_power``); None weighs every target alike.
            extra_sequences: with ``targets``, the keyword arguments of this call for a second
                batch of sequences of another length (``training.first_frame_batch``'s
                one-frame sequences), whose loss is added: one forward, so DDP and
                ``torch.compile`` still wrap the whole step.

        Returns:
            (B, L, D) hidden states after the final norm, or a scalar loss.
        """
        if kv_end is None and isinstance(start, torch.Tensor):
            raise ValueError("the static-shape decode step needs an explicit kv_end")
        parts = []
        if condition_ids is not None:
            parts.append(self.condition_embed(condition_ids))  # (B, T, D)
        if inputs is not None:
            parts.append(self.inputs(inputs))  # (B, n, D)
        if not parts:
            raise ValueError("forward needs condition_ids, inputs or both")
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (B, L, D)
        cos, sin = self.rope.cos_sin(positions)  # (L, Dh/2) or (B, L, Dh/2)
        for i, block in enumerate(self.blocks):
            cache = caches[i] if caches is not None else None
            x = block(x, cos, sin, kv_end, cache, start, attention_bias)
        x = self.norm(x)
        if targets is None:
            return x
        n = parts[-1].shape[1] if inputs is not None else 0
        hidden = x[:, x.shape[1] - n :]  # (B, n, D): the input rows
        if target_rows is not None:
            hidden = hidden.index_select(1, target_rows)  # (B, n_targets, D)
        options = {} if row_weights is None else {"row_weights": row_weights}
        if getattr(self.head, "input_channels", 0):  # a head that reads the rows' inputs
            fed = inputs if target_rows is None else inputs.index_select(1, target_rows)
            options["inputs"] = fed  # (B, n_targets, I)
        loss = self.head.loss(hidden, targets, draws, **options)
        if extra_sequences is not None:
            loss = loss + self.forward(**extra_sequences)
        return loss

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_attention_backend(self, backend: str) -> None:
        """Switch every attention layer to ``backend`` (raises if it is unavailable)."""
        check_attention_backend(backend)
        self.config = dataclasses.replace(self.config, attention_backend=backend)
        for block in self.blocks:
            block.attn.backend = backend
