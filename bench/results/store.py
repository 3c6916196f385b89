"""The locked, append-only CSV store of rows: one row per run, never lost, never duplicated.

Rows are only ever appended, one line at a time under an exclusive lock (a `.<name>.lock` file
beside the report), flushed and fsynced before the lock is released: two processes appending
at once lose nothing and interleave nothing. A line cut short by a kill is never read as a row:
readers skip it and the next append cuts it off first. An append that fails (a full disk)
truncates the file back to where it was before re-raising. A report from an older version gains
the new columns (rewritten once, through a temporary file and an atomic rename, empty in its
old rows); one with columns this version does not know is refused.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import io
import os
from pathlib import Path

from bench.errors import BenchError
from bench.results.columns import NAMES, RENAMED, Row, Status, known


def append_row(path: Path, row: dict, unless_run_has: tuple = ()) -> bool:
    """Append one row under the report's lock. A report written by an older version (a subset
    of today's columns, or old names) is first rewritten with today's columns; none of its
    values change. An append that fails leaves the file exactly as it was: a full disk is a
    BenchError naming it (a rerun after freeing space finishes the suite). `unless_run_has`:
    statuses that, found on a row of the same run_id, make this append a no-op (decided under
    the lock, so two processes deciding the same thing write it once); returns whether it appended."""
    record = Row(row).csv_record()
    check_writable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path):
        if unless_run_has and any(r["run_id"] == record["run_id"] and r["status"] in unless_run_has for r in read_rows(path)):
            return False
        header, end = _header_and_complete_end(path)
        try:
            if header is not None and header != NAMES:
                with path.open("rb") as f:
                    _rewrite_with_current_columns(path, f.read(end))
                header, end = NAMES, path.stat().st_size
            with path.open("r+b" if path.exists() else "w+b") as f:
                f.truncate(end)  # a torn last line (a killed writer) is dropped
                try:
                    f.seek(end)
                    f.write(_csv_lines(header is None, record).encode())
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:
                    f.truncate(end)  # nothing half-written stays behind
                    raise
        except OSError as err:
            raise storage_error(err, path) from None
    return True


def storage_error(err: OSError, path: Path) -> BenchError:
    """A report (or a file beside it) that cannot be written, as one line; a full disk by name."""
    if err.errno == errno.ENOSPC:
        return BenchError(f"no space left on the disk holding {path.parent}: the rows written so far are kept; "
                          "free space and rerun the same command to finish the suite")
    return BenchError(f"cannot write beside the report {path}: {err.strerror or err}")


def _header_and_complete_end(path: Path, tail: int = 1 << 16) -> tuple[list | None, int]:
    """The report's header and where its last complete line ends, reading only the first
    line and the file's tail (appends stay cheap however long the report grows)."""
    if not path.exists() or path.stat().st_size == 0:
        return None, 0
    size = path.stat().st_size
    with path.open("rb") as f:
        first = f.readline()
        start = max(0, size - tail)
        while True:
            f.seek(start)
            newline = f.read(size - start).rfind(b"\n")
            if newline >= 0 or start == 0:
                break
            start = max(0, start - tail)
    end = start + newline + 1 if newline >= 0 else 0
    header = next(csv.reader([first.decode()]), None) if first.endswith(b"\n") else None
    return header, end


def read_rows(path: Path) -> list[dict]:
    """The report's complete rows (a torn last line is not a row)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    return list(csv.DictReader(io.StringIO(data[: data.rfind(b"\n") + 1].decode())))


def read_results(path: Path) -> list[Row]:
    """The report's complete rows, typed (`Row.parse`); a malformed row is a BenchError."""
    try:
        return [Row.parse(row, f"{path}: ") for row in read_rows(path)]
    except (UnicodeDecodeError, csv.Error) as err:
        raise BenchError(f"{path} is not a CSV report ({err})") from None


def one_row_per_run(rows: list[dict]) -> dict:
    """run_id -> the row that stands for that run: an ok row over any other, and of equals the
    one that ended last (a rerun with --force replaces an earlier measurement)."""
    kept = {}
    for row in rows:
        previous = kept.get(row["run_id"])
        rank = (row.get("status") == Status.OK, row.get("ended_at") or "")
        if previous is None or rank >= (previous.get("status") == Status.OK, previous.get("ended_at") or ""):
            kept[row["run_id"]] = row
    return kept


def ok_run_ids(path: Path) -> set[str]:
    return {row["run_id"] for row in read_rows(path) if row.get("status") == Status.OK}


@contextlib.contextmanager
def locked(path: Path):
    """An exclusive lock for `path`'s writers (flock on a sidecar file: the report itself may
    be replaced by a rename while someone waits)."""
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _csv_lines(with_header: bool, record: dict) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=NAMES)
    if with_header:
        writer.writeheader()
    writer.writerow(record)
    return buffer.getvalue()


def write_rows(path: Path, rows: list) -> None:
    """A new report holding these rows, written whole through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=NAMES)
        writer.writeheader()
        writer.writerows(Row(row).csv_record() for row in rows)
    os.replace(tmp, path)


def _rewrite_with_current_columns(path: Path, data: bytes) -> None:
    """An older report under today's columns (renamed ones under their new names), through a
    temporary file and an atomic rename."""
    rows = [{RENAMED.get(k, k): v for k, v in row.items()} for row in csv.DictReader(io.StringIO(data.decode()))]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=NAMES, restval="")
    writer.writeheader()
    writer.writerows(rows)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def check_writable(path: Path, create_folder: bool = False) -> None:
    """Fail before any training if the report cannot take our rows: a folder, a missing or
    read-only folder, an unreadable file, or a file with columns this version does not write."""
    if path.is_dir():
        raise BenchError(f"the report path {path} is a folder; pass --output with a .csv file name")
    if not path.parent.exists():
        if not create_folder:
            raise BenchError(f"cannot write the report: folder {path.parent} does not exist (create it, or choose another --output)")
        path.parent.mkdir(parents=True)
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BenchError(f"cannot write the report {path}: no write permission (it and its folder must be writable)")
    if path.exists():
        try:
            with path.open(newline="") as f:
                header = next(csv.reader(f), None)
        except (UnicodeDecodeError, csv.Error) as err:
            raise BenchError(f"{path} is not a CSV report this tool can read ({err}); pass --output with a new file") from None
        if header is not None and not known(header):
            extra = sorted(c for c in header if not known([c]))
            raise BenchError(
                f"{path} has columns this version does not write ({', '.join(extra[:3])}); "
                "pass --output with a new file (the existing one is left untouched)"
            )
        try:  # every row must read back: resume and the report rely on them
            read_results(path)
        except BenchError as err:
            raise BenchError(f"{err}: the existing report has a malformed row; fix or remove it, "
                             "or pass --output with a new file") from None

