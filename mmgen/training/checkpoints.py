"""Training checkpoints: ``output_dir/checkpoints/checkpoint-{step}``, written then renamed."""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# fault injection for the crash tests: "STEP:SECONDS" sleeps between writing the temporary folder
# of checkpoint STEP and renaming it, so that a test can kill the process mid-save
FAULT_PAUSE_ENV = "MMGEN_FAULT_PAUSE_BEFORE_RENAME"


def _fault_pause(step: int) -> None:
    spec = os.environ.get(FAULT_PAUSE_ENV)
    if spec:
        pause_step, seconds = spec.split(":")
        if int(pause_step) == step:
            time.sleep(float(seconds))


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first (temporary folders are ignored)."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_resume(output_dir: str | Path, resume: str | None) -> Path | None:
    """``"latest"`` -> newest checkpoint (None when there is none); a path must exist."""
    if resume is None:
        return None
    if resume == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint folder at {path}")
    return path


def save_checkpoint(
    accelerator, output_dir: str | Path, step: int, total_limit: int | None
) -> Path:
    """``accelerator.save_state`` into a temporary folder, then rename; prune old ones."""
    folder = Path(output_dir) / "checkpoints"
    final = folder / f"checkpoint-{step}"
    tmp = folder / f".tmp-checkpoint-{step}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp), safe_serialization=True)
    _fault_pause(step)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
