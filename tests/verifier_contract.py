"""The contract every built-in task's verifier is held to (``DATASETS.md``): it passes at least
99% of ground-truth renders and rejects at least 99% of renders paired with another prompt."""

import torch


def ground_truth_failures(pairs, verify) -> list[tuple[str, str]]:
    """(prompt, reason) of every ground-truth (prompt, render) pair the verifier fails."""
    return [(p.text, v.reason) for p, render in pairs for v in [verify(render, p)] if not v.passed]


def accepted_mismatches(pairs, sample_prompt, verify, seed: int = 77) -> list[tuple[str, str]]:
    """(true prompt, other prompt) of every render the verifier accepts for a different random
    prompt (drawn from ``sample_prompt`` with a generator seeded ``seed``)."""
    g = torch.Generator().manual_seed(seed)
    accepted = []
    for prompt, render in pairs:
        other = sample_prompt(g)
        while other.text == prompt.text:
            other = sample_prompt(g)
        if verify(render, other).passed:
            accepted.append((prompt.text, other.text))
    return accepted
