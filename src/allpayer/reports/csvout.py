"""CSV form of a `Report`: one long table (section, row, column, value), the same display values
as the HTML and PDF, so a total read from the PDF equals the CSV's.

The first rows are the report's totals (section ``totals``, column ``value``), then every table
row by row, then the provenance (run id and sources)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterator

from allpayer.reports.base import Report

HEADER = ["report", "organization", "year", "period", "run_id", "section", "row", "column", "value"]


def records(report: Report) -> list[list[str]]:
    head = _head(report)
    return [head + r for r in _tail_records(report)]


def _head(report: Report) -> list[str]:
    return [report.kind, report.org, str(report.year), report.period_label, report.run_id]


def _tail_records(report: Report) -> Iterator[list[str]]:
    """The rows of `records` after the report's own first five fields (the same in every row)."""
    for label, value in report.totals:
        yield ["totals", label, "value", value]
    for t in report.tables:
        cols = t.columns[1:]
        for row in t.rows:
            if len(row) < 2:  # no value cells
                continue
            first = str(row[0])
            for col, v in zip(cols, row[1:]):
                yield [t.key, first, col, str(v)]
    for k, v in report.provenance:
        yield ["provenance", k, "value", v]


class _Prefixed:
    """A file that writes `prefix` before each line the CSV writer gives it (one call per row)."""

    def __init__(self, f, prefix: str):
        self.f, self.prefix = f, prefix

    def write(self, line: str) -> int:
        return self.f.write(self.prefix + line)


def write_csv(report: Report, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.slug}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerow(HEADER)
        # The five leading fields are the same in every row: written once as CSV, then put before
        # each row of the other four (a practice's report has a row per cell of its member list).
        head = io.StringIO()
        csv.writer(head, lineterminator="").writerow(_head(report) + [""])
        csv.writer(_Prefixed(f, head.getvalue())).writerows(_tail_records(report))
    return path
