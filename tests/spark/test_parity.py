"""Backend parity: every core stage computed on DuckDB and on Spark local over the same small
synthetic population gives the same table, row by row.

Both backends run the same `pipeline.run_core` (the Spark run through `--backend spark`'s warehouse
folder, `allpayer.warehouse`). Each table is compared without its `run_id`, rows sorted on every
column: integers, strings, dates, booleans and DECIMAL money exactly; floating-point columns (risk
scores and ratios, which are not money) to a relative 1e-9.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math

import duckdb
import pytest

from allpayer import warehouse
from allpayer.pipeline import STAGES

from .conftest import YEAR


def duckdb_rows(db, table: str) -> tuple[list[str], list[tuple]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute(f'SELECT * EXCLUDE (run_id) FROM "{table}"')
        return [d[0] for d in cur.description], cur.fetchall()
    finally:
        con.close()


def warehouse_rows(wh, table: str) -> tuple[list[str], list[tuple]]:
    src = warehouse.parquet_glob(warehouse.table_path(wh, table))
    con = duckdb.connect()
    try:
        cur = con.execute(f"SELECT * EXCLUDE (run_id) FROM read_parquet('{src}')")
        return [d[0] for d in cur.description], cur.fetchall()
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


def sorted_rows(columns: list[str], rows: list[tuple], order: list[str]) -> list[tuple]:
    idx = [columns.index(c) for c in order]
    return sorted(rows, key=lambda r: tuple(_key(r[i]) for i in idx))


def same_value(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def test_both_backends_ran_every_stage(duckdb_result, spark_result):
    _, d = duckdb_result
    _, s = spark_result
    assert set(s.core.rows) == set(d.core.rows)
    assert s.core.programs == d.core.programs
    assert s.paid_through == d.paid_through


@pytest.mark.parametrize("table", STAGES)
def test_stage_table_is_identical_on_spark(table, duckdb_result, spark_result):
    db, d = duckdb_result
    wh, s = spark_result
    if table not in d.core.rows:
        pytest.skip(f"{table}: no program of {YEAR} computes it")
    d_cols, d_rows = duckdb_rows(db, table)
    s_cols, s_rows = warehouse_rows(wh, table)
    assert sorted(s_cols) == sorted(d_cols), table
    assert len(s_rows) == len(d_rows) > 0, table
    # Same column order for both, then every column as the sort key.
    s_rows = [tuple(r[s_cols.index(c)] for c in d_cols) for r in s_rows]
    d_sorted = sorted_rows(d_cols, d_rows, d_cols)
    s_sorted = sorted_rows(d_cols, s_rows, d_cols)
    for d_row, s_row in zip(d_sorted, s_sorted):
        diff = {c: (a, b) for c, a, b in zip(d_cols, d_row, s_row) if not same_value(a, b)}
        assert not diff, f"{table}: first differing row {dict(zip(d_cols, d_row))}: {diff}"


def test_money_totals_agree_to_the_cent(duckdb_result, spark_result):
    """Sums of the cents columns of the cost tables are equal (the check that caught a $7.10
    difference in an early prototype whose rows matched)."""
    db, _ = duckdb_result
    wh, _ = spark_result
    for table in ("tcoc_member_month", "targets"):
        cols, rows = duckdb_rows(db, table)
        s_cols, s_rows = warehouse_rows(wh, table)
        cents = [c for c in cols if c.endswith("_cents")]
        assert cents, table
        for c in cents:
            d_sum = sum(r[cols.index(c)] or 0 for r in rows)
            s_sum = sum(r[s_cols.index(c)] or 0 for r in s_rows)
            assert d_sum == s_sum, (table, c)


def test_warehouse_records_the_runs(spark_result):
    wh, s = spark_result
    records = warehouse.published_runs(wh)
    assert [r["kind"] for r in records] == ["load", "run"]
    assert [r["seq"] for r in records] == [1, 2]
    assert records[-1]["run_id"] == s.run_id
    assert records[-1]["parameters"]["backend"] == "spark"
    assert records[-1]["summary"]["rows"] == s.core.rows
