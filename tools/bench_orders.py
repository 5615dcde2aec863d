"""Generation orders side by side on ``shapes``: quality, generation speed, training speed.

Each order is trained by its recipe in ``configs/orders/`` (same transformer, data, batch and
steps), then measured here, in one run on one machine:

* pass rate: ``mmgen eval shapes`` at the pipeline's default sampling (400 prompts, seed 0);
* backbone calls per image (prefill + one per group), counted with a forward hook;
* seconds to generate 16 images in one batch: the median of three timed calls after an untimed
  one of the same batch;
* training speed of the recipe's own training step, measured in this run (so every order is
  timed on the same machine state): samples/s and tokens/s counted over the 16 x 16 image grid
  every order draws (256 tokens per image, whatever the order feeds the backbone);
* the training run's wall time and samples/s from its ``logs/metrics.jsonl`` (validation and
  checkpoints included; whatever else the machine ran meanwhile slowed it).

Targets (issue 11): next-scale (as VAR, and with ``window: 2``: 2x2 windows of each scale per
row) generates >= 5x faster than next-token with a pass rate within 0.05; token-shuffle s=2
generates >= 2.5x faster, trains >= 2x faster, pass rate within 0.05.
The continuous next-scale (FlowAR, also ``_window``: 2x2 windows of latents per row) and
next-frequency (NFIG) rows (issue 14) follow the same budget; for orders with a flow head,
``--flow-steps`` also measures pass rate and seconds per image at several Euler step counts.
Exits 1 when a target is missed or a run is missing.

    mmgen train model --config configs/orders/next_token.yaml   # and every other order
    python tools/bench_orders.py --runs runs/orders
    python tools/bench_orders.py --orders next_token continuous_next_scale --json b.json
                                                # measure some rows; rows already in the
                                                # JSON file are kept
    python tools/bench_orders.py --untrained    # generation speed only, freshly initialised
                                                # models of the recipes (speed does not
                                                # depend on the weights)
    python tools/bench_orders.py --untrained --device cuda   # the same on a GPU
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

ORDERS = (
    "next_token",
    "next_scale",
    "next_scale_window",
    "token_shuffle",
    "continuous_next_scale",
    "continuous_next_scale_window",
    "next_frequency",
)
#: (row, generation speed-up target, training speed-up target or None): issue 11
TARGETS = (("next_scale", 5.0, None), ("next_scale_window", 5.0, None), ("token_shuffle", 2.5, 2.0))
GRID_TOKENS = 16 * 16  # the image grid of the next-token baseline


def training_speed(run: Path) -> dict:
    """samples/s and wall seconds of a finished run, from its metrics.jsonl."""
    from mmgen.training.summary import read_metrics
    from mmgen.utils.config import load_yaml

    records = read_metrics(run)
    if not records:
        raise FileNotFoundError(f"{run}/logs/metrics.jsonl: no training records")
    batch = load_yaml(run / "final" / "training_config.yaml")["training"]["batch_size"]
    wall, previous = 0.0, 0
    for r in records:  # each record covers the steps since the previous one
        wall += (r["step"] - previous) * batch / r["samples_per_s"]
        previous = r["step"]
    samples = previous * batch
    return {"steps": previous, "samples": samples, "wall_s": wall, "samples_per_s": samples / wall}


def generation_speed(pipe, num_images: int, repeats: int = 3) -> tuple[int, float]:
    """(backbone calls for one image, seconds for ``num_images`` images in one batch: the median
    of ``repeats`` timed calls after one untimed call of the same batch)."""
    pipe.set_progress_bar_config(disable=True)  # time generation, not the bar
    calls = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a: calls.append(1))
    pipe("a red circle", generator=torch.Generator().manual_seed(0))
    hook.remove()
    from mmgen.utils.benchmark import median_seconds

    prompts = ["a red circle to the left of a blue square"] * num_images
    seconds = median_seconds(  # the untimed first call warms this batch size up
        lambda: pipe(prompts, generator=torch.Generator().manual_seed(0)), pipe.device, repeats
    )
    return len(calls), seconds


def flow_steps_sweep(pipe, steps: list[int], num_prompts: int, seed: int, num_images: int):
    """Pass rate and seconds per image of a flow-head pipeline at each Euler step count."""
    from mmgen.eval.shapes_eval import evaluate_shapes

    default = pipe.sampling
    out = []
    try:
        for n in steps:
            pipe.sampling = replace(default, num_inference_steps=n)
            _, seconds = generation_speed(pipe, num_images)
            report = evaluate_shapes(pipe, num_prompts=num_prompts, seed=seed,
                                     show_progress=False)  # fmt: skip
            out.append({"steps": n, "pass_rate": report["overall"],
                        "s_per_image": seconds / num_images})  # fmt: skip
            print(f"  {n:3d} flow steps: pass rate {report['overall']:.3f}, "
                  f"{seconds / num_images:.3f} s / image")  # fmt: skip
    finally:
        pipe.sampling = default
    return out


def measure(
    run: Path, num_prompts: int, seed: int, num_images: int, flow_steps=(), device: str = "cpu"
) -> dict:
    from mmgen import TextToImagePipeline
    from mmgen.eval.shapes_eval import evaluate_shapes

    pipe = TextToImagePipeline.from_pretrained(run / "final", device=device)
    calls, seconds = generation_speed(pipe, num_images)
    measured = training_step_speed(run.name)  # the run folder is named after its recipe
    report = evaluate_shapes(pipe, num_prompts=num_prompts, seed=seed, show_progress=False)
    sweep = None
    from mmgen.models.flow_heads import FlowHead

    if flow_steps and isinstance(pipe.transformer.head, FlowHead):
        sweep = flow_steps_sweep(pipe, list(flow_steps), num_prompts, seed, num_images)
    return {
        "order": pipe.order.config(),
        "parameters": pipe.transformer.num_parameters(),
        "pass_rate": report["overall"],
        "families": report["families"],
        "calls_per_image": calls,
        "generate_s": seconds,
        "step_samples_per_s": measured,
        "flow_steps": sweep,
        **training_speed(run),
    }


def order_task(order: str):
    """The training task of the order's recipe in configs/orders/ (its tokenizer loaded)."""
    from mmgen.utils.benchmark import recipe_task

    return recipe_task(f"orders/{order}")


def untrained_pipeline(order: str, device: str = "cpu"):
    """The pipeline a recipe in configs/orders/ would train, with fresh weights."""
    task = order_task(order)
    torch.manual_seed(0)
    return task.pipeline(task.build_model()).to(device)


def training_step_speed(order: str) -> float:
    """Samples/s of the order recipe's own training step, measured here
    (:func:`mmgen.utils.benchmark.training_step_speed`; compiled when the recipe compiles)."""
    from mmgen.utils.benchmark import training_step_speed as measure_step

    return measure_step(order_task(order))["samples_per_s"]


def generation_only(orders, num_images: int, device: str = "cpu") -> int:
    """Generation speed (on ``device``) and training-step speed (on the CPU) of the recipes'
    models with fresh weights."""
    times, trains = {}, {}
    for order in orders:
        pipe = untrained_pipeline(order, device)
        calls, times[order] = generation_speed(pipe, num_images)
        trains[order] = training_step_speed(order)
        params = pipe.transformer.num_parameters() / 1e6
        print(f"{order:17} {params:5.2f}M parameters  {calls:4d} backbone calls / image  "
              f"{times[order]:6.2f} s / {num_images} images  "
              f"{times['next_token'] / times[order]:5.1f}x  "
              f"training {trains[order]:5.1f} samples/s "
              f"({trains[order] / trains['next_token']:.2f}x)")  # fmt: skip
    checks = [(f"{o} generates >= {x}x faster ({times['next_token'] / times[o]:.1f}x)",
               times["next_token"] / times[o] >= x)
              for o, x, _ in TARGETS if o in times]  # fmt: skip
    if "token_shuffle" in trains:
        shuffle = trains["token_shuffle"] / trains["next_token"]
        checks.append((f"token_shuffle trains >= 2.0x faster ({shuffle:.2f}x)", shuffle >= 2.0))
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    return 0 if all(ok for _, ok in checks) else 1


def verdicts(rows: dict) -> list[tuple[str, bool]]:
    base = rows["next_token"]
    out = []
    for order, speedup, trains in TARGETS:
        if order not in rows:
            continue
        r = rows[order]
        gen = base["generate_s"] / r["generate_s"]
        out.append((f"{order} generates >= {speedup}x faster ({gen:.1f}x)", gen >= speedup))
        gap = base["pass_rate"] - r["pass_rate"]
        out.append((f"{order} pass rate within 0.05 of next-token ({-gap:+.3f})", gap <= 0.05))
        if trains is not None:  # the training step measured in this run, one machine state
            train = r["step_samples_per_s"] / base["step_samples_per_s"]
            out.append((f"{order} trains >= {trains}x faster ({train:.2f}x)", train >= trains))
    return out


def table(rows: dict, num_images: int) -> str:
    base = rows["next_token"]
    lines = [
        f"| order | parameters | pass rate | backbone calls / image | s / {num_images} images "
        "| generation speed-up | training tokens/s (16x16 grid, measured here) "
        "| training speed-up | training wall (from the run's log) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for order, r in rows.items():
        tokens = r["step_samples_per_s"] * GRID_TOKENS
        lines.append(
            f"| {order} | {r['parameters'] / 1e6:.1f}M | {r['pass_rate']:.3f} "
            f"| {r['calls_per_image']} | {r['generate_s']:.2f} "
            f"| {base['generate_s'] / r['generate_s']:.1f}x | {tokens:,.0f} "
            f"| {r['step_samples_per_s'] / base['step_samples_per_s']:.2f}x "
            f"| {r['wall_s'] / 60:.1f} min ({r['samples_per_s']:.1f} samples/s) |"
        )
    return "\n".join(lines)


def flow_table(rows: dict) -> str:
    """Pass rate and seconds per image against Euler steps, for the flow-head rows."""
    lines = ["| order | flow steps | pass rate | s / image |", "|---|---|---|---|"]
    for order, r in rows.items():
        for point in r.get("flow_steps") or []:
            lines.append(f"| {order} | {point['steps']} | {point['pass_rate']:.3f} "
                         f"| {point['s_per_image']:.3f} |")  # fmt: skip
    return "\n".join(lines) if len(lines) > 2 else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs/orders", help="folder of the three runs")
    parser.add_argument("--num-prompts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-images", type=int, default=16)
    parser.add_argument("--json", help="also write the measurements here (rows of orders not "
                        "measured in this run are kept from the file)")  # fmt: skip
    parser.add_argument("--orders", nargs="+", choices=ORDERS, default=list(ORDERS),
                        help="the rows to measure (next_token, the baseline, always)")  # fmt: skip
    parser.add_argument("--flow-steps", type=int, nargs="*", default=[4, 8, 16, 32],
                        help="Euler step counts to sweep for flow-head orders")  # fmt: skip
    parser.add_argument(
        "--untrained",
        action="store_true",
        help="generation speed of freshly initialised recipe models only",
    )
    parser.add_argument("--device", default="cpu", help="where the pipelines generate and are "
                        "evaluated (cpu, cuda); training steps are timed on the CPU")  # fmt: skip
    args = parser.parse_args(argv)
    from mmgen.cli.errors import check_device

    device = check_device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, generating on {device}")
    orders = ["next_token"] + [o for o in args.orders if o != "next_token"]
    if args.untrained:
        return generation_only(orders, args.num_images, device)
    runs = Path(args.runs)
    missing = [o for o in orders if not (runs / o / "final").is_dir()]
    if missing:
        print(f"missing runs: {missing}; train them with configs/orders/<order>.yaml")
        return 1
    rows = {}
    if args.json and Path(args.json).is_file():
        rows = json.loads(Path(args.json).read_text())
    for order in orders:
        rows[order] = measure(
            runs / order, args.num_prompts, args.seed, args.num_images, args.flow_steps, device
        )
        print(f"{order}: {json.dumps(rows[order], default=str)}")
    rows = {o: rows[o] for o in ORDERS if o in rows}  # table order
    print()
    print(table(rows, args.num_images))
    if flow_table(rows):
        print()
        print(flow_table(rows))
    checks = verdicts(rows)
    print()
    for text, ok in checks:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
