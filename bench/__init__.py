"""finetune-bench: suites of pretrained checkpoints x fine-tuning strategies, one CSV row per run.

The path through the code follows the file names:
    suites/<name>.yaml -> bench/suite.py (cells) -> bench/data.py + bench/checkpoints.py
    -> bench/strategies.py (model to train) -> bench/train.py (one run) -> bench/results_csv.py (CSV row)
`bench/run.py` is the command line that strings them together.
"""


class BenchError(Exception):
    """A problem with the user's input (suite, data, checkpoint). Reported as one line, exit code 2."""


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (libraries' messages run to many lines),
    or its type name when the message is empty."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
