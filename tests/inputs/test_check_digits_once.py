"""The loader tests the check digits of NPIs and LOINC codes on each column's distinct values
(`load._number_check_failures`) and then, row by row, only membership in the list of those that
fail; with more failing values than it lists, the column is checked row by row as before. Both
ways quarantine the same rows with the same messages."""

from __future__ import annotations

import duckdb
import pytest

from allpayer.inputs import load as loader
from allpayer.inputs import validate
from allpayer.inputs.schema import TABLES

from .conftest import build_delivery, query
from .test_bad_data import QUARANTINED

VALID = "1234567893"  # the CMS example NPI
WRONG_DIGIT = "1234567890"
ALSO_WRONG = "1234567891"


def _failures(values: dict[str, list[str | None]], table: str = "medical_claim"):
    """`_number_check_failures` of a staged view of `table` (medical claims) whose code columns
    hold `values` (the key columns empty)."""
    spec = validate.restrict(TABLES[table], list(values))

    def lit(v: str | None) -> str:
        return "NULL" if v is None else f"'{v}'"

    rows = " UNION ALL ".join(
        "SELECT " + ", ".join(f"CAST({lit(vs[i])} AS VARCHAR) AS {name}" for name, vs in values.items())
        + "".join(f", CAST(NULL AS VARCHAR) AS {k}" for k in spec.key if k not in values)
        + f", 'f.csv' AS source_file, {i + 2} AS line_number"
        for i in range(len(next(iter(values.values()))))
    )
    con = duckdb.connect()
    con.execute(f"CREATE TEMP VIEW _stage_{table} AS {rows}")
    return dict(loader._number_check_failures(con, spec))


def test_the_failing_numbers_are_found_on_the_distinct_values():
    got = _failures({
        "rendering_npi": [VALID, WRONG_DIGIT, WRONG_DIGIT, " 1234567891 ", "3234567893", "12345", None],
        "billing_npi": [VALID, VALID, None, VALID, VALID, VALID, VALID],
    })
    # the wrong check digits (trimmed as the loader trims), not the wrong shapes: those fail
    # the format's pattern, which is still tested on every row
    assert got == {"rendering_npi": (1234567890, 1234567891), "billing_npi": ()}


def test_the_failing_loinc_codes_are_found_as_numbers_of_their_digits():
    got = _failures({"normalized_code": ["4548-4", "4548-3", "4548-3", "0004548-4", "12345-5", "4548", "4548-44", None]},
                    "lab_result")
    # 4548-3 is read as 45483; 4548-4 (also with zeros on the left) and 12345-5 are valid, and
    # 4548 and 4548-44 fail the shape, tested on every row
    assert got == {"normalized_code": (45483,)}


def test_a_column_with_more_failing_values_than_listed_is_checked_row_by_row(monkeypatch):
    monkeypatch.setattr(loader, "MAX_LISTED_FAILURES", 1)
    got = _failures({"rendering_npi": [WRONG_DIGIT, ALSO_WRONG], "billing_npi": [WRONG_DIGIT, VALID]})
    assert got == {"billing_npi": (1234567890,)}


def test_the_listed_check_compiles_no_arithmetic():
    cols = tuple(TABLES["medical_claim"].column_names)
    listed = (("billing_npi", ()), ("facility_npi", ()), ("rendering_npi", (1234567890,)))
    by_row = loader._validation_sql("medical_claim", cols)
    by_list = loader._validation_sql("medical_claim", cols, None, (), listed)
    assert by_row.count("FLOOR") >= 3 * 5
    assert "FLOOR" not in by_list
    assert "[1234567890]" in by_list


@pytest.mark.parametrize("case", ["malformed_codes", "payer_files"])
@pytest.mark.parametrize("listed", [0, 32])
def test_both_ways_quarantine_the_same_rows(tmp_path, monkeypatch, case, listed):
    """With nothing listed (every column with a failing NPI checked row by row) and with the
    lists, the broken-input cases quarantine exactly their expected rows."""
    monkeypatch.setattr(loader, "MAX_LISTED_FAILURES", listed)
    folder = build_delivery(tmp_path / "in", case, only_required=True)
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(folder, db)
    expected = QUARANTINED[case]
    got = query(db, "SELECT table_name, line_number, rules, message FROM quarantine")
    assert set(got) == {(table, line, rules, message) for table, rows in expected.items() for line, rules, message in rows}
    assert all(t.reconciles for t in result.tables)
