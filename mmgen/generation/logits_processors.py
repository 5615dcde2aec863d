"""Logits processors and sampling as small pure functions (gpt-fast style)."""

from __future__ import annotations

import torch


def check_sampling_args(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ValueError naming the argument when a sampling knob is out of range."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}")
    if not temperature >= 0 or temperature == float("inf"):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int, got {type(top_k).__name__}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 disables it), got {top_k}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
        raise TypeError(f"top_p must be a number, got {type(top_p).__name__}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def top_k_filter(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Keep the ``top_k`` largest logits per row (0 keeps all); the rest become -inf."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of tokens whose probability reaches ``top_p``."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # drop a token when the mass before it already reaches top_p
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
    # the most likely token always stays, also for a top_p that rounds to 0 in float32
    drop_sorted[..., 0] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def logits_to_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0
) -> torch.Tensor:
    """Temperature, then top-k, then top-p; returns probabilities over the last axis."""
    logits = logits.float() / max(temperature, 1e-5)
    logits = top_p_filter(top_k_filter(logits, top_k), top_p)
    return logits.softmax(dim=-1)


def sample(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Draw one token per row of (B, ..., V) logits; temperature 0 is greedy (argmax).

    Every random draw comes from ``generator``; a list of B generators (diffusers' one per
    image) draws batch row i from ``generator[i]`` alone, so image i does not depend on the
    others in the batch.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = logits_to_probs(logits, temperature, top_k, top_p)
    if isinstance(generator, (list, tuple)):
        if len(generator) != probs.shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {probs.shape[0]}")
        rows = [draw(row.reshape(-1, row.shape[-1]), g) for row, g in zip(probs, generator)]
        tokens = torch.stack(rows)
    else:
        tokens = draw(probs.reshape(-1, probs.shape[-1]), generator)
    return tokens.reshape(probs.shape[:-1]).to(logits.device)


def draw(probs_NV: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One multinomial draw per row of (N, V) probabilities -> (N, 1), made where the
    generator lives (so one seed gives the same tokens on every device)."""
    if generator is not None and generator.device != probs_NV.device:
        return torch.multinomial(probs_NV.to(generator.device), 1, generator=generator)
    return torch.multinomial(probs_NV, 1, generator=generator)
