"""Train a generation recipe and its reproduction side by side within a wall-clock budget.

Made the built-in shapes-t2i weights on a lent GPU machine, in one command of at most 10 min:

    python tools/train_and_reproduce.py --config configs/shapes_t2i.yaml --budget-s 540 --out $OUT

1. probe: the recipe, twice at once, for ``--probe-steps`` on a small data set: steps/s measured;
2. max_steps: what fits the rest of the budget, rounded down to 100 (printed; write it into the
   recipe afterwards so that the recipe alone reproduces the run);
3. run A (the recipe's output_dir) and run B (``<output_dir>_repro``) at once, same recipe;
4. each run's final pipeline (weights cast to float16, as installed) with its logs and last sample
   grids is packed into ``<out>/<name>.tgz.<i>`` parts of at most 15 MB
   (``cat <name>.tgz.* | tar xz`` unpacks);
5. with time left, both are scored with ``mmgen eval shapes`` on the same device.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

START = time.perf_counter()
PART_BYTES = 15 * 2**20


def elapsed() -> float:
    return time.perf_counter() - START


def log(message: str) -> None:
    print(f"[{elapsed():6.1f} s] {message}", flush=True)


def mmgen(*args: str) -> list[str]:
    """The ``mmgen`` command: the installed script, else ``python -m mmgen.cli``."""
    script = shutil.which("mmgen")
    return [script, *args] if script else [sys.executable, "-P", "-m", "mmgen.cli", *args]


def write_recipe(source: Path, target: Path, changes: dict) -> None:
    """Copy a recipe YAML (its ``base:`` merged in) with dotted-key ``changes`` applied."""
    from mmgen.training.config import load_recipe

    recipe = load_recipe(source)
    for dotted, value in changes.items():
        node = recipe
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    target.write_text(yaml.safe_dump(recipe, sort_keys=False))


def start_training(recipe: Path, output_dir: Path, extra: list[str]) -> subprocess.Popen:
    output_dir.mkdir(parents=True, exist_ok=True)
    log_file = open(output_dir.parent / f"{output_dir.name}.log", "w")
    command = mmgen("train", "model", "--config", str(recipe), "--output_dir", str(output_dir))
    return subprocess.Popen(command + extra, stdout=log_file, stderr=subprocess.STDOUT)


def wait_all(processes: dict[str, subprocess.Popen], deadline_s: float) -> bool:
    """Wait until all exit or ``deadline_s`` (then kill them); True if all exited with 0."""
    while any(p.poll() is None for p in processes.values()):
        if elapsed() > deadline_s:
            for name, p in processes.items():
                if p.poll() is None:
                    log(f"{name}: past the deadline, killed")
                    p.kill()
            break
        time.sleep(2)
    return all(p.wait() == 0 for p in processes.values())


def last_metrics(output_dir: Path) -> dict:
    lines = (output_dir / "logs" / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def tail(path: Path, chars: int = 1500) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"({path} missing)"


def cast_weights_to_float16(folder: Path) -> None:
    from mmgen.utils.serialization import load_state_dict, save_state_dict

    for weights in folder.glob("*/model.safetensors"):
        state = load_state_dict(weights)
        save_state_dict(
            {k: v.half() if v.is_floating_point() else v for k, v in state.items()}, weights
        )


def pack(run_dir: Path, out: Path) -> list[Path]:
    """Final pipeline (or, without one, the last checkpoint's weights), logs and the last two
    sample grids of ``run_dir`` -> ``out/<name>.tgz.<i>`` parts."""
    members = [run_dir / "config.yaml", run_dir / "logs" / "metrics.jsonl"]
    members += sorted((run_dir / "samples").glob("*.png"))[-2:]
    members.append(run_dir.parent / f"{run_dir.name}.log")
    final = run_dir / "final"
    if final.is_dir():
        cast_weights_to_float16(final)
        members.append(final)
    else:
        checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*"))
        if checkpoints:
            members.append(checkpoints[-1] / "model.safetensors")
    archive = out / f"{run_dir.name}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for member in members:
            if member.exists():
                tar.add(member, arcname=str(member.relative_to(run_dir.parent)))
    data, parts = archive.read_bytes(), []
    archive.unlink()
    for i in range(0, len(data), PART_BYTES):
        parts.append(out / f"{archive.name}.{i // PART_BYTES}")
        parts[-1].write_bytes(data[i : i + PART_BYTES])
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--budget-s", type=float, default=540.0, help="whole command, seconds")
    parser.add_argument("--out", type=Path, required=True, help="where packed results go")
    parser.add_argument("--probe-steps", type=int, default=120)
    parser.add_argument("--prep-s", type=float, default=60.0, help="data rendering + encoding")
    parser.add_argument("--tail-s", type=float, default=70.0, help="export, packing, eval")
    parser.add_argument("--max-steps-cap", type=int, default=30000)
    parser.add_argument("--device", default="cuda", help="device for the final eval")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from mmgen.training.config import load_recipe

    recipe = load_recipe(args.config)
    run_a = Path(recipe["output_dir"])
    run_b = run_a.with_name(run_a.name + "_repro")
    scratch = run_a.parent / "probe"
    scratch.mkdir(parents=True, exist_ok=True)

    # 1. probe: the same model, batch and precision on a small data set, both runs at once
    probe_recipe = scratch / "recipe.yaml"
    write_recipe(
        args.config,
        probe_recipe,
        {
            "data.num_samples": 4096,
            "training.max_steps": args.probe_steps,
            "training.log_steps": args.probe_steps // 3,
            "training.validation_steps": 10**9,
            "training.checkpointing_steps": 10**9,
        },
    )
    probes = {n: start_training(probe_recipe, scratch / n, []) for n in ("probe_a", "probe_b")}
    if not wait_all(probes, elapsed() + 240):
        for n in probes:
            print(tail(scratch / f"{n}.log"))
        raise SystemExit("probe failed")
    batch = recipe["training"]["batch_size"]
    steps_per_s = min(last_metrics(scratch / n)["samples_per_s"] for n in probes) / batch
    train_s = args.budget_s - elapsed() - args.prep_s - args.tail_s
    max_steps = min(args.max_steps_cap, int(steps_per_s * train_s * 0.92) // 100 * 100)
    log(f"probe: {steps_per_s:.2f} steps/s per run with two at once; {train_s:.0f} s to train")
    log(f"max_steps = {max_steps}")
    if max_steps < 100:
        raise SystemExit("not enough time left to train")

    # 3. the run and its reproduction
    runs = {
        str(d): start_training(args.config, d, ["--max_train_steps", str(max_steps)])
        for d in (run_a, run_b)
    }
    ok = wait_all(runs, args.budget_s - args.tail_s + 30)
    for d in (run_a, run_b):
        log(f"{d}: " + (json.dumps(last_metrics(d)) if (d / "logs").is_dir() else "no metrics"))
        if not ok:
            print(tail(d.parent / f"{d.name}.log"))

    # 4. pack
    for d in (run_a, run_b):
        parts = pack(d, args.out)
        log(f"packed {d} into {[p.name for p in parts]}")

    # 5. eval, if time is left
    left = args.budget_s - elapsed() - 5
    finals = [d for d in (run_a, run_b) if (d / "final").is_dir()]
    if left > 30 and finals:
        evals = {}
        for d in finals:
            command = mmgen("eval", "shapes", "--model", str(d / "final"), "--num-prompts", "400")
            command += ["--seed", "0", "--device", args.device, "--out-dir", str(d / "eval")]
            evals[str(d)] = subprocess.Popen(
                command, stdout=open(d / "eval.log", "w"), stderr=subprocess.STDOUT
            )
        wait_all(evals, elapsed() + left)
        for d in finals:
            print(f"--- eval {d}\n{tail(d / 'eval.log', 600)}")
    log("done")


if __name__ == "__main__":
    main()
