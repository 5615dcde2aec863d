"""Group-causal attention: our Triton kernel against SDPA (is_causal, dense mask with the
EFFICIENT and CUDNN kernels), FlexAttention (compiled) and xformers, in one run on one GPU.

    python tools/bench_attention.py                 # the matrix of performance.md section 3
    python tools/bench_attention.py --masks M1,M3 --head-dims 128
    python tools/bench_attention.py --dry-run       # tiny shapes on CPU (Triton interpreter)

TFLOP/s count only unmasked query-key pairs (4*B*H*D*pairs forward, 2.5x that backward) and are
also printed as a fraction of the bf16 matmul peak measured in the same run. Times are medians
of triton.testing.do_bench (25 ms warm-up, 100 ms of repeats, L2 flushed). Each output is
checked against fp32 math SDPA on the first sample and two heads (relative error, ``FAIL``
past the tolerance of its dtype); a target counts as met only when its output is also right.
Exits 1 when any output is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from mmgen.utils.benchmark import ATTENTION_TOLERANCE, matmul_peak_tflops, relative_error

# mask id -> (description, group ids of one sequence); every mask is a kv_end prefix mask
VAR_256 = (1, 2, 3, 4, 5, 6, 8, 10, 13, 16)
VAR_512 = (1, 2, 3, 4, 6, 9, 13, 18, 24, 32)


def mask_group_ids(mask: str, scale_down: int = 1) -> tuple[str, torch.Tensor]:
    """Group ids (L,) of the masks M0-M10 (M8, packed documents, is not a prefix mask)."""

    def frames(n, size):  # n frames of ``size`` tokens
        return torch.arange(n * size) // size

    def scales(sides):
        sizes = torch.tensor([s * s for s in sides])
        return torch.repeat_interleave(torch.arange(len(sides)), sizes)

    d = scale_down
    table = {
        "M0": ("dense (one frame, bidirectional)", torch.zeros(4096 // d, dtype=torch.long)),
        "M1": ("causal", torch.arange(4096 // d)),
        "M2": ("frame-causal 16 x 256", frames(16, 256 // d)),
        "M3": ("frame-causal 16 x 1024", frames(16, 1024 // d)),
        "M4": ("frame-causal 16 x 200 (unaligned)", frames(16, 200 // d)),
        "M5": ("VAR-256 scales 1..16", scales(VAR_256 if d == 1 else (1, 2, 3, 4))),
        "M6": ("VAR-512 scales 1..32", scales(VAR_512 if d == 1 else (1, 2, 3, 4, 5))),
        "M7": ("block-diffusion, block 32", frames(4096 // 32 // d, 32)),
        "M9": (
            "256 causal text + 15 frames x 256",
            torch.cat([torch.arange(256 // d), 256 // d + frames(15, 256 // d)]),
        ),  # fmt: skip
        "M10": ("token-shuffle s=2: causal at L/4", torch.arange(1024 // d)),
        # the target shapes (performance.md section 4: B4 H16 L8192 D128)
        "F8K": ("frame-causal 32 x 256 (target shape)", frames(32, 256 // d)),
        "C8K": ("causal 8192 (target shape)", torch.arange(8192 // d)),
    }
    if mask not in table:
        raise SystemExit(
            f"unknown mask {mask}; choose from {sorted(table)} (M8 is not a prefix mask)"
        )
    return table[mask]


def timer(device: torch.device):
    """Median milliseconds of a callable: do_bench on CUDA, a perf_counter loop on CPU."""
    if device.type == "cuda":
        from triton.testing import do_bench

        return lambda fn, grads=None: do_bench(fn, warmup=25, rep=100, grad_to_none=grads,
                                               return_mode="median")  # fmt: skip

    def cpu_time(fn, grads=None):
        fn()
        start = time.perf_counter()
        for _ in range(3):
            fn()
        return (time.perf_counter() - start) / 3 * 1e3

    return cpu_time


def implementations(kv_end, num_keys, device, dtype):
    """name -> (attention(q, k, v), setup seconds) for everything that can run here."""
    import mmgen.kernels as kernels
    import torch.nn.functional as F
    from mmgen.kernels.reference import is_plain_causal, kv_end_mask
    from torch.nn.attention import SDPBackend, sdpa_kernel

    found = {
        "ours (triton)": (lambda q, k, v: kernels.group_causal_attention(q, k, v, kv_end), 0.0)
    }
    if is_plain_causal(kv_end, num_keys):
        found["sdpa is_causal"] = (
            lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
            0.0,
        )
    mask = kv_end_mask(kv_end, num_keys)[None, None]  # (1, 1, L, L) bool
    forced = {"sdpa mask EFFICIENT": [SDPBackend.EFFICIENT_ATTENTION],
              "sdpa mask CUDNN": [SDPBackend.CUDNN_ATTENTION]}  # fmt: skip
    if device.type != "cuda":  # those kernels are CUDA only: let SDPA choose
        forced = {"sdpa mask": [SDPBackend.MATH, SDPBackend.FLASH_ATTENTION]}
    for name, backends in forced.items():

        def run(q, k, v, backends=backends):
            with sdpa_kernel(backends):
                return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)

        found[name] = (run, 0.0)
    from mmgen.kernels.flex import compiled_flex_attention, kv_end_block_mask

    start = time.perf_counter()
    block_mask = kv_end_block_mask(kv_end, num_keys, 1, device)
    build = time.perf_counter() - start
    flex = compiled_flex_attention(device)
    found["flex (compiled)" if device.type == "cuda" else "flex (eager)"] = (
        lambda q, k, v: flex(q, k, v, block_mask=block_mask),
        build,
    )
    try:
        import xformers  # noqa: F401

        if device.type == "cuda":
            found["xformers"] = (
                lambda q, k, v: kernels.group_causal_attention_xformers(q, k, v, kv_end),
                0.0,
            )
    except ImportError:
        pass
    return found


def target_verdicts(rows: list[dict]) -> list[str]:
    """The issue's H100 targets against what this run measured (rows at D 128 only). A target
    is met only when the row's output is right (``ok``): a fast wrong kernel meets nothing."""

    def find(mask, prefix):
        return next((r for r in rows if r["mask"] == mask and r["D"] == 128
                     and r["implementation"].startswith(prefix)), None)  # fmt: skip

    def verdict(fast_enough: bool, *measured: dict) -> str:
        wrong = [r for r in measured if not r["ok"]]
        if wrong:
            errors = [f"{r['implementation']} rel. error {r['rel_error']:.1e}" for r in wrong]
            return f"missed (wrong output: {', '.join(errors)})"
        return "met" if fast_enough else "missed"

    lines = []
    ours = find("F8K", "ours")
    if ours:
        for way, name, target in (("fwd", "forward ", 550), ("bwd", "backward", 450)):
            value = ours[f"{way}_tflops"]
            lines.append(f"frame-causal L8192 D128 {name} {value:6.0f} TF/s  "
                         f"target >= {target}: {verdict(value >= target, ours)}")  # fmt: skip
    for mask in ("C8K", "M1"):
        ours, sdpa = find(mask, "ours"), find(mask, "sdpa is_causal")
        if ours and sdpa:
            for way in ("fwd", "bwd"):
                ratio = ours[f"{way}_ms"] / sdpa[f"{way}_ms"]
                lines.append(f"causal {mask} {way}: ours / SDPA flash time {ratio:5.2f}  "
                             f"target <= 1.10: {verdict(ratio <= 1.10, ours, sdpa)}")  # fmt: skip
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masks", default="M0,M1,M2,M3,M4,M5,M6,M7,M9,M10")
    parser.add_argument("--head-dims", default="64,128")
    parser.add_argument("--tokens", type=int, default=16384, help="B * L per case")
    parser.add_argument("--no-backward", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated name prefixes to keep")
    parser.add_argument("--dry-run", action="store_true", help="tiny shapes on CPU (interpreter)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    if args.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before any Triton kernel is imported
        device, dtype, scale_down = torch.device("cpu"), torch.float32, 64
        head_dims, heads_dim_product, tokens = [16], 32, 4 * 64
    elif not torch.cuda.is_available():
        raise SystemExit("bench_attention needs a CUDA GPU (or --dry-run for a CPU smoke run)")
    else:
        device, dtype, scale_down = torch.device("cuda"), torch.bfloat16, 1
        head_dims = [int(d) for d in args.head_dims.split(",")]
        heads_dim_product, tokens = 2048, args.tokens
    measure = timer(device)
    peak = matmul_peak_tflops(device, dtype, measure)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (interpreter)"
    print(f"device {card}; torch {torch.__version__}; {dtype}; matmul peak {peak:.0f} TFLOP/s")
    rows = []
    print(f"{'mask':5} {'L':>6} {'B':>3} {'D':>4} {'implementation':22} {'fwd ms':>9} {'TF/s':>6} "
          f"{'peak':>5} {'bwd ms':>9} {'TF/s':>6} {'peak':>5} {'rel err':>8}")  # fmt: skip
    from mmgen.models.attention import kv_end_from_group_ids

    for mask in args.masks.split(","):
        description, group_ids = mask_group_ids(mask, scale_down)
        kv_end = kv_end_from_group_ids(group_ids).to(device)
        L = kv_end.numel()
        pairs = int(kv_end.sum())
        for D in head_dims:
            H = max(1, heads_dim_product // D)
            B = max(1, tokens // L)
            gen = torch.Generator(device=device).manual_seed(0)
            q, k, v = (
                torch.randn(B, H, L, D, device=device, dtype=dtype, generator=gen) for _ in range(3)
            )
            allowed = torch.arange(L, device=device)[None, :] < kv_end[:, None]  # (L, L)
            reference = torch.nn.functional.scaled_dot_product_attention(
                *(x[:1, :2].float() for x in (q, k, v)), attn_mask=allowed
            )  # fp32 math on the first sample and two heads
            flops = 4 * B * H * D * pairs
            for name, (attend, setup_s) in implementations(kv_end, L, device, dtype).items():
                if args.only and not any(name.startswith(p) for p in args.only.split(",")):
                    continue
                case = f"{mask:5} {L:6d} {B:3d} {D:4d} {name:22}"
                try:
                    out = attend(q, k, v)
                    error = (out[:1, :2].float() - reference).abs().max().item()
                    rel_error = relative_error(out[:1, :2], reference)
                    fwd_ms = measure(lambda f=attend, a=(q, k, v): f(*a))
                    bwd_ms = float("nan")
                    if not args.no_backward and not (
                        device.type == "cpu" and name.startswith("flex")
                    ):
                        leaves = [x.detach().requires_grad_() for x in (q, k, v)]
                        out = attend(*leaves)
                        grad = torch.randn_like(out)
                        bwd_ms = measure(
                            lambda o=out, g=grad: o.backward(g, retain_graph=True), grads=leaves
                        )
                except Exception as err:  # a backend that cannot take this case: say so
                    print(f"{case} failed: {type(err).__name__}: {str(err)[:80]}")
                    continue
                fwd_tf = flops / (fwd_ms * 1e-3) / 1e12
                bwd_tf = 2.5 * flops / (bwd_ms * 1e-3) / 1e12
                row = dict(mask=mask, description=description, L=L, B=B, H=H, D=D,
                           implementation=name, fwd_ms=fwd_ms, fwd_tflops=fwd_tf, bwd_ms=bwd_ms,
                           bwd_tflops=bwd_tf, max_abs_error=error, rel_error=rel_error,
                           ok=rel_error <= ATTENTION_TOLERANCE[dtype], setup_s=setup_s,
                           peak_tflops=peak)  # fmt: skip
                rows.append(row)
                print(f"{case} {fwd_ms:9.3f} {fwd_tf:6.0f} {fwd_tf / peak:5.2f} "
                      f"{bwd_ms:9.3f} {bwd_tf:6.0f} {bwd_tf / peak:5.2f} {rel_error:8.1e}"
                      + ("" if row["ok"] else " FAIL"))  # fmt: skip
    lines = target_verdicts(rows)
    if lines:
        print(
            f"\ntargets (issue 5 sets them for one H100; measured on {card}, bf16):\n  "
            + "\n  ".join(lines)
        )
    if args.out:
        args.out.write_text(
            json.dumps({"device": card, "torch": torch.__version__, "rows": rows}, indent=1)
        )
    wrong = [r for r in rows if not r["ok"]]
    for r in wrong:
        print(f"FAILED {r['mask']} D{r['D']} {r['implementation']}: relative error "
              f"{r['rel_error']:.1e} > {ATTENTION_TOLERANCE[dtype]:.0e}")  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
