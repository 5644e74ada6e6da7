"""Parquet columns delivered typed (DATE, BOOLEAN, DECIMAL money, 32-bit integers) are validated
without their text: the loaded rows, the quarantine (rules, messages, delivered text) and the
counts must be exactly those of the same values delivered as text."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from allpayer.inputs import load as loader
from allpayer.inputs import readers, validate
from allpayer.inputs.schema import TABLES

from .conftest import BASE, build_delivery, query

TYPED = {
    "claim_line_number": pa.int32(),
    "adjustment_sequence": pa.int32(),
    "claim_start_date": pa.date32(),
    "claim_end_date": pa.date32(),
    "claim_line_start_date": pa.date32(),
    "claim_line_end_date": pa.date32(),
    "paid_date": pa.date32(),
    "paid_amount": pa.decimal128(18, 2),
    "allowed_amount": pa.decimal128(12, 2),
    "charge_amount": pa.decimal128(18, 2),
    "substance_use_redacted": pa.bool_(),
}

FAR_FUTURE = dt.date(9999, 12, 31).toordinal() - dt.date(1970, 1, 1).toordinal() + 200  # a day of year 10000


def _rows() -> tuple[list[str], list[dict]]:
    with (BASE / "medical_claim.csv").open(newline="") as f:
        r = csv.DictReader(f)
        header, rows = list(r.fieldnames), list(r)
    first = rows[0]
    bad = [
        dict(first, claim_id="T1", paid_amount="-5.00"),  # negative on an original line
        dict(first, claim_id="T2", claim_start_date="1850-03-01"),  # outside 1900..2099
        dict(first, claim_id="T3", claim_line_end_date="2024-02-01"),  # before its start
        dict(first, claim_id="T4", claim_line_number="0"),  # below 1
        dict(first, claim_id="T5", adjustment_sequence=""),  # the original line by default
        dict(first, claim_id="T6", paid_date=""),  # required
        dict(first, claim_id="T7", payment_arrangement="capitated", paid_amount="12.00"),  # shadow claim paid
        dict(first, claim_id="T8", charge_amount="99999999999999.99", substance_use_redacted=""),
        dict(first, claim_id="T9", claim_end_date="FAR"),  # a Parquet date past year 9999
        dict(rows[1]),  # an exact copy of line 2
        dict(first, paid_amount="1.23"),  # the key of line 1 with different content
    ]
    return header, rows + bad


def _write(header: list[str], rows: list[dict], out: Path, typed: bool) -> None:
    cols = {}
    for name in header:
        values = [r[name] or None for r in rows]
        kind = TYPED.get(name) if typed else None
        if kind is None:
            # as text; the far-future date as the text DuckDB gives it
            far = duckdb.sql(f"SELECT CAST(DATE '1970-01-01' + {FAR_FUTURE} AS VARCHAR)").fetchone()[0]
            cols[name] = pa.array([far if v == "FAR" else v for v in values], pa.string())
        elif pa.types.is_date32(kind):
            days = [
                None if v is None else FAR_FUTURE if v == "FAR" else dt.date.fromisoformat(v).toordinal() - 719163
                for v in values
            ]
            cols[name] = pa.array(days, pa.int32()).cast(pa.date32())
        elif pa.types.is_decimal(kind):
            cols[name] = pa.array([None if v is None else Decimal(v) for v in values], kind)
        elif pa.types.is_boolean(kind):
            cols[name] = pa.array([None if v is None else v == "true" for v in values], kind)
        else:
            cols[name] = pa.array([None if v is None else int(v) for v in values], kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), out)


def _load(tmp_path: Path, name: str, typed: bool) -> Path:
    folder = build_delivery(tmp_path / name)
    (folder / "medical_claim.csv").unlink()
    header, rows = _rows()
    _write(header, rows, folder / "medical_claim.parquet", typed)
    db = tmp_path / f"{name}.duckdb"
    loader.load_folder(folder, db)
    return db


def test_typed_columns_are_read_typed(tmp_path):
    header, rows = _rows()
    _write(header, rows, tmp_path / "medical_claim.parquet", True)
    f = readers.InputFile(table="medical_claim", path=tmp_path / "medical_claim.parquet", relpath="medical_claim.parquet")
    spec = validate.restrict(TABLES["medical_claim"], readers.check_columns(f, TABLES["medical_claim"]))
    source = readers.parquet_source(duckdb.connect(), f, spec, native=True)
    assert set(source.native) == set(TYPED)
    assert readers.parquet_source(duckdb.connect(), f, spec).native == ()


def test_native_kinds():
    assert validate.native_kind("money", "DECIMAL(18,2)")
    assert validate.native_kind("money", "DECIMAL(9,2)")
    assert not validate.native_kind("money", "DECIMAL(18,3)")  # fractions of a cent are a rule
    assert not validate.native_kind("money", "DECIMAL(38,2)")  # more whole digits than the contract's
    assert not validate.native_kind("money", "INTEGER")  # its text has no decimals
    assert validate.native_kind("int", "INTEGER") and not validate.native_kind("int", "BIGINT")
    assert validate.native_kind("date", "DATE") and validate.native_kind("bool", "BOOLEAN")
    assert not validate.native_kind("string", "DATE") and not validate.native_kind("decimal", "DECIMAL(18,4)")


def test_typed_parquet_loads_and_quarantines_exactly_as_text(tmp_path):
    typed, text = _load(tmp_path, "typed", True), _load(tmp_path, "text", False)
    stored = "SELECT * EXCLUDE (load_run_id) FROM medical_claim ORDER BY line_number"
    assert query(typed, stored) == query(text, stored)
    assert len(query(typed, stored)) == 10  # the base's 8 lines, T5 (default adjustment) and T8
    quarantine = (
        "SELECT source_file, line_number, rule, rules, message, raw_row FROM quarantine "
        "WHERE table_name = 'medical_claim' ORDER BY line_number"
    )
    got = query(typed, quarantine)
    assert got == query(text, quarantine)
    by_line = {line: (rules, message) for _, line, _, rules, message, _ in got}
    assert sorted(by_line) == [9, 10, 11, 12, 14, 15, 17, 18, 19]
    assert by_line[9] == ("negative_amount", "paid_amount is negative (-5.00) on an original line (adjustment_sequence 0)")
    assert by_line[10] == ("date_range", "claim_start_date: 1850-03-01 is outside 1900-01-01..2099-12-31")
    assert by_line[11] == ("date_order", "claim_line_end_date 2024-02-01 is before claim_line_start_date 2024-02-05")
    assert by_line[12] == ("out_of_range", "claim_line_number 0 is below 1")
    assert by_line[14] == ("required", "paid_date is required")
    assert by_line[15] == (
        "shadow_claim_paid", "paid_amount 12.00 on a shadow claim (payment_arrangement capitated) must be 0"
    )
    assert by_line[17] == ("type_date", "claim_end_date: '10000-07-18' is not a date (YYYY-MM-DD)")
    assert by_line[18] == ("duplicate_row", "exact copy of medical_claim.parquet line 2")
    assert by_line[19][0] == "conflicting_duplicate"
    raw = {line: r for _, line, _, _, _, r in got}
    assert '"paid_amount":"-5.00"' in raw[9] and '"claim_start_date":"1850-03-01"' in raw[10]
    assert '"claim_line_number":"0"' in raw[12] and '"substance_use_redacted":"false"' in raw[9]
    assert '"claim_end_date":"10000-07-18"' in raw[17]
    assert '"paid_amount":"1.23"' in raw[19]  # a valid duplicate's delivered text, typed columns as text
    reconciliation = "SELECT * EXCLUDE (run_id) FROM load_reconciliation ORDER BY table_name"
    assert query(typed, reconciliation) == query(text, reconciliation)
