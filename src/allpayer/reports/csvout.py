"""CSV form of a `Report`: one long table (section, row, column, value), the same display values
as the HTML and PDF, so a total read from the PDF equals the CSV's.

The first rows are the report's totals (section ``totals``, column ``value``), then every table
row by row, then the provenance (run id and sources)."""

from __future__ import annotations

import csv
from pathlib import Path

from allpayer.reports.base import Report

HEADER = ["report", "organization", "year", "period", "run_id", "section", "row", "column", "value"]


def records(report: Report) -> list[list[str]]:
    head = [report.kind, report.org, str(report.year), report.period_label, report.run_id]
    out = [head + ["totals", label, "value", value] for label, value in report.totals]
    for t in report.tables:
        for row in t.rows:
            for col, v in zip(t.columns[1:], row[1:]):
                out.append(head + [t.key, str(row[0]), col, str(v)])
    out += [head + ["provenance", k, "value", v] for k, v in report.provenance]
    return out


def write_csv(report: Report, out: Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.slug}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        w.writerows(records(report))
    return path
