"""One accelerate training loop for every task (tokenizer or generator)."""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from mmgen.training.accelerator import build_accelerator, is_fsdp
from mmgen.training.checkpoints import resolve_resume, save_checkpoint
from mmgen.training.config import RunConfig
from mmgen.training.ema import ema_weights
from mmgen.training.slots import draw_step_slots
from mmgen.training.stop import StopRequest
from mmgen.training.summary import keep_metrics_until, write_run_summary, write_validation_curve
from mmgen.utils.config import to_dict


class Task(Protocol):
    """What the loop needs from a task (see ``mmgen.training.tasks``)."""

    def build_model(self) -> nn.Module: ...
    def prepare_data(self, accelerator) -> int: ...  # returns the number of examples
    def get_batch(self, indices: torch.Tensor, device: torch.device) -> dict: ...
    def loss(self, model: nn.Module, batch: dict, generator: torch.Generator) -> tuple: ...
    def validate(self, model: nn.Module, step: int, output_dir: Path) -> dict: ...
    def export(self, model: nn.Module, folder: Path) -> dict: ...


class TrainState:
    """Step counter, the training generator and the run's wall time so far (every session
    of a resumed run), saved with every checkpoint."""

    def __init__(self, seed: int):
        self.step = 0
        self.generator = torch.Generator().manual_seed(seed)
        self.wall_before = 0.0  # seconds spent by the sessions before this one
        self.session_start = time.perf_counter()

    @property
    def wall_s(self) -> float:
        return self.wall_before + time.perf_counter() - self.session_start

    def state_dict(self) -> dict:
        return {"step": self.step, "generator": self.generator.get_state(), "wall_s": self.wall_s}

    def load_state_dict(self, state: dict) -> None:
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
        self.wall_before = float(state.get("wall_s", 0.0))  # checkpoints before wall_s: 0


def lr_lambda(schedule: str, warmup: int, total: int):
    def fn(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return fn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only; norms, biases and 1-D parameters are not decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def start_from_weights(model: nn.Module, source: str, accelerator) -> None:
    """``init_from``: copy the matching tensors of ``source`` into the fresh ``model``."""
    from mmgen.builtin import resolve_component_path
    from mmgen.utils.serialization import load_matching_weights

    report = load_matching_weights(model, resolve_component_path(source))
    kept = ", ".join(report["kept"][:6]) + (" ..." if len(report["kept"]) > 6 else "")
    accelerator.print(
        f"init_from {source}: {len(report['copied'])} tensors copied, "
        f"{len(report['kept'])} kept fresh{f' ({kept})' if kept else ''}, "
        f"{len(report['ignored'])} of the file unused"
    )


def train(config: RunConfig, task: Task, *, resume_from_checkpoint: str | None = None) -> dict:
    """Train ``task`` as described by ``config``; returns the final export's metrics."""
    if not config.training.deterministic:
        return _train(config, task, resume_from_checkpoint)
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)  # warn where an op has no such path
    try:
        return _train(config, task, resume_from_checkpoint)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])


@contextmanager
def single_process_model(accelerator, model: nn.Module, ema, task: Task):
    """The model one process validates and exports, in eval mode: on the main process the
    unwrapped model with the EMA weights swapped in, or under FSDP a fresh copy holding the
    gathered full weights; None on the other processes. Every process must enter it (FSDP
    gathers the shards collectively)."""
    if is_fsdp(accelerator):
        weights = accelerator.get_state_dict(model)  # the full state on the main process
        if not accelerator.is_main_process:
            yield None
            return
        with torch.random.fork_rng():  # a fresh module's init draws nothing from the run
            copy = task.build_model()
        copy.load_state_dict(weights)
        yield copy.eval()
        return
    if not accelerator.is_main_process:
        yield None
        return
    model.eval()
    try:
        with ema_weights(ema, model):
            yield accelerator.unwrap_model(model, keep_torch_compile=False)
    finally:
        model.train()


def _train(config: RunConfig, task: Task, resume_from_checkpoint: str | None) -> dict:
    from accelerate.utils import ProjectConfiguration
    from tqdm.auto import tqdm

    tc = config.training
    output_dir = Path(config.output_dir)
    state = TrainState(config.seed)  # its clock counts data preparation and compilation too
    accelerator = build_accelerator(
        mixed_precision=tc.mixed_precision,
        gradient_accumulation_steps=tc.gradient_accumulation_steps,
        log_with=config.report_to,
        dynamo_backend="inductor" if tc.compile else "no",
        project_config=ProjectConfiguration(
            project_dir=str(output_dir), logging_dir=str(output_dir / "logs")
        ),
    )
    if tc.ema_decay > 0 and is_fsdp(accelerator):
        raise ValueError("training.ema_decay > 0 is not supported with FSDP (the weights are "
                         "sharded); set training.ema_decay: 0 or train without FSDP")  # fmt: skip
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        import yaml

        (output_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
    num_examples = task.prepare_data(accelerator)  # first: a text vocabulary sizes the model
    with torch.random.fork_rng():  # model init is seeded without touching global state
        torch.manual_seed(config.seed)
        model = task.build_model()
    if config.init_from and resume_from_checkpoint is None:
        start_from_weights(model, config.init_from, accelerator)
    optimizer = torch.optim.AdamW(
        param_groups(model, tc.weight_decay),
        lr=tc.learning_rate,
        betas=(tc.adam_beta1, tc.adam_beta2),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(tc.lr_schedule, tc.warmup_steps, tc.max_steps)
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    accelerator.register_for_checkpointing(state)
    ema = None
    if tc.ema_decay > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=tc.ema_decay)
        accelerator.register_for_checkpointing(ema)
    resume = resolve_resume(output_dir, resume_from_checkpoint)
    if resume is not None:
        accelerator.load_state(str(resume))
        accelerator.print(f"resumed from {resume} at step {state.step}")
    elif resume_from_checkpoint == "latest":  # diffusers' scripts say so too
        accelerator.print(
            f"resume_from_checkpoint latest: no checkpoint in {output_dir / 'checkpoints'}, "
            "starting a new run"
        )
    if config.report_to:
        accelerator.init_trackers("mmgen", config={"task": config.task, "seed": config.seed})

    world, rank = accelerator.num_processes, accelerator.process_index
    accumulation = tc.gradient_accumulation_steps
    metrics_path = output_dir / "logs" / "metrics.jsonl"
    validations_path = output_dir / "logs" / "validations.jsonl"
    if accelerator.is_main_process:  # steps past the checkpoint are about to be run again
        keep_metrics_until(metrics_path, state.step)
        keep_metrics_until(validations_path, state.step)
    bar = tqdm(
        total=tc.max_steps,
        initial=state.step,
        desc=f"train {config.task}",
        disable=not accelerator.is_main_process,
    )
    window_loss, window_micro, window_items, window_tokens = 0.0, 0, 0, 0
    window_start = time.perf_counter()
    stop = StopRequest(accelerator)
    model.train()
    try:  # SIGTERM goes back to its previous handler however the loop ends
        while state.step < tc.max_steps:
            slots = draw_step_slots(
                state.generator, num_examples, tc.batch_size, accumulation, world
            )
            for micro in range(accumulation):
                with accelerator.accumulate(model):
                    indices, generator = slots[micro * world + rank]
                    batch = task.get_batch(indices, accelerator.device)
                    loss, stats = task.loss(model, batch, generator)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and tc.max_grad_norm > 0:
                        accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                window_loss += loss.detach()  # no host sync per step; read at log steps
                window_micro += 1
                window_items += len(indices)
                window_tokens += stats.get("tokens", 0)
            if ema is not None:
                ema.step(model.parameters())
            state.step += 1
            bar.update(1)
            if state.step % tc.log_steps == 0 or state.step == tc.max_steps:
                elapsed = time.perf_counter() - window_start
                # mean over every micro-batch of every process
                loss_sum = accelerator.reduce(
                    torch.as_tensor(window_loss, device=accelerator.device).float(), "sum"
                )
                record = {
                    "step": state.step,
                    "loss": float(loss_sum) / (window_micro * world),
                    "lr": scheduler.get_last_lr()[0],
                    "samples_per_s": window_items * world / elapsed,
                    "tokens_per_s": window_tokens * world / elapsed,
                    "num_processes": world,
                    **{k: v for k, v in stats.items() if k != "tokens"},
                }
                bar.set_postfix(loss=f"{record['loss']:.4f}")
                accelerator.log(record, step=state.step)
                if accelerator.is_main_process:
                    with open(metrics_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                window_loss, window_micro, window_items, window_tokens = 0.0, 0, 0, 0
                window_start = time.perf_counter()
            stopping = stop.requested()
            if state.step % tc.checkpointing_steps == 0 or state.step == tc.max_steps or stopping:
                save_checkpoint(accelerator, output_dir, state.step, tc.checkpoints_total_limit)
            if stopping:
                bar.close()
                accelerator.print(f"stopped by SIGTERM at step {state.step}; checkpoint saved")
                accelerator.end_training()
                return {"stopped_at_step": state.step}
            if state.step % tc.validation_steps == 0 or state.step == tc.max_steps:
                with single_process_model(accelerator, model, ema, task) as plain:
                    stats = None if plain is None else task.validate(plain, state.step, output_dir)
                if stats:
                    accelerator.log(stats, step=state.step)
                    bar.write(
                        f"step {state.step}: " + ", ".join(f"{k}={v}" for k, v in stats.items())
                    )
                    record = {"step": state.step, "wall_s": round(state.wall_s, 1), **stats}
                    with open(validations_path, "a") as handle:
                        handle.write(json.dumps(record) + "\n")
                    write_validation_curve(output_dir)
        bar.close()
    finally:
        stop.release()
    result = {}
    with single_process_model(accelerator, model, ema, task) as plain:
        if plain is not None:
            result = task.export(plain, output_dir / "final")
            accelerator.print(f"saved {output_dir / 'final'}")
            write_run_summary(output_dir)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result
