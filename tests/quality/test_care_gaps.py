"""Care gaps through `run_quality` on a hand-made database: a practice's list holds only its
attributed patients, ranked by risk; a new HbA1c below 9% from the practice's EHR closes the gap
on the next run; days left count from the paid-through date."""

from __future__ import annotations

import datetime as dt

import ibis
import pytest

from allpayer.quality.run import run_quality

from .helpers import D, World, plain, table

Y = 2024
PAID_THROUGH = D(Y, 10, 31)


def world() -> World:
    w = World()
    for pid, practice in (("A", "PR1"), ("B", "PR2"), ("D", "PR1")):
        w.person(pid, D(1960, 3, 1), practice=practice)
        w.claim(pid, D(Y, 2, 1), dx=("E119",), hcpcs="99213")
        w.claim(pid, D(Y, 4, 1), dx=("E119",), hcpcs="99213")
    w.lab("A", D(Y, 5, 1), "9.8", lab_id="LA1")
    w.lab("D", D(Y, 6, 1), "10.2", lab_id="LD1")
    # C is a diabetic with a high HbA1c, in the eligibility file but never attributed
    w.person("C", D(1960, 3, 1), attributed_months=())
    w.claim("C", D(Y, 2, 1), dx=("E119",)); w.claim("C", D(Y, 4, 1), dx=("E119",))
    w.lab("C", D(Y, 5, 1), "11.0")
    for s in w.spans:
        if s["person_id"] == "A":
            s.update(zip_code="05401", state="VT", first_name="Ann", last_name="Example", phone="802-555-0100")
    return w


def database(w: World):
    con = ibis.duckdb.connect()
    for s in w.supplemental:
        w.labs.append(s)  # as loaded: lab_result rows whose data_source starts with "supplemental"
    w.supplemental = []
    con.create_table("medical_claim", table("medical_claim", w.claims))
    con.create_table("eligibility", table("eligibility", w.spans))
    con.create_table("lab_result", table("lab_result", w.labs))
    con.create_table("observation", table("observation", w.obs))
    con.create_table("attribution", w.attribution())
    con.create_table("member_months", w.member_months())
    con.create_table("risk_scores", plain(
        [{"program_id": w.program.program_id, "person_id": "A", "risk_score": 2.0, "performance_year": Y,
          "scored_for": "performance_year"},
         {"program_id": w.program.program_id, "person_id": "D", "risk_score": 1.0, "performance_year": Y,
          "scored_for": "performance_year"}],
        {"program_id": "string", "person_id": "string", "risk_score": "float64", "performance_year": "int32",
         "scored_for": "string"}))
    return con


def gaps(con, gap_type=None):
    g = con.table("care_gaps").to_pyarrow().to_pylist()
    return [r for r in g if gap_type is None or r["gap_type"] == gap_type]


@pytest.fixture(scope="module")
def first_run():
    w = world()
    con = database(w)
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    return w, con


def test_a_practice_list_holds_only_its_attributed_patients(first_run):
    _, con = first_run
    a1c = gaps(con, "hba1c_above_9")
    by_practice = {}
    for r in a1c:
        by_practice.setdefault(r["practice_id"], set()).add(r["person_id"])
    assert by_practice == {"PR1": {"A", "D"}}
    assert {r["person_id"] for r in gaps(con)} <= {"A", "B", "D"}  # C is never listed
    (b,) = [r for r in gaps(con, "hba1c_missing")]
    assert (b["person_id"], b["practice_id"], b["last_value"], b["last_date"]) == ("B", "PR2", "no result in the year", None)


def test_last_value_days_left_rank_and_contact(first_run):
    _, con = first_run
    (a,) = [r for r in gaps(con, "hba1c_above_9") if r["person_id"] == "A"]
    assert (a["last_value"], a["last_date"], a["evidence_id"]) == ("9.8", D(Y, 5, 1), "LA1")
    assert a["days_left"] == (D(Y, 12, 31) - PAID_THROUGH).days == 61
    assert a["risk_score"] == 2.0 and a["rank"] == 1 and (a["zip_code"], a["state"]) == ("05401", "VT")
    # the contact fields the input has travel with the gap, for outreach
    assert (a["first_name"], a["last_name"], a["phone"]) == ("Ann", "Example", "802-555-0100")
    (d,) = [r for r in gaps(con, "hba1c_above_9") if r["person_id"] == "D"]
    assert d["rank"] == 2 and d["zip_code"] is None
    assert all(r["run_id"] == "run-1" and r["performance_year"] == Y for r in gaps(con))


def test_awv_gap_for_medicare_members_without_a_visit(first_run):
    _, con = first_run
    assert {r["person_id"] for r in gaps(con, "awv_missing")} == {"A", "B", "D"}


def test_no_primary_care_visit_in_12_months(first_run):
    _, con = first_run
    # A, B and D had office visits in February and April 2024 (within the 12 months to 31 October)
    assert gaps(con, "no_primary_care_visit_12m") == []


def test_a_new_hba1c_below_9_closes_the_gap_on_the_next_run():
    w = world()
    con = database(w)
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    assert {r["person_id"] for r in gaps(con, "hba1c_above_9")} == {"A", "D"}
    # the practice's EHR sends a new result for A, loaded as a supplemental lab result
    ehr = World()
    ehr.lab("A", D(Y, 10, 15), "7.1", supplemental=True, lab_id="EHR-1")
    con.insert("lab_result", table("lab_result", ehr.supplemental))
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-2")
    after = gaps(con, "hba1c_above_9")
    assert {r["person_id"] for r in after} == {"D"} and {r["run_id"] for r in gaps(con)} == {"run-2"}
    res = con.table("quality_measure_results").to_pyarrow().to_pylist()
    (a,) = [r for r in res if r["person_id"] == "A" and r["measure_id"] == "hba1c_poor_control"]
    assert (a["in_numerator"], a["evidence_source"], a["evidence_id"]) == (False, "supplemental", "EHR-1")


def test_the_primary_care_gap_names_the_claim_of_the_last_visit():
    # The gap shows the last primary-care visit before the 12 months: its date and its claim,
    # not the highest claim id among older visits.
    from allpayer.quality.care_gaps import no_primary_care_gaps

    from .helpers import rows

    w = World()
    w.person("E", D(1960, 3, 1))
    w.claim("E", D(Y - 1, 1, 10), hcpcs="99213", claim_id="C9")
    w.claim("E", D(Y - 1, 6, 1), hcpcs="99213", claim_id="C1")
    (row,) = rows(no_primary_care_gaps(w.context(paid_through=PAID_THROUGH)))
    assert (row["last_date"], row["evidence_id"]) == (D(Y - 1, 6, 1), "C1")


def test_blood_pressure_gaps_say_what_is_missing():
    # hypertensive on two office visits: no reading / a systolic alone (CPT II 3074F) / 150/95
    w = World()
    for pid in ("H1", "H2", "H3"):
        w.person(pid, D(1960, 3, 1), practice="PR1")
        w.claim(pid, D(Y, 2, 1), dx=("I10",), hcpcs="99213")
        w.claim(pid, D(Y, 4, 1), dx=("I10",), hcpcs="99213")
    w.claim("H2", D(Y, 9, 1), dx=("I10",), hcpcs="3074F")
    w.bp("H3", D(Y, 9, 1), 150, 95)
    con = database(w)
    run_quality(con, [w.program], Y, PAID_THROUGH, "run-1")
    got = {r["person_id"]: r["gap_type"] for r in gaps(con) if r["gap_type"].startswith("bp_")}
    assert got == {"H1": "bp_not_measured", "H2": "bp_incomplete", "H3": "bp_uncontrolled"}
