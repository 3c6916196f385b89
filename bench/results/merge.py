"""Combine the reports of a suite's shards (`bench/run.py --shard I/N`) into one report.

    python bench/merge.py reports/freezing-1.csv reports/freezing-2.csv --output reports/freezing.csv

One row per run_id, as every reader counts them (bench/results/store.py `one_row_per_run`): an
ok row over any other, and of equals the one that ended last. Reports are read by the store's
reader (older column names under today's) and written with today's columns; reports of
different suites are refused. Prediction file links are rewritten relative to the merged
report. The output must not exist yet; it is written through a temporary file.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench.cli import OneLineParser, one_line_errors
from bench.errors import BenchError
from bench.results.store import (
    check_writable,
    one_row_per_run,
    read_results,
    write_rows,
)


def merge(inputs: list[Path], output: Path) -> int:
    """Write the merged report; returns its number of rows."""
    if output.exists():
        raise BenchError(f"{output} exists; merge writes a new report (choose another --output)")
    all_rows = []
    for path in inputs:
        if not path.is_file():
            raise BenchError(f"report {path} does not exist")
        check_writable(path)  # a file of unknown columns is refused here, by name
        for row in read_results(path):
            for link in ("predictions_file", "saved_model"):
                if row.get(link):
                    row[link] = os.path.relpath(path.parent / row[link], output.parent)
            all_rows.append(row)
    rows = one_row_per_run(all_rows)
    suites = {row["suite"] for row in rows.values()}
    if len(suites) > 1:
        raise BenchError(f"the reports hold different suites ({', '.join(sorted(suites))}); merge the shards of one suite")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_rows(output, list(rows.values()))
    return len(rows)


@one_line_errors
def main(argv=None) -> int:
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="shard reports (CSV)")
    parser.add_argument("--output", type=Path, required=True, help="the merged report to write (must not exist)")
    args = parser.parse_args(argv)
    count = merge(args.reports, args.output)
    print(f"{count} runs from {len(args.reports)} reports written to {args.output}")
    return 0

