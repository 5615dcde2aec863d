"""The ``mmgen`` command: train, generate, eval, demo, list.

A user's mistake (a bad name, path, value, device, config or data entry) prints one line,
``mmgen: error: ...``, on stderr and exits 2; ``--debug`` anywhere on the line, or
``MMGEN_DEBUG=1``, shows its traceback. Anything else is a crash and keeps its traceback.

One process of a multi-process launch (``WORLD_SIZE`` > 1) that finished its command leaves
through ``os._exit`` once its output is flushed: the command has already saved its work and
destroyed the process group, and gloo's worker threads can still abort the interpreter's
teardown ("terminate called without an active exception", SIGABRT), which the launcher would
report as a failed run.
"""

from __future__ import annotations

import os
import sys

from mmgen.cli.parser import build_parser

__all__ = ["build_parser", "main"]


def main(argv: list[str] | None = None) -> int:
    """Run one ``mmgen`` command line; returns the exit status (0, or 2 for a user error)."""
    from mmgen.cli.commands import COMMANDS
    from mmgen.cli.errors import user_errors

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("MMGEN_DEBUG", "") not in ("", "0")
    args = build_parser().parse_args([a for a in argv if a != "--debug"])
    try:
        COMMANDS[args.command](args)
    except user_errors() as err:
        if debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"mmgen: error: {message}", file=sys.stderr)
        print("(run with --debug for the traceback)", file=sys.stderr)
        return 2
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        leave_now()
    return 0


def leave_now() -> None:
    """Flush what was printed and end the process without the interpreter's teardown."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
