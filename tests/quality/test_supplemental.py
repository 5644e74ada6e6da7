"""Supplemental clinical data (a lab result from a practice's EHR): loaded through the same
validation and quarantine as any delivery, tagged as supplemental for the measures."""

from __future__ import annotations

import datetime as dt

from allpayer.inputs import load as loader
from allpayer.quality.framework import lab_values
from allpayer.quality.run import load_supplemental
from tests.inputs.conftest import build_delivery, query

from .helpers import rows, table


def test_supplemental_file_is_validated_and_quarantined(tmp_path):
    db = tmp_path / "a.duckdb"
    loader.load_folder(build_delivery(tmp_path / "delivery"), db)
    f = tmp_path / "ehr_labs.csv"
    f.write_text("lab_result_id,person_id,normalized_code_type,normalized_code,result,result_date,normalized_units,data_source\n"
                 "EHR-1,P001,loinc,4548-4,7.1,2024-11-15,%,supplemental:ehr-pc1\n"
                 "EHR-2,P001,loinc,4548-4,pending,2024-11-16,%,supplemental:ehr-pc1\n")
    res = load_supplemental(db, f)
    assert (res.read, res.loaded, res.quarantined) == (2, 1, 1)
    assert query(db, "select data_source from lab_result where lab_result_id = 'EHR-1'") == [("supplemental:ehr-pc1",)]
    assert query(db, "select rule from quarantine where source_file = 'ehr_labs.csv'") == [("non_numeric_result",)]
    # loading the same file again changes nothing
    again = load_supplemental(db, f)
    assert (again.loaded, again.already_loaded) == (0, 1)


def test_supplemental_rows_are_tagged():
    t = table("lab_result", [
        {"lab_result_id": "L1", "person_id": "P", "normalized_code": "4548-4", "result": "7.0",
         "result_date": dt.date(2024, 5, 1), "data_source": "lab"},
        {"lab_result_id": "L2", "person_id": "P", "normalized_code": "4548-4", "result": "7.0",
         "result_date": dt.date(2024, 5, 1), "data_source": "Supplemental:EHR"},
    ])
    assert [r["source"] for r in rows(lab_values(t), key=lambda r: r["lab_result_id"])] == ["lab_result", "supplemental"]
