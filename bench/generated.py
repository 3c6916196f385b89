"""Blocks of a document that the code writes: a table between two marker lines, regenerated
from what declares it (the CSV columns, the options, the decision), so the page and the code
never differ. A page without its markers is a BenchError, before anything is written."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError


def check_block(page: Path, markers: tuple[str, str]) -> None:
    """The page exists and holds both markers."""
    start, end = markers
    text = page.read_text() if page.is_file() else ""
    if start not in text or end not in text:
        raise BenchError(f"{page} has no '{start}' ... '{end}' block to fill; add the two lines where the table goes")


def fill_block(page: Path, markers: tuple[str, str], content: str) -> None:
    """Replace what lies between the page's markers with `content`."""
    check_block(page, markers)
    start, end = markers
    text = page.read_text()
    head, rest = text.split(start, 1)
    page.write_text(f"{head}{start}\n{content}\n{end}{rest.split(end, 1)[1]}")
