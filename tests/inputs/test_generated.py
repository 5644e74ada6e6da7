"""The loader on data from the synthetic generator (`allpayer.synth`): clean data loads with no
quarantined row, and every row the generator deliberately broke is quarantined with the rule
that matches how it was broken."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from allpayer.inputs import load as loader
from allpayer.synth import generate

from .conftest import query

# how the generator breaks a row -> the rule that must catch it
RULE_OF_KIND = {
    "bad_date": "type_date",
    "malformed_code": "code_format",
    "negative_amount": "negative_amount",
    "non_numeric_amount": "money_format",
    "missing_required_key": "required",
    "conflicting_duplicate_line": "conflicting_duplicate",
}

def test_clean_generated_data_loads_with_nothing_quarantined(tmp_path):
    manifest = generate(150, 11, tmp_path / "clean", fmt="parquet", years=(2024,))
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(tmp_path / "clean", db)
    rows = json.loads((tmp_path / "clean" / "manifest.json").read_text())["row_counts"]
    assert {t.table: t.read for t in result.tables} == rows
    assert {t.table: (t.loaded, t.quarantined) for t in result.tables} == {t: (n, 0) for t, n in rows.items()}
    assert result.ignored_files == ["manifest.json"]
    assert query(db, "SELECT count(*) FROM quarantine") == [(0,)]
    # the generator's claims outside enrollment are kept and flagged
    assert result.table("medical_claim").outside_eligibility == query(
        db, "SELECT count(*) FROM medical_claim WHERE outside_eligibility"
    )[0][0]
    assert manifest is not None
    # loading the same files again changes nothing
    again = loader.load_folder(tmp_path / "clean", db)
    assert {t.table: (t.loaded, t.already_loaded, t.quarantined) for t in again.tables} == {
        t: (0, n, 0) for t, n in rows.items()
    }


@pytest.mark.parametrize("fmt, first_line", [("csv", 2), ("parquet", 1)])
def test_every_injected_row_is_quarantined(tmp_path, fmt, first_line):
    out = tmp_path / "bad"
    generate(150, 12, out, fmt=fmt, years=(2024,), inject_errors=0.04)
    with (out / "injected_errors.csv").open(newline="") as f:
        injected = {(r["table"], int(r["row_number"]) + first_line): r["kind"] for r in csv.DictReader(f)}
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(sum(k.values()) for k in manifest["injected_errors"].values()) == len(injected)
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(out, db)
    assert all(t.reconciles for t in result.tables)
    quarantined = {(t, line): rules for t, line, rules in query(db, "SELECT table_name, line_number, rules FROM quarantine")}
    caught = Counter()
    for (table, line), kind in injected.items():
        assert (table, line) in quarantined, (table, line, kind)
        assert RULE_OF_KIND[kind] in quarantined[(table, line)].split(","), (table, line, kind)
        caught[kind] += 1
    # nothing else is quarantined: the rest of the generated data is valid
    assert set(quarantined) == set(injected)
    assert set(caught) == set(RULE_OF_KIND)  # every kind occurred and was caught
