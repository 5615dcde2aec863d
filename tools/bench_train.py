"""Training throughput of the shared transformer: tokens/s and MFU of one optimizer step.

    python tools/bench_train.py                       # 336M model (24 x 1024, 16 heads,
                                                      # 16,384 codes), batch 8 x 4096, bf16
    python tools/bench_train.py --variants eager-sdpa,compile-sdpa,compile-triton
    python tools/bench_train.py --dry-run             # tiny model on CPU
    python tools/bench_train.py --cpu                 # the CPU flagship recipe's own training
                                                      # step on this CPU: fp32 and bf16, eager
                                                      # and compiled
    python tools/bench_train.py --recipe orders/next_token   # any recipe's step, the same way

A variant is ``[precision-]mode-backend``: precision ``fp32``, ``bf16`` or ``fp16`` (autocast;
default bf16 on GPUs, fp16 on the dry run), mode ``eager`` or ``compile``, backend ``sdpa``,
``triton`` or ``flex``.

MFU counts 6 x (matmul parameters) x tokens plus attention over unmasked pairs
(4 x B x H x D x pairs per layer forward, 2.5x that backward) against the matmul peak measured
in the same run (an 8192^2 matmul, 256^2 on the CPU, in the variant's precision: what this
machine reaches at its clocks and power), with the datasheet figure beside it (989 TFLOP/s,
H100/H200 SXM bf16 dense). Steps are timed after warm-up (compilation excluded and reported
separately). Exits 1 when a variant fails.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

DATASHEET_PEAK = 989e12  # H100 / H200 SXM, bf16 dense
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # autocast dtype
FLAGSHIP_RECIPE = "shapes_t2i_flagship_generator"  # what --cpu times (`make train-flagship`)
RECIPE_VARIANTS = "fp32-eager,bf16-eager,bf16-compile,fp32-compile"


def autocast_dtype(device: torch.device) -> torch.dtype:
    """bf16 on GPUs; float16 on the CPU dry run (the Triton interpreter mishandles bf16)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float16


def step_flops(matmul_params: int, dims: dict, batch: int, length: int, pairs: int) -> float:
    head_dim = dims["dim"] // dims["num_heads"]
    attention = 4 * batch * dims["num_heads"] * head_dim * pairs * dims["num_layers"]  # fwd
    return 6 * matmul_params * batch * length + 3.5 * attention


def parse_variant(variant: str, device: torch.device) -> tuple[torch.dtype | None, str, str]:
    """``[fp32-|bf16-|fp16-]{eager,compile}-{sdpa,triton,flex}`` -> (autocast dtype or None for
    float32, mode, backend)."""
    *precision, mode, backend = variant.split("-")
    return (PRECISIONS[precision[0]] if precision else autocast_dtype(device)), mode, backend


def time_variant(variant: str, vocab: int, dims: dict, device, B: int, L: int, steps: int):
    """(parameter counts, seconds per step, seconds of the first step, its loss) of one
    variant (see :func:`parse_variant`)."""
    from mmgen.models.transformer import ARTransformer, TransformerConfig

    amp_dtype, mode, backend = parse_variant(variant, device)
    torch.manual_seed(0)
    tokens = {"num_codes": vocab}  # the token input and categorical head over `vocab` codes
    config = TransformerConfig(condition_vocab_size=1, input={"kind": "token", **tokens},
                               head={"kind": "categorical", **tokens}, rope="1d",
                               attention_backend=backend, **dims)  # fmt: skip
    model = ARTransformer(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    ids = torch.randint(0, vocab, (B, L), device=device)
    targets = torch.randint(0, vocab, (B, L), device=device)
    kv_end = None  # next-token: plain causal (SDPA's flash path; the others get an arange)
    positions = torch.arange(L, device=device)[:, None].expand(L, 3).contiguous()

    def loss_fn(ids, targets):
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):  # fmt: skip
            return model(positions, kv_end, inputs=ids, targets=targets)  # the head's loss

    forward = torch.compile(loss_fn) if mode == "compile" else loss_fn

    def step():
        loss = forward(ids, targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    start = time.perf_counter()
    first_loss = step().item()
    first = time.perf_counter() - start
    step()  # with time_ms's own warm-up call: two steps after the first before timing
    seconds = time_ms(step, device, repeats=steps) / 1e3
    linear = [m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)]
    params = {"all": sum(p.numel() for p in model.parameters()), "matmul": sum(linear)}
    return params, seconds, first, first_loss


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, device, repeats: int = 10) -> float:
    """Mean milliseconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats * 1e3


def time_recipe(recipe: str, variants: str, steps: int) -> int:
    """Tokens/s of a recipe's own training step (its order's inputs, its head's loss, its batch)
    on the CPU, one line per ``{fp32,bf16}-{eager,compile}`` variant."""
    from mmgen.utils.benchmark import recipe_task, training_step_speed

    task = recipe_task(recipe)
    rows = task.layout.length
    print(f"recipe {recipe}: batch {task.config.training.batch_size} x {rows} rows "
          f"({task.order.name}); torch {torch.__version__}; {torch.get_num_threads()} threads; "
          "speed = against the first variant")  # fmt: skip
    print(f"{'variant':14} {'params':>8} {'step ms':>9} {'tokens/s':>10} {'samples/s':>10} "
          f"{'compile s':>9} {'speed':>6}")  # fmt: skip
    failed, baseline = [], None
    for variant in variants.split(","):
        precision, mode = variant.split("-")
        try:
            r = training_step_speed(task, steps=steps, amp_dtype=PRECISIONS[precision],
                                    compile=mode == "compile")  # fmt: skip
        except Exception as err:  # a variant that cannot run here: say so, go on
            print(f"{variant:14} failed: {type(err).__name__}: {str(err)[:100]}")
            failed.append(variant)
            continue
        baseline = baseline or r["step_s"]
        compile_s = r["first_step_s"] - r["step_s"] if mode == "compile" else 0.0
        print(f"{variant:14} {r['parameters'] / 1e6:7.1f}M {r['step_s'] * 1e3:9.1f} "
              f"{r['rows_per_s']:10.0f} {r['samples_per_s']:10.1f} {compile_s:9.1f} "
              f"{baseline / r['step_s']:5.2f}x")  # fmt: skip
    if failed:
        print(f"{len(failed)} variant(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="eager-sdpa,eager-triton,compile-sdpa,compile-triton")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--dry-run", action="store_true", help="tiny model on CPU")
    parser.add_argument("--cpu", action="store_true",
                        help=f"--recipe {FLAGSHIP_RECIPE} (the CPU flagship)")  # fmt: skip
    parser.add_argument("--recipe", help="time this recipe's own training step on the CPU")
    args = parser.parse_args()
    if args.cpu or args.recipe:
        variants = args.variants
        if variants == parser.get_default("variants"):
            variants = RECIPE_VARIANTS
        return time_recipe(args.recipe or FLAGSHIP_RECIPE, variants, min(args.steps, 5))
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")
        device, dims = torch.device("cpu"), dict(dim=64, num_layers=2, num_heads=4)
        vocab, args.batch, args.length, args.steps = 256, 2, 64, 2
    elif not torch.cuda.is_available():
        raise SystemExit("bench_train needs a CUDA GPU (or --dry-run for a CPU smoke run)")
    else:
        device, dims, vocab = (
            torch.device("cuda"),
            dict(dim=1024, num_layers=24, num_heads=16),
            16384,
        )

    from mmgen.utils.benchmark import matmul_peak_tflops

    B, L = args.batch, args.length
    pairs = L * (L + 1) // 2  # causal
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    peaks: dict[torch.dtype, float] = {}  # FLOP/s of a matmul in each variant's precision

    def peak_of(dtype: torch.dtype) -> float:
        if dtype not in peaks:
            peaks[dtype] = matmul_peak_tflops(device, dtype, lambda fn: time_ms(fn, device)) * 1e12
        return peaks[dtype]

    print(f"device {card}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
          f"batch {B} x {L} tokens; MFU against a matmul in the variant's own precision, "
          f"measured in this run (datasheet {DATASHEET_PEAK / 1e12:.0f} TFLOP/s bf16 beside it); "
          "loss = first step's; speed = against the first variant")  # fmt: skip
    columns = (("params", 8), ("step ms", 9), ("tokens/s", 10), ("MFU", 6), ("MFU(989)", 9),
               ("compile s", 9), ("loss", 8), ("speed", 6))  # fmt: skip
    print(f"{'variant':16} " + " ".join(f"{name:>{width}}" for name, width in columns))
    failed, baseline = [], None
    for variant in args.variants.split(","):
        try:
            params, seconds, first, loss = time_variant(variant, vocab, dims, device, B, L,
                                                        args.steps)  # fmt: skip
        except Exception as err:  # a variant that cannot run here: say so, go on
            print(f"{variant:16} failed: {type(err).__name__}: {str(err)[:100]}")
            failed.append(variant)
            continue
        amp_dtype, mode, _ = parse_variant(variant, device)
        peak = peak_of(amp_dtype or torch.float32)
        flops = step_flops(params["matmul"], dims, B, L, pairs)
        compile_s = first - seconds if mode == "compile" else 0.0
        achieved = flops / seconds
        baseline = baseline or seconds  # the first variant's step time
        print(f"{variant:16} {params['all'] / 1e6:7.1f}M {seconds * 1e3:9.1f} "
              f"{B * L / seconds:10.0f} {achieved / peak:6.3f} {achieved / DATASHEET_PEAK:9.3f} "
              f"{compile_s:9.1f} {loss:8.4f} {baseline / seconds:5.2f}x")  # fmt: skip
    print(
        "matmul peaks measured: "
        + ", ".join(
            f"{str(dtype)[6:]} {flops / 1e12:.3g} TFLOP/s" for dtype, flops in peaks.items()
        )
    )
    if failed:
        print(f"{len(failed)} variant(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
