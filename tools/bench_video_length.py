"""Extrapolation study: roll a next-frame video model out past its training length.

For every clip length (default 24 and 48 frames: 2x and 4x the moving-shapes training length)
and every FlexRoPE slope (0 = plain RoPE), generate one clip per random moving-shapes prompt and
check every frame with the task's per-frame verifier (the named objects present, shapes and
colours right). Prints a table (pass rate over frame ranges) and writes, per length, a PNG of
the per-frame pass rate against the frame index, plus a JSON of every number.

    python tools/bench_video_length.py --model runs/moving_shapes_t2v/final \\
        --lengths 24 48 --slopes 0 0.1 0.3 1.0 --long-windows 8 --num-prompts 40 --out-dir docs

``--long-windows W`` adds rollouts with FAR-Long's long short-term context at window W (frames
older than W as coarser long-term rows; the model's ``long_patch``). Every run also reports
the most rows its KV cache holds at once (``kv_rows``, per clip; FAR-Long retires the
full-resolution rows of old frames) and its wall time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mmgen.data.moving_shapes import NUM_FRAMES, sample_prompt
from mmgen.eval.moving_shapes_verifier import verify_clip
from mmgen.generation.sequence_cache import call_spans, peak_live_rows
from mmgen.pipelines.ar_image import ARImagePipeline
from mmgen.training.summary import plot_lines


def per_frame_pass_rates(pipe, prompts, num_frames: int, slope: float, seed: int,
                         batch_size: int, **sampling) -> list[float]:  # fmt: skip
    """Mean per-frame pass rate at every frame index over clips of ``num_frames``
    (``sampling`` may hold ``long_window``: FAR-Long for the call)."""
    generator = torch.Generator().manual_seed(seed)
    passed = torch.zeros(num_frames)
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        out = pipe([p.text for p in batch], num_frames=num_frames, flexrope_slope=slope,
                   generator=generator, show_progress=False, **sampling)  # fmt: skip
        for prompt, frames in zip(batch, out.frames):
            passed += torch.tensor(verify_clip(frames, prompt).frames, dtype=torch.float32)
    return (passed / len(prompts)).tolist()


def kv_rows(pipe, num_frames: int, long_window: int | None) -> int:
    """The most rows the KV cache of one clip holds at once (prefill, then one call per
    frame)."""
    changes = {} if long_window is None else {"long_window": long_window}
    layout = pipe.order.with_frames(num_frames, **changes).layout
    return peak_live_rows(layout, call_spans(layout))


def ranges(num_frames: int) -> list[tuple[int, int]]:
    """Frame ranges of the table: the training length, then each further doubling."""
    bounds, end = [(0, min(NUM_FRAMES, num_frames))], NUM_FRAMES
    while end < num_frames:
        bounds.append((end, min(2 * end, num_frames)))
        end = 2 * end
    return bounds


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="moving-shapes-t2v")
    parser.add_argument("--lengths", type=int, nargs="+", default=[24, 48])
    parser.add_argument("--slopes", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    parser.add_argument("--num-prompts", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-inference-steps", type=int)
    parser.add_argument("--long-windows", type=int, nargs="*", default=[],
                        help="FAR-Long windows W to roll out with (FlexRoPE off), besides the "
                        "model's own order")  # fmt: skip
    parser.add_argument("--out-dir", default="docs")
    args = parser.parse_args(argv)
    pipe = ARImagePipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    prompt_gen = torch.Generator().manual_seed(args.seed)
    prompts = [sample_prompt(prompt_gen) for _ in range(args.num_prompts)]
    sampling = {}
    if args.num_inference_steps is not None:
        sampling["num_inference_steps"] = args.num_inference_steps
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {"model": str(args.model), "num_prompts": args.num_prompts, "seed": args.seed,
               "training_length": pipe.num_frames, "runs": []}  # fmt: skip
    spans_header = " ".join(f"{f'f{a + 1}-{b}':>9}" for a, b in ranges(max(args.lengths)))
    print(f"{'frames':>6} {'setting':<22} {spans_header} {'kv_rows':>8} {'seconds':>8}")
    settings = [(slope, None) for slope in args.slopes] + [(0.0, w) for w in args.long_windows]
    for length in args.lengths:
        series = {}
        for slope, window in settings:
            started = time.perf_counter()
            extra = {} if window is None else {"long_window": window}
            rates = per_frame_pass_rates(pipe, prompts, length, slope, args.seed + 1,
                                         args.batch_size, **sampling, **extra)  # fmt: skip
            label = "RoPE (FlexRoPE off)" if slope == 0 else f"FlexRoPE slope {slope:g}"
            if window is not None:
                label = f"FAR-Long W={window}"
            series[label] = (list(range(1, length + 1)), rates)
            spans = {f"{a + 1}-{b}": sum(rates[a:b]) / (b - a) for a, b in ranges(length)}
            seconds = round(time.perf_counter() - started, 1)
            cache = kv_rows(pipe, length, window)
            results["runs"].append({"frames": length, "flexrope_slope": slope,
                                    "long_window": window, "per_frame_pass_rate": rates,
                                    "by_range": spans, "kv_rows": cache,
                                    "seconds": seconds})  # fmt: skip
            print(f"{length:>6} {label:<22} " + " ".join(f"{v:>9.3f}" for v in spans.values())
                  + f" {cache:>8} {seconds:>8}")  # fmt: skip
        image = plot_lines(series, f"per-frame pass rate, {length}-frame rollouts ({args.model}; "
                           f"trained on {pipe.num_frames})", x_label="frame",
                           x_range=(1, length), y_range=(0.0, 1.0), guides=(0.5, 0.9))  # fmt: skip
        image.save(out_dir / f"video_length_{length}.png")
    (out_dir / "video_length.json").write_text(json.dumps(results, indent=1))
    print(f"plots: {', '.join(str(out_dir / f'video_length_{n}.png') for n in args.lengths)}")
    return results


if __name__ == "__main__":
    main()
