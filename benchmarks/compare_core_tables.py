"""Compare the core tables of two runs row by row, apart from ``run_id``.

Used to check that a change to how the pipeline computes leaves its results unchanged: run the
same population before and after, then compare. Each side is a DuckDB database written by
`allpayer run`, or a folder of ``<table>.parquet`` files written by `allpayer export`.

    .venv/bin/python benchmarks/compare_core_tables.py BEFORE AFTER [--year 2024]

For every table of ``allpayer.pipeline.STAGES`` present on either side it prints the row counts
and the rows found on one side only (as multisets: a duplicated row counts twice), and exits 1
when any table differs. Floating-point columns (risk scores and ratios) are compared rounded to
``--digits`` decimals (default 9): DuckDB's parallel sums do not add in a fixed order, so two runs
of the same code can differ in the last binary digit. Every other column is compared exactly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from allpayer.pipeline import STAGES

YEAR_COLUMN = {"tcoc_reconciliation": "service_year", "tcoc_truncation": "year", "tcoc_summary": "year",
               "utilization": "year", "leakage": "year"}


def compare(before: Path, after: Path, year: int | None, digits: int = 9) -> int:
    con = duckdb.connect()
    for side, path in (("before", before), ("after", after)):
        if not path.is_dir():
            con.execute(f"ATTACH '{path}' AS {side} (READ_ONLY)")
    differs = 0
    for table in STAGES:
        views = {}
        for side, path in (("before", before), ("after", after)):
            views[side] = _view(con, side, path, table, year)
        if views["before"] is None and views["after"] is None:
            continue
        if None in views.values():
            print(f"{table:28s} present on one side only")
            differs += 1
            continue
        cols_b = [r[0] for r in con.execute(f"DESCRIBE {views['before']}").fetchall() if r[0] != "run_id"]
        cols_a = [r[0] for r in con.execute(f"DESCRIBE {views['after']}").fetchall() if r[0] != "run_id"]
        if cols_b != cols_a:
            print(f"{table:28s} columns differ: {sorted(set(cols_b) ^ set(cols_a)) or 'order'}")
            differs += 1
            continue
        types = {r[0]: r[1] for r in con.execute(f"DESCRIBE {views['before']}").fetchall()}
        sel = ", ".join(f'round("{c}", {int(digits)}) AS "{c}"' if types[c] in ("DOUBLE", "FLOAT") else f'"{c}"'
                        for c in cols_b)
        n_b = con.execute(f"SELECT count(*) FROM {views['before']}").fetchone()[0]
        n_a = con.execute(f"SELECT count(*) FROM {views['after']}").fetchone()[0]
        only_b = con.execute(
            f"SELECT count(*) FROM (SELECT {sel} FROM {views['before']} EXCEPT ALL SELECT {sel} FROM {views['after']})"
        ).fetchone()[0]
        only_a = con.execute(
            f"SELECT count(*) FROM (SELECT {sel} FROM {views['after']} EXCEPT ALL SELECT {sel} FROM {views['before']})"
        ).fetchone()[0]
        same = only_a == 0 and only_b == 0
        differs += not same
        print(f"{table:28s} rows {n_b:>9} / {n_a:>9}  only before {only_b:>7}  only after {only_a:>7}  "
              f"{'identical' if same else 'DIFFERENT'}")
    return 1 if differs else 0


def _view(con: duckdb.DuckDBPyConnection, side: str, path: Path, table: str, year: int | None) -> str | None:
    base = f"{side}_{table}_base"
    if path.is_dir():
        f = path / f"{table}.parquet"
        if not f.exists():
            return None
        con.execute(f"CREATE OR REPLACE VIEW {base} AS SELECT * FROM read_parquet('{f}')")
    else:
        names = {r[0] for r in con.execute(
            f"SELECT table_name FROM information_schema.tables WHERE table_catalog = '{side}'").fetchall()}
        if table not in names:
            return None
        con.execute(f"CREATE OR REPLACE VIEW {base} AS SELECT * FROM {side}.main.{table}")
    cols = [r[0] for r in con.execute(f"DESCRIBE {base}").fetchall()]
    ycol = YEAR_COLUMN.get(table, "performance_year")
    view = f"{side}_{table}"
    where = f"WHERE {ycol} = {int(year)}" if year is not None and ycol in cols else ""
    con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM {base} {where}")
    return view


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--year", type=int, default=None, help="compare only this performance year's rows")
    ap.add_argument("--digits", type=int, default=9, help="decimals kept of floating-point columns")
    a = ap.parse_args(argv)
    return compare(a.before, a.after, a.year, a.digits)


if __name__ == "__main__":
    sys.exit(main())
