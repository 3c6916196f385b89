"""What every command shares: option errors and bad input as one `error:` line with exit code
2, a launch's lines (the `bench` logger) and progress bars that suit a terminal or a log file."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys

from bench.errors import BenchError

# What a launch tells the person running it, line by line: the plan, each run's summary, the
# screen's and halving's verdicts. `show_progress` sends it to stdout in each launch.
log = logging.getLogger("bench")
_PROGRESS = "bench progress"  # the name of the handler show_progress adds (and replaces)


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


def show_progress(main_process: bool) -> None:
    """The `bench` logger's lines as plain lines on this moment's stdout (a terminal, a SLURM or
    worker log, a notebook's or pytest's capture), on the main process only: an N-process
    launch prints each line once. Called by every launch; a handler a user put on `bench` stays,
    and the lines do not go on to the root logger as well."""
    for handler in [h for h in log.handlers if h.name == _PROGRESS]:
        log.removeHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO if main_process else logging.WARNING)
    if main_process:
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_PROGRESS)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
