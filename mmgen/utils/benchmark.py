"""Helpers the benchmark scripts in ``tools/`` share (torch at import; mmgen where used)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

#: relative error allowed against fp32 math SDPA, by the dtype the attention ran in
ATTENTION_TOLERANCE = {torch.bfloat16: 2e-2, torch.float16: 2e-2, torch.float32: 1e-4}


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``||value - reference|| / ||reference||``, computed in float32."""
    return ((value.float() - reference.float()).norm() / reference.float().norm()).item()


def matmul_peak_tflops(
    device: torch.device, dtype: torch.dtype, measure_ms: Callable[[Callable], float]
) -> float:
    """TFLOP/s of one large square matmul (8192 on CUDA, 256 elsewhere) in ``dtype``, timed by
    ``measure_ms(fn) -> milliseconds``: the peak a benchmark's utilisation is measured against
    in the same run (datasheet figures assume clocks and power a given card may not reach)."""
    n = 8192 if device.type == "cuda" else 256
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / (measure_ms(lambda: a @ b) * 1e-3) / 1e12


def median_seconds(
    fn: Callable[[], object], device: torch.device | str, repeats: int = 3, warmup: int = 1
) -> float:
    """Median wall seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed ones; on a CUDA
    ``device`` the clock is read only after the device has finished (``torch.cuda.synchronize``).
    A whole call timed (a pipeline, a training step), so a slow outlier does not move it."""
    on_cuda = torch.device(device).type == "cuda"
    times = []
    for i in range(warmup + repeats):
        if on_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if on_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if i >= warmup:
            times.append(elapsed)
    return statistics.median(times)


def recipe_task(recipe: str):
    """The training task of a recipe (a path or a shipped recipe's name), its tokenizer loaded
    and its model configured without the training data: a learned text vocabulary is stood in
    for by one trained on 2,000 sampled shapes prompts (its size, not its words, sets the cost)."""
    from mmgen.training.config import load_run_config
    from mmgen.training.tasks import build_task

    task = build_task(load_run_config(recipe))
    if task.condition_tokenizer is None:
        from mmgen.data.shapes import sample_prompt

        gen = torch.Generator().manual_seed(0)
        task.learn_text_tokenizer([sample_prompt(gen).text for _ in range(2000)])
    return task


def training_step_speed(
    task, *, steps: int = 4, amp_dtype: torch.dtype | None = None, compile: bool | None = None
) -> dict:
    """Speed of a recipe task's own training step on the CPU: its loss on one batch of the
    recipe's size (random codes or latents and condition ids: the speed does not depend on
    them), backward, gradient clipping and an AdamW step, under ``amp_dtype`` autocast (None:
    float32), compiled when ``compile`` (default: as the recipe says); timed over ``steps``
    after two warm-up steps.

    Returns:
        ``samples_per_s``, ``rows_per_s`` (sequence rows the backbone sees), ``step_s`` and
        ``first_step_s`` (compilation included), ``parameters``.
    """
    tc = task.config.training
    torch.manual_seed(0)
    model = task.build_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate)
    forward = torch.compile(model) if (tc.compile if compile is None else compile) else model
    gen = torch.Generator().manual_seed(0)
    token_layout = task.order.token_layout
    B, N = tc.batch_size, token_layout.num_tokens
    if token_layout.is_continuous:
        task.codes = torch.randn(token_layout.token_shape(B), generator=gen)
    else:
        task.codes = torch.randint(0, token_layout.codebook_size, (B, N), generator=gen)
    T = task.condition_tokenizer.max_length
    task.condition_ids = torch.randint(
        0, task.condition_tokenizer.vocab_size, (B, T), generator=gen
    )
    batch = task.get_batch(torch.arange(B), torch.device("cpu"))

    def step():
        with torch.autocast("cpu", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss, _ = task.loss(forward, batch, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    return {
        "samples_per_s": B / seconds,
        "rows_per_s": B * task.layout.length / seconds,
        "step_s": seconds,
        "first_step_s": first,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
