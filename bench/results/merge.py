"""Combine the reports of a suite's shards (`bench/run.py --shard I/N`) into one report.

    python bench/merge.py reports/freezing-1.csv reports/freezing-2.csv --output reports/freezing.csv

One row per run_id: its first `ok` row, or else its latest row. Reports of different suites
or with different columns are refused. Prediction file links are rewritten relative to the
merged report. The output must not exist yet; it is written through a temporary file.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from bench.cli import OneLineParser, one_line_errors
from bench.errors import BenchError
from bench.results.columns import COLUMNS
from bench.results.store import one_row_per_run, read_rows


def merge(inputs: list[Path], output: Path) -> int:
    """Write the merged report; returns its number of rows."""
    if output.exists():
        raise BenchError(f"{output} exists; merge writes a new report (choose another --output)")
    headers, all_rows = set(), []
    for path in inputs:
        if not path.is_file():
            raise BenchError(f"report {path} does not exist")
        with path.open() as f:
            headers.add(tuple(next(csv.reader(f), ())))
        for row in read_rows(path):
            for link in ("predictions_file", "saved_model"):
                if row.get(link):
                    row[link] = os.path.relpath(path.parent / row[link], output.parent)
            all_rows.append(row)
    rows = one_row_per_run(all_rows)
    if len(headers) != 1 or not set(next(iter(headers))) <= set(COLUMNS):
        raise BenchError(f"the reports have different columns ({', '.join(map(str, inputs))}); merge reports of one version")
    suites = {row["suite"] for row in rows.values()}
    if len(suites) > 1:
        raise BenchError(f"the reports hold different suites ({', '.join(sorted(suites))}); merge the shards of one suite")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(next(iter(headers))))
    writer.writeheader()
    writer.writerows(rows.values())
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, output)
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

