"""The shared decoder transformer: token embedding, decoder blocks, categorical head."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from mmgen.models.attention import check_attention_backend
from mmgen.models.blocks import DecoderBlock
from mmgen.models.kv_cache import KVCache
from mmgen.models.rope import ROPE_KINDS, RotaryEmbedding


@dataclass(kw_only=True)
class TransformerConfig:
    """Architecture of :class:`ARTransformer`.

    Args:
        vocab_size: input token ids (text bytes, specials and image codes share one table).
        num_codes: outputs of the categorical head (the image codebook size).
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

    vocab_size: int
    num_codes: int
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
        for name in ("vocab_size", "num_codes", "dim", "num_layers", "num_heads"):
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


class ARTransformer(nn.Module):
    """Decoder-only transformer over group-causal sequences.

    The mask is described by ``kv_end`` (row i attends keys ``[0, kv_end[i])``) and every token
    carries a 3-D position (t, h, w) for rotary embeddings.
    """

    config_class = TransformerConfig

    def __init__(self, config: TransformerConfig):
        super().__init__()
        self.config = config
        c = config
        self.embed = nn.Embedding(c.vocab_size, c.dim)
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
        self.head = nn.Linear(c.dim, c.num_codes, bias=False)
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
        nn.init.zeros_(self.head.weight)

    @property
    def device(self) -> torch.device:
        return self.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed.weight.dtype

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
        input_ids: torch.Tensor,
        positions: torch.Tensor,
        kv_end: torch.Tensor | None,
        *,
        caches: list[KVCache] | None = None,
        start: int | torch.Tensor = 0,
        logits_from: int | None = None,
    ) -> torch.Tensor:
        """Hidden states after the final norm, or logits of rows ``[logits_from, L)``.

        Args:
            input_ids: (B, L) token ids.
            positions: (L, 3) or (B, L, 3) integer (t, h, w) positions.
            kv_end: (L,) or (B, L) absolute key prefix ends (``start`` included), or None for
                plain causal attention (SDPA keeps its flash path under ``torch.compile``);
                not with the static-shape decode step, whose cache tail kv_end must mask.
            caches: per-layer KV caches; keys of this chunk are written at ``start``.
            start: absolute index of the first token of this chunk (a 0-d tensor for the
                static-shape decode step, see ``KVCache.update``).
            logits_from: when given, apply the head to rows ``[logits_from, L)`` and return
                their logits (training uses this so wrapped models need no ``.head`` access).

        Returns:
            (B, L, D) hidden states, or (B, L - logits_from, num_codes) logits.
        """
        if kv_end is None and isinstance(start, torch.Tensor):
            raise ValueError("the static-shape decode step needs an explicit kv_end")
        x = self.embed(input_ids)  # (B, L, D)
        cos, sin = self.rope.cos_sin(positions)  # (L, Dh/2) or (B, L, Dh/2)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, kv_end, caches[i] if caches is not None else None, start)
        x = self.norm(x)
        return x if logits_from is None else self.head(x[:, logits_from:])

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def set_attention_backend(self, backend: str) -> None:
        """Switch every attention layer to ``backend`` (raises if it is unavailable)."""
        check_attention_backend(backend)
        self.config = dataclasses.replace(self.config, attention_backend=backend)
        for block in self.blocks:
            block.attn.backend = backend
