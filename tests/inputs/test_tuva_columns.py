"""The contract follows the Tuva input layer at the pinned version: every column of a Tuva table
that is not an allpayer extension is a Tuva column, spelled the same."""

from __future__ import annotations

import csv

import pytest

from allpayer.inputs.schema import TABLES, TUVA_VERSION
from allpayer.reference import data_path, tuva_input_layer_columns, tuva_input_layer_version

TUVA_TABLES = [t for t in TABLES.values() if not t.extension]


def test_shipped_column_list_is_the_pinned_version():
    assert tuva_input_layer_version() == TUVA_VERSION == "0.14.2"
    with data_path("tuva_input_layer_columns.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["source"].split(" models/")[0] for r in rows} == {
        "tuva-health/tuva tag v0.14.2 (commit 48dcf061b512d522a52d1b0e3e775a97d6bfa7bc)"
    }
    # positions run 1..n within each table, as in the Tuva model files
    for table, cols in tuva_input_layer_columns().items():
        positions = [int(r["position"]) for r in rows if r["table"] == table]
        assert positions == list(range(1, len(cols) + 1))


def test_the_list_covers_every_tuva_table_of_the_contract():
    assert {t.name for t in TUVA_TABLES} == set(tuva_input_layer_columns())
    assert {t.name for t in TABLES.values() if t.extension} == {
        "provider_roster", "employer_group", "payer_attribution", "payer_target", "voluntary_alignment",
        "exclusion_event",
    }


@pytest.mark.parametrize("table", TUVA_TABLES, ids=lambda t: t.name)
def test_contract_columns_are_tuva_columns_unless_marked_extension(table):
    tuva = set(tuva_input_layer_columns()[table.name])
    ours = [c.name for c in table.columns if not c.allpayer_extension]
    assert [c for c in ours if c not in tuva] == []
    # and the extensions really are extensions (not Tuva columns marked by mistake)
    assert [c.name for c in table.columns if c.allpayer_extension and c.name in tuva] == []


def test_known_columns_are_present():
    cols = tuva_input_layer_columns()
    assert cols["medical_claim"][:3] == ("claim_id", "claim_line_number", "claim_type")
    assert "diagnosis_code_25" in cols["medical_claim"]
    assert "ndc_code" in cols["pharmacy_claim"]
    assert "normalized_code" in cols["lab_result"]
    assert "data_sharing_opt_out" not in cols["eligibility"]
