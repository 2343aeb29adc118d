"""The ``facetrack`` command: one module per subcommand, dispatched by :func:`main`.

This package is the only place that parses arguments or prints; each subcommand is a
shell over the library (:mod:`tracker.api` and friends). ``facetrack CMD ...`` runs
``tracker.cli.CMD.main``; the modules load only when their command runs, so ``--help``
and ``--version`` stay fast.
"""
from __future__ import annotations

import difflib
import importlib
import sys

from tracker import __version__
from tracker.cli.common import EXIT_CODES, EXIT_OK, EXIT_USAGE, fail

RENAMED = {"refine": "fit"}      # commands under their names before issue 27
COMMANDS = ("track", "batch", "predict", "annotate", "evaluate", "accuracy", "train", "fit", "sweep", "calibrate", "bench")


def usage() -> str:
    """``facetrack --help``: what it is, and each command in one line."""
    width = max(map(len, COMMANDS))
    lines = ["usage: facetrack [--version] [--help] COMMAND [ARGS...]", "",
             "Streaming 68-point facial landmarks by K-way pose classification (Li, Jeni, Ramanan, AAAI 2018).",
             "", "commands:"]
    lines += [f"  {name:<{width}}  {_command(name).SUMMARY}" for name in COMMANDS]
    lines += ["", "Run 'facetrack COMMAND --help' for a command's options.", EXIT_CODES]
    return "\n".join(lines)


def _command(name: str):
    return importlib.import_module(f"{__name__}.{name}")


def main(argv: list[str] | None = None) -> int:
    """``facetrack [--version | --help | COMMAND ARGS...]``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        print(usage(), file=sys.stderr)
        return EXIT_USAGE
    first, rest = argv[0], argv[1:]
    if first in ("-h", "--help"):
        print(usage())
        return EXIT_OK
    if first in ("-V", "--version"):
        print(f"facetrack {__version__}")
        return EXIT_OK
    if first == "help":
        return main([rest[0], "--help"] if rest else ["--help"])
    if first in RENAMED:
        return fail("facetrack", f"'{first}' was renamed: did you mean 'facetrack {RENAMED[first]}'?", EXIT_USAGE)
    if first not in COMMANDS:
        close = difflib.get_close_matches(first, COMMANDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; commands: {', '.join(COMMANDS)}"
        return fail("facetrack", f"unknown command {first!r}{hint}", EXIT_USAGE)
    return _command(first).main(rest, prog=f"facetrack {first}")
