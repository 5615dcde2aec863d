"""The ``mmgen`` command: train, generate, eval, demo, list.

A user's mistake (a bad name, path, value, device, config or data entry) prints one line,
``mmgen: error: ...``, on stderr and exits 2; ``--debug`` anywhere on the line, or
``MMGEN_DEBUG=1``, shows its traceback. Anything else is a crash and keeps its traceback.
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
    return 0
