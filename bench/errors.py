"""The one exception for bad input, and how a library's long message becomes one line.

A `BenchError` is a problem with what the user gave (a suite, data, a checkpoint, a flag, a
report): every command prints it as one `error:` line and exits with code 2 (bench/cli.py),
and the Python API raises it as it is. Anything else that goes wrong in a run is recorded as
that run's row (`failed`, `oom`, `diverged`), never raised to the user.
"""


class BenchError(Exception):
    """A problem with the user's input (suite, data, checkpoint). Reported as one line, exit code 2."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to many lines),
    or its type name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
