"""Run a suite: every checkpoint x strategy x seed, one CSV row per run.

    accelerate launch bench/run.py --suite offline        # 1 GPU, N GPUs (--num_processes N) or CPU
    python bench/run.py --suite offline                   # one process, no launcher
    python bench/run.py --suite freezing --dry-run        # cells and trainable parameters, no training

Before anything trains, every cell is checked: the suite, the data (columns, sizes), each
checkpoint's config and tokenizer, and each strategy built on the meta device (a freeze
pattern that matches nothing fails here). Bad input ends with one line and exit code 2;
nothing is written. A run that then does not finish is recorded as what happened (`diverged`,
`oom` or `failed`); a rerun skips the cells that already have an ok row (`--force` reruns).
The options are declared in bench/options.py; the launch is bench/launch/suite_run.py.
"""

from __future__ import annotations

import gc
import importlib
import signal
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python bench/run.py`: make the package importable, not bench/'s files
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.cli import one_line_errors
from bench.options import from_argv, suite_overrides
from bench.suite.load import load_suite


class Terminated(BaseException):
    """SIGTERM (what SLURM sends before it kills a job): like Ctrl-C, it is not an error of
    the run in flight, so no row is written for it."""


def _on_sigterm(signum, frame):
    raise Terminated()


@one_line_errors
def main(argv=None) -> int:
    options = from_argv(argv)
    suite = None if options.list else load_suite(options.suite, suite_overrides(options))
    # The launch imports the training stack (transformers, accelerate, datasets, peft): 5.3 s
    # on this 2-core machine, against 1.2 s for the options and the suite, so a mistyped flag
    # or suite is answered before it loads.
    launch = importlib.import_module("bench.launch.suite_run")
    # Between runs the launch collects garbage (a run's model must be gone before the next is
    # built). A full collection walks every object: 0.22 s a time with the training stack
    # imported (half a million objects, all alive for good). Frozen, they are left out of it.
    gc.collect()
    gc.freeze()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return launch.run_suite(options, suite)
    except (KeyboardInterrupt, Terminated) as stop:
        signal_name, code = ("SIGTERM", 143) if isinstance(stop, Terminated) else ("Ctrl-C", 130)
        print(f"stopped by {signal_name}: the run in flight is not recorded; rows already written are kept "
              "(rerun the same command to resume)", file=sys.stderr)
        return code
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
