"""What the ``mmgen`` command treats as a user's mistake: one line on stderr and exit 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A command-line value that cannot work here (a device, a flag combination)."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types a user's input raises: a bad name, path, value, config or data
    folder. ``ValueError`` is how the pipelines and configs reject a bad argument, so it is
    here too; anything else (TypeError, RuntimeError, ...) is a crash and keeps its
    traceback."""
    from mmgen.data.folders import DataError
    from mmgen.utils.config import ConfigError
    from mmgen.utils.serialization import CheckpointError

    return (UsageError, ConfigError, CheckpointError, DataError, FileNotFoundError, ValueError)


def check_device(name: str) -> str:
    """``name`` when torch can use that device here, else a :class:`UsageError` with the fix."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device name (cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: no CUDA GPU is visible here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: MPS is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {name}: mmgen runs on cpu, cuda or mps")
    return name
