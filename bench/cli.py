"""What every command shares: option errors and bad input as one `error:` line with exit code
2, and progress bars that suit a terminal or a log file."""

from __future__ import annotations

import argparse
import functools
import os
import sys

from bench.errors import BenchError


class OneLineParser(argparse.ArgumentParser):
    """Option errors as one `error:` line and exit code 2, like every other bad input."""

    def error(self, message):
        print(f"error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def one_line_errors(main):
    """A command's `main(argv)`: a BenchError becomes one `error:` line (printed by the first
    process only, when several train together) and exit code 2, never a traceback."""

    @functools.wraps(main)
    def wrapped(argv=None) -> int:
        try:
            return main(argv)
        except BenchError as err:
            if int(os.environ.get("RANK", "0")) == 0:
                print(f"error: {err}", file=sys.stderr)
            return 2

    return wrapped


def progress_interval() -> float:
    """Seconds between progress-bar updates: live on a terminal; every 10 s when the output is
    a file (a SLURM log, a worker's log), so a log holds lines, not thousands of bar redraws."""
    return 0.1 if sys.stderr.isatty() else 10.0
