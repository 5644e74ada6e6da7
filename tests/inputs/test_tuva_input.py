"""Tuva input layer tables (the pinned version) load as they are, from CSV or Parquet.

The Tuva files here are built from the hand-checked base delivery: every column of the pinned
Tuva table (tuva_input_layer_columns.csv) in Tuva's order, the base values where the contract has
the column, and the allpayer extensions left out.
"""

from __future__ import annotations

import csv

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from allpayer.inputs.formats import detect_format
from allpayer.inputs.load import load_folder
from allpayer.reference import tuva_input_layer_columns

from .conftest import BASE, query

TUVA_EXTRA = {"first_name": "Ann", "last_name": "Example", "file_name": "claims_2024_02.csv", "ingest_datetime": "2024-03-01 10:00:00"}


def tuva_rows(table: str) -> tuple[list[str], list[dict]]:
    cols = list(tuva_input_layer_columns()[table])
    with open(BASE / f"{table}.csv", newline="") as f:
        base = list(csv.DictReader(f))
    if table == "medical_claim":
        base = [r for r in base if r.get("adjustment_sequence", "0") == "0" and r["payment_arrangement"] == "ffs"]
    rows = [{c: r.get(c, TUVA_EXTRA.get(c, "")) for c in cols} for r in base]
    return cols, rows


def write_tuva(folder, fmt: str) -> None:
    folder.mkdir()
    for table in ("eligibility", "medical_claim"):
        cols, rows = tuva_rows(table)
        if fmt == "csv":
            with open(folder / f"{table}.csv", "w", newline="") as f:
                w = csv.DictWriter(f, cols)
                w.writeheader()
                w.writerows(rows)
        else:
            data = {c: pa.array([r[c] or None for r in rows], pa.string()) for c in cols}
            pq.write_table(pa.table(data), folder / f"{table}.parquet")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tuva_tables_load_as_they_are(tmp_path, fmt):
    folder = tmp_path / "tuva"
    write_tuva(folder, fmt)
    assert detect_format(folder) == "tuva"
    db = tmp_path / "db.duckdb"
    result = load_folder(folder, db)
    assert result.format == "tuva"
    _, elig = tuva_rows("eligibility")
    _, med = tuva_rows("medical_claim")
    by = {t.table: t for t in result.tables}
    assert set(by) == {"eligibility", "medical_claim"}  # no provider_roster needed
    assert all(t.reconciles for t in result.tables)
    assert by["eligibility"].read == len(elig) and by["medical_claim"].read == len(med)
    # the Tuva columns the contract lacks are reported, not loaded
    extra = by["eligibility"].extra_columns[f"eligibility.{fmt}"]
    assert {"social_security_number", "file_name", "ingest_datetime"} <= set(extra)
    assert "social_security_number" not in [r[0] for r in query(db, "DESCRIBE eligibility")]
    # the contact fields are loaded (care-gap lists carry them for outreach)
    assert {"first_name", "last_name"}.isdisjoint(extra)
    assert query(db, "SELECT DISTINCT first_name, last_name FROM eligibility") == [("Ann", "Example")]
    # rows of a file without payment_arrangement are fee-for-service
    assert query(db, "SELECT DISTINCT payment_arrangement FROM medical_claim") == [("ffs",)]
    # and the loaded values are the base values (claim C1 line 1: paid 92.50)
    assert query(db, "SELECT paid_amount::VARCHAR FROM medical_claim WHERE claim_id = 'C1' AND claim_line_number = 1") == [("92.50",)]


def test_a_tuva_row_that_breaks_the_contract_is_quarantined(tmp_path):
    folder = tmp_path / "tuva"
    write_tuva(folder, "csv")
    path = folder / "medical_claim.csv"
    text = path.read_text().splitlines()
    text[1] = text[1].replace("2024-02-20", "2024-02-30", 1)  # paid_date of line 2: not a date
    path.write_text("\n".join(text) + "\n")
    db = tmp_path / "db.duckdb"
    load_folder(folder, db)
    assert query(db, "SELECT line_number, rule FROM quarantine") == [(2, "type_date")]


def test_native_delivery_missing_payment_arrangement_still_fails(tmp_path):
    """Without Tuva-only columns a medical_claim file lacking payment_arrangement is a native
    file with a missing column, as before."""
    from allpayer.errors import InputFileError

    from .conftest import build_delivery

    folder = build_delivery(tmp_path / "in", only_required=True)
    path = folder / "medical_claim.csv"
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = [c for c in rows[0] if c != "payment_arrangement"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    assert detect_format(folder) == "native"
    with pytest.raises(InputFileError, match="missing required column payment_arrangement"):
        load_folder(folder, tmp_path / "db.duckdb")
    # told it is Tuva, it loads with the ffs default
    result = load_folder(folder, tmp_path / "db.duckdb", fmt="tuva")
    assert result.table("medical_claim").reconciles
