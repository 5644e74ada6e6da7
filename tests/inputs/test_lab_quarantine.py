"""Bad lab input is quarantined with a reason, never dropped: results that are not numbers, units
that are not known, and clinical dates after the load's as-of date (not the clock)."""

from __future__ import annotations

import datetime as dt

from allpayer.inputs import load as loader
from allpayer.inputs import validate
from allpayer.inputs.schema import TABLES

from .conftest import build_delivery, query
from .test_validate import CON, staged

D = dt.date

GOOD_LAB = dict(lab_result_id="L1", person_id="P1", normalized_code_type="loinc", normalized_code="4548-4",
                result="9.5", result_date="2024-05-01", normalized_units="%", data_source="lab")


def lab(**changes) -> dict:
    return {**GOOD_LAB, **changes}


def verdicts(table, rows, as_of=None):
    t = validate.validate(staged(table, rows), TABLES[table], as_of=as_of)
    out = CON.execute(t.order_by("line_number"))
    return [(r if isinstance(r, str) else None, m if isinstance(m, str) else None) for r, m in zip(out.rules, out.message)]


def test_a_good_lab_passes():
    assert verdicts("lab_result", [lab()], as_of=D(2025, 3, 31)) == [(None, None)]


def test_non_numeric_results_are_quarantined():
    got = verdicts("lab_result", [lab(result="high"), lab(result="<5"), lab(result="7.12345"), lab(result="6")])
    assert got[0] == ("non_numeric_result", "result: 'high' is not a number with at most 4 decimals")
    assert got[1][0] == "non_numeric_result"
    assert got[2][0] == "non_numeric_result"  # five decimals
    assert got[3] == (None, None)


def test_unknown_units_are_quarantined_known_ones_pass_in_any_case():
    got = verdicts("lab_result", [lab(normalized_units="percent-ish"), lab(normalized_units="MG/DL"),
                                  lab(normalized_units=None, source_units="bogus"), lab(normalized_units=None)])
    assert got[0] == ("unknown_unit", "normalized_units: 'percent-ish' is not a known unit")
    assert got[1] == (None, None)
    assert got[2] == ("unknown_unit", "source_units: 'bogus' is not a known unit")
    assert got[3] == (None, None)  # no unit given: nothing to check


def test_future_dates_are_measured_from_the_as_of_date():
    rows = [lab(result_date="2025-03-31"), lab(result_date="2025-04-01"), lab(collection_date="2025-04-02")]
    got = verdicts("lab_result", rows, as_of=D(2025, 3, 31))
    assert got[0] == (None, None)  # on the as-of date itself
    assert got[1] == ("future_date", "result_date 2025-04-01 is after the as-of date 2025-03-31")
    assert got[2] == ("future_date", "collection_date 2025-04-02 is after the as-of date 2025-03-31")
    # the same rows with another as-of date: the clock plays no part
    assert verdicts("lab_result", rows, as_of=D(2025, 12, 31)) == [(None, None)] * 3


def test_observation_future_dates():
    obs = dict(observation_id="O1", person_id="P1", observation_date="2025-05-01", result="130", data_source="ehr")
    assert verdicts("observation", [obs], as_of=D(2025, 3, 31))[0][0] == "future_date"
    assert verdicts("observation", [obs], as_of=D(2025, 6, 30)) == [(None, None)]


def test_a_load_quarantines_bad_labs_and_reconciles(tmp_path):
    delivery = build_delivery(tmp_path / "delivery")
    (delivery / "lab_result.csv").write_text(
        "lab_result_id,person_id,normalized_code_type,normalized_code,result,result_date,normalized_units,data_source\n"
        "L1,P001,loinc,4548-4,7.2,2024-03-01,%,lab\n"
        "L2,P001,loinc,4548-4,see note,2024-03-02,%,lab\n"
        "L3,P001,loinc,4548-4,8.1,2024-03-03,parts,lab\n"
        "L4,P001,loinc,4548-4,8.1,2024-09-01,%,lab\n"
    )
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(delivery, db, paid_through=D(2024, 6, 30))
    labs = result.table("lab_result")
    assert (labs.read, labs.loaded, labs.quarantined) == (4, 1, 3)
    rows = query(db, "SELECT line_number, rule FROM quarantine WHERE table_name = 'lab_result' ORDER BY 1")
    assert rows == [(3, "non_numeric_result"), (4, "unknown_unit"), (5, "future_date")]


def test_without_a_paid_through_the_latest_claim_paid_date_is_the_as_of_date(tmp_path):
    delivery = build_delivery(tmp_path / "delivery")
    (delivery / "lab_result.csv").write_text(
        "lab_result_id,person_id,normalized_code_type,normalized_code,result,result_date,normalized_units,data_source\n"
        "L1,P001,loinc,4548-4,7.2,2024-03-01,%,lab\n"
        "L2,P001,loinc,4548-4,7.2,2099-01-01,%,lab\n"
    )
    db = tmp_path / "a.duckdb"
    result = loader.load_folder(delivery, db)
    assert result.table("lab_result").quarantined == 1
    (msg,) = query(db, "SELECT message FROM quarantine WHERE table_name = 'lab_result'")[0:1]
    assert msg[0].startswith("result_date 2099-01-01 is after the as-of date ")
