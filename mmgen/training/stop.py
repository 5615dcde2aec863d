"""Stopping on SIGTERM: finish the step, save a checkpoint, exit cleanly."""

from __future__ import annotations

import signal
import threading

import torch


class StopRequest:
    """Catches SIGTERM for the duration of a training run.

    ``requested()`` is True on every process once any process was sent SIGTERM (the flag is
    summed across processes, so all of them save the same checkpoint and stop together).
    """

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.flag = False
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame) -> None:
        self.flag = True

    def requested(self) -> bool:
        if self.accelerator.num_processes == 1:
            return self.flag
        flag = torch.tensor([float(self.flag)], device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, "sum").item() > 0)

    def release(self) -> None:
        """Give SIGTERM back to whatever handled it before."""
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
            self.previous = None
