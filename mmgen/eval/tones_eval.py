"""Score a text-to-audio pipeline on ``tones``: pass rate by number of notes and overall, a JSON
report and a picture of spectrograms (passing and failing clips, with their prompts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mmgen.data.tones import MAX_NOTES, sample_prompt
from mmgen.eval.prompt_eval import evaluate_prompts, rates_table, write_report
from mmgen.eval.tones_verifier import verify_tones

#: report keys, by number of notes
NOTE_COUNTS = {k: f"{k}_note" + ("s" if k > 1 else "") for k in range(1, MAX_NOTES + 1)}
SPECTROGRAM_MAX_HZ = 2000.0  # the tones' 2nd and 3rd harmonics reach 1.6 kHz
# dark blue -> purple -> orange -> pale yellow, for quiet -> loud
_COLOURS = np.array([[0, 0, 20], [90, 20, 120], [220, 80, 40], [255, 240, 160]], dtype=float)


def evaluate_tones(
    pipe,
    *,
    num_prompts: int = 200,
    seed: int = 0,
    batch_size: int = 50,
    out_dir: str | Path | None = None,
    show_progress: bool = True,
    **sampling,
) -> dict:
    """Generate one clip per random prompt and verify it (:func:`verify_tones`).

    Prompts come from ``torch.Generator().manual_seed(seed)``, clips from a second generator
    seeded with ``seed + 1`` (one generator for all batches: the numbers depend on
    ``batch_size``; the default is the CLI's). Writes ``report.json`` and ``spectrograms.png``
    (up to 8 passing and 8 failing clips, framed green or red, captioned with the prompt and the
    verifier's reason) to ``out_dir`` when given.

    Returns:
        dict with ``overall``, ``by_notes`` (pass rate per number of notes), ``counts``,
        ``sampling`` and ``results``.
    """

    def judge(prompt, audio) -> dict:
        verdict = verify_tones(audio, prompt)
        return {"prompt": prompt.text, "notes": NOTE_COUNTS[len(prompt.notes)],
                "passed": verdict.passed, "reason": verdict.reason}  # fmt: skip

    report, clips = evaluate_prompts(
        pipe, sample_prompt, judge, groups=("notes", list(NOTE_COUNTS.values()), "by_notes"),
        num_prompts=num_prompts, seed=seed, batch_size=batch_size,
        outputs_of=lambda out: out.audios, desc="eval tones", show_progress=show_progress,
        **sampling,
    )  # fmt: skip
    results = report["results"]
    out_dir = write_report(report, out_dir)
    if out_dir is not None:
        picked = [i for i, r in enumerate(results) if r["passed"]][:8]
        picked += [i for i, r in enumerate(results) if not r["passed"]][:8]
        sheet = spectrogram_sheet(
            [clips[i] for i in picked],
            [f"{'PASS' if results[i]['passed'] else 'FAIL'}: {results[i]['prompt']}"
             + ("" if results[i]["passed"] else f" ({results[i]['reason']})") for i in picked],
            sample_rate=pipe.sample_rate,
            marks=[results[i]["passed"] for i in picked],
        )  # fmt: skip
        sheet.save(out_dir / "spectrograms.png")
    return report


def spectrogram(audio, sample_rate: int, *, max_hz: float = SPECTROGRAM_MAX_HZ,
                window: int = 512, hop: int = 128, floor_db: float = -80.0):  # fmt: skip
    """A PIL picture of a clip's log-magnitude spectrogram: time left to right, frequency up to
    ``max_hz`` bottom to top, ``floor_db`` .. 0 dB (relative to a full-scale sine) coloured
    dark to bright."""
    from PIL import Image

    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if len(audio) < window:
        audio = np.pad(audio, (0, window - len(audio)))
    starts = range(0, len(audio) - window + 1, hop)
    frames = np.stack([audio[s : s + window] for s in starts])  # (T, window)
    hann = np.hanning(window)
    magnitude = np.abs(np.fft.rfft(frames * hann, axis=1)) / (hann.sum() / 2)  # (T, F)
    bins = int(max_hz * window / sample_rate) + 1
    db = 20 * np.log10(magnitude[:, :bins] + 1e-10)
    level = np.clip(1 - db / floor_db, 0.0, 1.0).T[::-1]  # (F, T), low frequencies at the bottom
    position = level * (len(_COLOURS) - 1)
    low = np.minimum(position.astype(int), len(_COLOURS) - 2)
    frac = (position - low)[..., None]
    rgb = _COLOURS[low] * (1 - frac) + _COLOURS[low + 1] * frac
    return Image.fromarray(rgb.round().astype(np.uint8))


def spectrogram_sheet(clips: Sequence, captions: Sequence[str], *, sample_rate: int,
                      marks: Sequence[bool] | None = None, cols: int = 4):  # fmt: skip
    """Spectrograms of several clips in a grid, each captioned (and framed when ``marks``)."""
    from mmgen.utils.images import image_grid

    tiles = [spectrogram(c, sample_rate) for c in clips]
    return image_grid(tiles, cols=min(cols, len(tiles)), marks=marks, captions=list(captions),
                      scale=2)  # fmt: skip


def format_report(report: dict) -> str:
    """A small table of pass rates."""
    return "\n".join(rates_table(report, "by_notes", "notes"))
