"""The loop every task eval shares: draw prompts, generate in batches, verify each output, and
report pass rates overall and by prompt group, with the sampling values used."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from mmgen.utils.config import to_dict
from mmgen.utils.serialization import write_json


def evaluate_prompts(
    pipe,
    sample_prompt: Callable[[torch.Generator], object],
    judge: Callable[[object, object], dict],
    *,
    groups: tuple[str, Sequence[str], str],
    num_prompts: int,
    seed: int,
    batch_size: int,
    outputs_of: Callable[[object], Sequence],
    desc: str,
    show_progress: bool = True,
    call_kwargs: dict | None = None,
    batch_kwargs: Callable[[list], dict] | None = None,
    **sampling,
) -> tuple[dict, list]:
    """Generate one output per random prompt and judge it.

    Prompts come from ``torch.Generator().manual_seed(seed)``, outputs from a second generator
    seeded with ``seed + 1`` that draws for every batch in turn (so the numbers depend on
    ``batch_size``: the CLIs' defaults are the ones to compare with).

    Args:
        pipe: the pipeline; called as ``pipe(texts, generator=..., show_progress=False,
            **call_kwargs, **sampling)``.
        sample_prompt: the task's prompt sampler (a prompt with ``.text``).
        judge: ``judge(prompt, output)`` -> the result dict of one output; it must hold
            ``passed`` and the group key.
        groups: (result key, group names in report order, report key): pass rates by group.
        num_prompts, seed, batch_size: as above.
        outputs_of: the pipeline output -> one output per prompt (``out.images``).
        desc: the progress bar's label.
        call_kwargs: other pipeline arguments (``num_frames``), not sampling knobs.
        batch_kwargs: ``batch_kwargs(prompts)`` -> pipeline arguments of one batch (given
            frames to continue, one clip per prompt).
        **sampling: sampling knobs; the report records them over the pipeline's defaults.

    Returns:
        (report, outputs): the report has ``overall``, the rates by group under the report
        key (None for a group no prompt was drawn from), ``counts``, ``num_prompts``,
        ``seed``, ``sampling`` and ``results``; outputs are in prompt order.
    """
    from tqdm.auto import tqdm

    if num_prompts < 1:
        raise ValueError(f"num_prompts must be >= 1, got {num_prompts}")
    prompt_gen = torch.Generator().manual_seed(seed)
    prompts = [sample_prompt(prompt_gen) for _ in range(num_prompts)]
    generator = torch.Generator().manual_seed(seed + 1)
    results, outputs = [], []
    for start in tqdm(range(0, num_prompts, batch_size), desc=desc, disable=not show_progress):
        batch = prompts[start : start + batch_size]
        per_batch = {} if batch_kwargs is None else batch_kwargs(batch)
        out = pipe([p.text for p in batch], generator=generator, show_progress=False,
                   **(call_kwargs or {}), **per_batch, **sampling)  # fmt: skip
        for prompt, output in zip(batch, outputs_of(out)):
            results.append(judge(prompt, output))
            outputs.append(output)
    key, names, report_key = groups
    rates, counts = {}, {}
    for name in names:
        rows = [r for r in results if r[key] == name]
        counts[name] = len(rows)
        rates[name] = sum(r["passed"] for r in rows) / len(rows) if rows else None
    report = {
        "overall": sum(r["passed"] for r in results) / len(results),
        report_key: rates,
        "counts": counts,
        "num_prompts": num_prompts,
        "seed": seed,
        "sampling": to_dict(pipe.resolve_sampling(**sampling)),  # the values used
        "results": results,
    }
    return report, outputs


def write_report(report: dict, out_dir: str | Path | None) -> Path | None:
    """``report.json`` in ``out_dir`` (created); None and nothing written without one."""
    if out_dir is None:
        return None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "report.json", report)
    return out_dir


def rates_table(report: dict, report_key: str, label: str) -> list[str]:
    """Lines of a small table: n and pass rate per group, then overall."""
    lines = [f"{label:<12} {'n':>5} {'pass rate':>10}"]
    for name, rate in report[report_key].items():
        shown = "-" if rate is None else f"{rate:.3f}"  # no prompt of this group was drawn
        lines.append(f"{name:<12} {report['counts'][name]:>5} {shown:>10}")
    lines.append(f"{'overall':<12} {report['num_prompts']:>5} {report['overall']:>10.3f}")
    return lines
