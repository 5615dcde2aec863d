"""Text-to-audio latency: time to the first streamed chunk and the real-time factor.

    python tools/bench_audio.py [--model tones-t2a] [--prompt "play C4 E4 G4"] [--repeats 5]

For one clip (1 s for tones-t2a) it times, after a warm-up call, ``pipe.stream(prompt)`` up to
its first chunk (time to first audio) and to its last, and the one-shot ``pipe(prompt)`` in the
same run. The real-time factor is generation time / audio duration (< 1 is faster than
real time). CLEAR's published figures (96 ms to the first chunk, RTF 0.29) were measured on a
GPU; this prints them beside this machine's numbers for reference, not as a like-for-like
comparison. Medians over ``--repeats``; ``--json`` writes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

CLEAR_FIRST_CHUNK_S, CLEAR_RTF = 0.096, 0.29  # CLEAR's paper, on a GPU


def measure(pipe, prompt: str, *, repeats: int, seed: int = 0) -> dict:
    """Medians of time to first chunk, streamed total and one-shot total (seconds)."""
    firsts, streamed, one_shot, chunks = [], [], [], 0

    def generator():
        return torch.Generator().manual_seed(seed)

    pipe(prompt, generator=generator(), show_progress=False)  # warm-up
    for _ in range(repeats):
        start = time.perf_counter()
        stream = pipe.stream(prompt, generator=generator())
        next(stream)
        firsts.append(time.perf_counter() - start)
        chunks = 1 + sum(1 for _ in stream)
        streamed.append(time.perf_counter() - start)
        start = time.perf_counter()
        pipe(prompt, generator=generator(), show_progress=False)
        one_shot.append(time.perf_counter() - start)
    seconds = pipe.num_samples / pipe.sample_rate
    result = {
        "audio_seconds": seconds,
        "chunks": chunks,
        "first_chunk_s": statistics.median(firsts),
        "stream_total_s": statistics.median(streamed),
        "one_shot_s": statistics.median(one_shot),
    }
    result["rtf_stream"] = result["stream_total_s"] / seconds
    result["rtf_one_shot"] = result["one_shot_s"] / seconds
    return result


def main(argv: list[str] | None = None) -> dict:
    from mmgen.pipelines.text_to_audio import TextToAudioPipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tones-t2a")
    parser.add_argument("--prompt", default="play C4 E4 G4")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)

    pipe = TextToAudioPipeline.from_pretrained(args.model, device=args.device)
    pipe.set_progress_bar_config(disable=True)
    r = measure(pipe, args.prompt, repeats=args.repeats)
    r.update(model=args.model, prompt=args.prompt, threads=torch.get_num_threads(),
             device=args.device)  # fmt: skip
    print(f"model {args.model}, prompt {args.prompt!r}: {r['audio_seconds']:.2f} s of audio in "
          f"{r['chunks']} chunks; {r['threads']} CPU threads, device {args.device}")  # fmt: skip
    print(f"{'':<24} {'this machine':>13} {'CLEAR (GPU)':>12}")
    print(f"{'first chunk (s)':<24} {r['first_chunk_s']:>13.3f} {CLEAR_FIRST_CHUNK_S:>12.3f}")
    print(f"{'RTF, streamed':<24} {r['rtf_stream']:>13.3f} {CLEAR_RTF:>12.2f}")
    print(f"{'RTF, one call':<24} {r['rtf_one_shot']:>13.3f} {'':>12}")
    print(f"first chunk after {r['first_chunk_s'] / r['stream_total_s']:.1%} of the streamed "
          f"clip's generation time")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=2) + "\n")
    return r


if __name__ == "__main__":
    main()
