"""The whole annual cycle (load -> run -> quality -> payments -> settle) on a DuckDB file and on a
warehouse folder, and the row-by-row comparison of every table the two publish.

Used by `tests/spark/test_cycle_parity.py` (the core run on Spark local) and by
`tests/test_warehouse.py` (the core run through the warehouse's DuckDB session, no Spark needed).
With Spark, the stage commands after the core run (quality, payments, settle) are run through the
CLI with ``--backend spark`` on the warehouse, exactly as a user runs them (on the tests' shared
session); without it, through the warehouse's DuckDB session.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from pathlib import Path

import duckdb

from allpayer import warehouse
from allpayer.cli import main

YEAR = 2024
PAID_THROUGH = "2025-03-31"
# Medicare (MSSP-style steps, CMS-HCC risk) and a self-funded employer program (employer groups,
# opt-in): every stage of the cycle, with two programs' attribution to plan instead of seven.
TERMS = ("vermont/2024/medicare.yaml", "vermont/2024/sov_employees.yaml")

# Columns that name a run (the load that brought a row, the run that computed it) or the moment a
# run happened: they differ between any two runs.
RUN_COLUMNS = {"run_id", "load_run_id", "core_run_id", "posted_at", "created_at", "computed_at", "started_at",
               "finished_at"}


def terms_paths() -> list[Path]:
    from allpayer.terms import programs_dir

    return [programs_dir() / t for t in TERMS]


def _terms_args() -> list[str]:
    out = []
    for t in terms_paths():
        out += ["--terms", str(t)]
    return out


def stage_commands(db: Path, backend: str) -> None:
    """quality, payments (the whole year) and settle (initial) of `YEAR` on `db`, through the CLI."""
    opts = ["--db", str(db), "--backend", backend]
    assert main(["quality", *opts, "--year", str(YEAR), "--paid-through", PAID_THROUGH, *_terms_args()]) == 0
    assert main(["payments", *opts, "--year", str(YEAR), "--paid-through", PAID_THROUGH, *_terms_args()]) == 0
    assert main(["settle", *opts, "--year", str(YEAR), "--version", "initial", *_terms_args()]) == 0


def duckdb_cycle(data: Path, db: Path):
    """The whole cycle on a DuckDB file; returns the core run's outcome."""
    from allpayer.inputs.load import load_folder
    from allpayer.pipeline import run_year

    load_folder(data, db)
    out = run_year(db, YEAR, terms=terms_paths(), paid_through=dt.date.fromisoformat(PAID_THROUGH))
    stage_commands(db, "duckdb")
    return out


def warehouse_cycle(data: Path, wh: Path, spark_con=None):
    """The whole cycle on a warehouse folder: every stage on Spark through `spark_con` (the stage
    commands through the CLI, whose Spark session is then `spark_con`'s), or, with None, through
    the warehouse's DuckDB session (`warehouse.duckdb_session`), one session per stage."""
    from unittest import mock

    from allpayer import backend
    from allpayer.pipeline import run_year

    assert main(["load", str(data), "--db", str(wh), "--backend", "spark"]) == 0
    paid = dt.date.fromisoformat(PAID_THROUGH)
    if spark_con is not None:
        out = run_year(wh, YEAR, terms=terms_paths(), paid_through=paid, backend="spark", spark_con=spark_con)
        # the CLI's session is the tests' one, its settings untouched (a new builder would set its own)
        with mock.patch.object(backend, "spark_session", lambda *args, **kwargs: spark_con._session):
            stage_commands(wh, "spark")
        return out
    with warehouse.duckdb_session(wh) as db:
        out = run_year(db, YEAR, terms=terms_paths(), paid_through=paid)
    duckdb_session_stages(wh)
    return out


def duckdb_session_stages(wh: Path) -> None:
    """quality, payments and settle of `YEAR` on warehouse `wh`, each through the warehouse's DuckDB
    session (the same stage code as on a DuckDB file), the ledger beside the folder."""
    from allpayer.payments.common import parse_period
    from allpayer.payments.run import run_payments
    from allpayer.quality.run import quality_year
    from allpayer.settlement.run import settle_year
    from allpayer.store import default_store_url

    paid, store = dt.date.fromisoformat(PAID_THROUGH), default_store_url(wh)
    with warehouse.duckdb_session(wh) as db:
        quality_year(db, YEAR, terms=terms_paths(), paid_through=paid)
    with warehouse.duckdb_session(wh) as db:
        run_payments(db, parse_period(year=str(YEAR)), terms=terms_paths(), store_url=store, paid_through=paid)
    with warehouse.duckdb_session(wh) as db:
        settle_year(db, YEAR, "initial", terms=terms_paths(), store_url=store)


def duckdb_tables(db: Path) -> list[str]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' ORDER BY 1").fetchall()]
    finally:
        con.close()


def _rows(con, sql: str) -> tuple[list[str], list[tuple]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    keep = [i for i, c in enumerate(cols) if c not in RUN_COLUMNS]
    return [cols[i] for i in keep], [tuple(r[i] for i in keep) for r in cur.fetchall()]


def duckdb_rows(db: Path, table: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return _rows(con, f'SELECT * FROM "{table}"')
    finally:
        con.close()


def warehouse_rows(wh: Path, table: str) -> tuple[list[str], list[tuple]]:
    src = warehouse.parquet_glob(warehouse.table_path(wh, table)).replace("'", "''")
    con = duckdb.connect()
    try:
        return _rows(con, f"SELECT * FROM read_parquet('{src}')")
    finally:
        con.close()


def _key(value):
    """A sort key that orders NULLs first and never compares values of different types."""
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, decimal.Decimal)):
        return (2, value)
    if isinstance(value, float):
        return (2, decimal.Decimal(repr(round(value, 9))) if math.isfinite(value) else decimal.Decimal(0))
    if isinstance(value, (dt.date, dt.datetime)):
        return (3, value.isoformat())
    return (4, str(value))


def same_value(a, b) -> bool:
    """Equal: money (integers, DECIMAL), dates, strings exactly; floats to a relative 1e-9."""
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def differences(table: str, expected: tuple[list[str], list[tuple]], got: tuple[list[str], list[tuple]]) -> list[str]:
    """What differs between two versions of `table` (empty when they agree row by row): the
    columns, the row counts, else the first rows that differ after sorting both on every column."""
    d_cols, d_rows = expected
    s_cols, s_rows = got
    if sorted(s_cols) != sorted(d_cols):
        return [f"{table}: columns {sorted(set(d_cols) ^ set(s_cols))} on one side only"]
    if len(s_rows) != len(d_rows):
        return [f"{table}: {len(d_rows)} rows expected, {len(s_rows)} found"]
    s_rows = [tuple(r[s_cols.index(c)] for c in d_cols) for r in s_rows]
    d_sorted = sorted(d_rows, key=lambda r: tuple(_key(v) for v in r))
    s_sorted = sorted(s_rows, key=lambda r: tuple(_key(v) for v in r))
    out = []
    for d_row, s_row in zip(d_sorted, s_sorted):
        diff = {c: (a, b) for c, a, b in zip(d_cols, d_row, s_row) if not same_value(a, b)}
        if diff:
            out.append(f"{table}: row {dict(zip(d_cols, d_row))} differs in {diff}")
            if len(out) == 3:
                break
    return out
