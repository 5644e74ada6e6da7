"""Round trip: a generated population written as FHIR bulk data loads into the same tables as
its native files (every contract column of every table FHIR carries, row for row)."""

from __future__ import annotations

import json

import duckdb
import pytest

from allpayer.cli import main
from allpayer.inputs.load import load_folder
from allpayer.inputs.schema import TABLES
from allpayer.synth.fhir_writer import write_fhir


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    out = tmp_path_factory.mktemp("rt") / "native"
    assert main(["generate", "--members", "120", "--seed", "7", "--years", "2024", "--out", str(out)]) == 0
    return out


def test_generate_fhir_load_gives_the_native_tables(native, tmp_path):
    fhir = tmp_path / "fhir"
    stats = write_fhir(native, fhir)
    assert stats.resources["ExplanationOfBenefit"] > 0 and stats.resources["Observation"] > 0
    n_db, f_db = tmp_path / "n.duckdb", tmp_path / "f.duckdb"
    load_folder(native, n_db)
    result = load_folder(fhir, f_db)
    assert result.format == "fhir"
    assert all(t.reconciles and t.quarantined == 0 for t in result.tables)
    con = duckdb.connect()
    con.execute(f"ATTACH '{n_db}' AS n (READ_ONLY)")
    con.execute(f"ATTACH '{f_db}' AS f (READ_ONLY)")
    # the payer's own files (attribution list, targets, alignments, exclusion events) are not FHIR
    # resources and are not part of the FHIR delivery; every other table must come back whole
    loaded = {t.table for t in result.tables} & set(TABLES)
    assert set(TABLES) - loaded == {"payer_attribution", "payer_target", "voluntary_alignment", "exclusion_event"}
    for table in sorted(loaded):
        spec = TABLES[table]
        cols = ", ".join(f'"{c}"' for c in spec.column_names)
        native_rows = con.execute(f"SELECT count(*) FROM n.{table}").fetchone()[0]
        assert native_rows > 0, table
        only_native = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM n.{table} EXCEPT ALL SELECT {cols} FROM f.{table})").fetchone()[0]
        only_fhir = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM f.{table} EXCEPT ALL SELECT {cols} FROM n.{table})").fetchone()[0]
        assert (table, only_native, only_fhir) == (table, 0, 0)
    # values with no FHIR element travelled as column extensions, and the writer says which
    assert stats.extension_columns["medical_claim.payment_arrangement"] > 0
    assert "medical_claim.paid_amount" not in stats.extension_columns
    assert "medical_claim.hcpcs_code" not in stats.extension_columns


def test_generate_format_fhir(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["generate", "--members", "20", "--seed", "2", "--years", "2024", "--out", str(out), "--format", "fhir"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "Coverage.ndjson", "ExplanationOfBenefit.ndjson", "Observation.ndjson", "Organization.ndjson", "Patient.ndjson",
        "Practitioner.ndjson", "employer_group.parquet", "manifest.json", "provider_roster.parquet",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format"] == "fhir" and manifest["row_counts"]["Patient"] == 20
    assert main(["generate", "--members", "20", "--out", str(out), "--format", "fhir", "--inject-errors", "0.1"]) == 2
    assert "--inject-errors works with --format parquet or csv" in capsys.readouterr().err
