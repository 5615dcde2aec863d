"""Decode speed: milliseconds per generated token step of the decode configuration, eager
against the compiled static-cache step (CUDA graphs), beside the memory floor.

    python tools/bench_decode.py                # 24 layers, width 1024, 16 heads, 16,384
                                                # codes (336M), batch 16, 1024 cached positions
    python tools/bench_decode.py --dry-run      # tiny model on CPU

The floor is the bytes one step must read (bf16 weights + the whole KV cache) over the
device-to-device copy bandwidth measured in the same run. Exits 1 when a path fails.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def copy_bandwidth(device) -> float:
    """Bytes per second of a large device-to-device copy (read + write counted)."""
    n = 1 << 28 if device.type == "cuda" else 1 << 22
    a = torch.empty(n, dtype=torch.uint8, device=device)
    b = torch.empty_like(a)
    seconds = time_ms(lambda: b.copy_(a), device, repeats=20) / 1e3
    return 2 * n / seconds


def time_ms(fn, device, repeats: int = 50) -> float:
    for _ in range(3):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1e3


def time_backend(backend, vocab, dims, device, dtype, B, L, bandwidth, repeats):
    """[(path, ms per step or an error text, floor ms)] of the eager and compiled steps."""
    from mmgen.generation.compiled import CompiledDecoder
    from mmgen.models.transformer import ARTransformer, TransformerConfig

    dim, layers, heads = dims
    torch.manual_seed(0)
    tokens = {"num_codes": vocab}  # the token input and categorical head over `vocab` codes
    config = TransformerConfig(condition_vocab_size=1, input={"kind": "token", **tokens},
                               head={"kind": "categorical", **tokens}, dim=dim,
                               num_layers=layers, num_heads=heads, rope="1d",
                               attention_backend=backend)  # fmt: skip
    model = ARTransformer(config).to(device=device, dtype=dtype).eval()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    kv_bytes = 2 * layers * B * config.kv_heads * L * config.head_dim * dtype.itemsize
    floor_ms = (weight_bytes + kv_bytes) / bandwidth * 1e3
    ids = torch.randint(0, vocab, (B, L + 1), device=device)
    positions = torch.arange(L + 1, device=device)[:, None].expand(L + 1, 3).contiguous()
    kv_end = torch.arange(1, L + 2, device=device, dtype=torch.int32)
    one = (positions[L:], kv_end[L:])  # the step at position L
    rows = []
    with torch.no_grad():
        caches = model.make_caches(B, L + 1)
        model(positions[:L], kv_end[:L], inputs=ids[:, :L], caches=caches, start=0)  # prefill
        decoder = CompiledDecoder(model)
        decoder.caches = caches
        steps = {
            "eager (sliced cache)": lambda: model.head(
                model(*one, inputs=ids[:, L:], caches=caches, start=L)
            ),
            f"compiled ({decoder.mode})": lambda: decoder(ids[:, L:], *one, start=L),
        }
        for path, step in steps.items():
            try:
                rows.append((path, time_ms(step, device, repeats), floor_ms))
            except Exception as err:  # a path that cannot run here: say so
                rows.append((path, f"{type(err).__name__}: {str(err)[:80]}", floor_ms))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--cached", type=int, default=1024)
    parser.add_argument("--backends", default="sdpa,triton")
    parser.add_argument("--dry-run", action="store_true", help="tiny model on CPU")
    args = parser.parse_args()
    if args.dry_run:
        import os

        os.environ.setdefault("TRITON_INTERPRET", "1")
        device, dtype, dims, vocab = torch.device("cpu"), torch.float32, (64, 2, 4), 256
        args.batch, args.cached, repeats = 2, 32, 3
    elif not torch.cuda.is_available():
        raise SystemExit("bench_decode needs a CUDA GPU (or --dry-run for a CPU smoke run)")
    else:
        device, dtype, dims, vocab, repeats = (
            torch.device("cuda"),
            torch.bfloat16,
            (1024, 24, 16),
            16384,
            50,
        )
    dim, layers, heads = dims
    B, L = args.batch, args.cached
    bandwidth = copy_bandwidth(device)
    card = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device {card}; torch {torch.__version__}; {dtype}; batch {B}, {L} cached positions; "
          f"copy bandwidth {bandwidth / 1e9:.0f} GB/s")  # fmt: skip
    print(f"{'backend':8} {'path':26} {'ms/step':>8} {'floor ms':>9} {'floor/time':>10}")
    failed = []
    for backend in args.backends.split(","):
        rows = time_backend(backend, vocab, dims, device, dtype, B, L, bandwidth, repeats)
        for path, ms, floor_ms in rows:
            if isinstance(ms, str):
                print(f"{backend:8} {path:26} failed: {ms}")
                failed.append(f"{backend} {path}")
            else:
                print(f"{backend:8} {path:26} {ms:8.3f} {floor_ms:9.3f} {floor_ms / ms:10.2f}")
    if failed:
        print(f"{len(failed)} path(s) failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
