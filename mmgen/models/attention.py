"""One dispatch point for group-causal attention backends, and kv_end from group ids."""

from __future__ import annotations

import torch

ATTENTION_BACKENDS = ("sdpa", "flex", "triton", "xformers")
# what each backend needs installed (checked when a model selects it)
_REQUIRES = {
    "flex": "torch.nn.attention.flex_attention",
    "triton": "triton",
    "xformers": "xformers",
}


def check_attention_backend(name: str) -> str:
    """Validate a backend name; one whose package is missing raises a clear error."""
    import importlib.util

    if name not in ATTENTION_BACKENDS:
        raise ValueError(
            f"unknown attention_backend {name!r}; choose one of {list(ATTENTION_BACKENDS)}"
        )
    module = _REQUIRES.get(name)
    if module is not None:
        top = module.split(".")[0]
        found = importlib.util.find_spec(top) is not None
        if found and "." in module:
            try:
                found = importlib.util.find_spec(module) is not None
            except ModuleNotFoundError:
                found = False
        if not found:
            raise RuntimeError(
                f"attention_backend {name!r} needs {module}, which is not installed"
                + (" (pip install 'mmgen[xformers]')" if name == "xformers" else "")
            )
    return name


def group_causal_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kv_end: torch.Tensor | None,
    *,
    bias: torch.Tensor | None = None,
    backend: str = "sdpa",
) -> torch.Tensor:
    """Attention where query row i sees keys ``[0, kv_end[i])``.

    Args:
        q: (B, H, Lq, D); k, v: (B, Hkv, Lk, D).
        kv_end: (Lq,) or (B, Lq) int, absolute key indices; None for plain causal attention
            (bottom-right aligned): SDPA then uses ``is_causal`` (its flash path) even under
            ``torch.compile``, the other backends get :func:`mmgen.kernels.causal_kv_end`.
        bias: optional additive bias on allowed pairs, (Lq, Lk) or (B, Lq, Lk).
        backend: one of ``ATTENTION_BACKENDS``: ``sdpa`` (dense mask, or ``is_causal`` when the
            mask is plain causal), ``flex`` (BlockMask), ``triton`` (our fused kernel; CUDA),
            ``xformers`` (CUDA).
    """
    import mmgen.kernels as kernels

    implementation = {
        "sdpa": kernels.group_causal_attention_sdpa,
        "flex": kernels.group_causal_attention_flex,
        "triton": kernels.group_causal_attention,
        "xformers": kernels.group_causal_attention_xformers,
    }.get(backend)
    if implementation is None:
        check_attention_backend(backend)  # raises the unknown-name error
    if kv_end is None and backend != "sdpa":
        kv_end = kernels.causal_kv_end(q.shape[-2], k.shape[-2], q.device)
    return implementation(q, k, v, kv_end, bias)


def kv_end_from_group_ids(group_ids: torch.Tensor) -> torch.Tensor:
    """One past the last index of each row's group: the key prefix each row may attend.

    Args:
        group_ids: (L,) non-decreasing integer group ids.

    Returns:
        (L,) int32 ``kv_end``.
    """
    if group_ids.dim() != 1:
        raise ValueError(f"group_ids must be 1-D, got shape {tuple(group_ids.shape)}")
    if group_ids.numel() > 1 and bool((group_ids[1:] < group_ids[:-1]).any()):
        raise ValueError("group_ids must be non-decreasing along the sequence")
    return torch.searchsorted(group_ids, group_ids, right=True).to(torch.int32)
