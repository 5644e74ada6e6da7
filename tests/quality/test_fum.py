"""FUM (follow-up after ED visit for mental illness): hand-made Medicaid members, one per case.

Every member is enrolled all of 2023-2024 and attributed all of 2024 unless the case says
otherwise. An ED visit is a facility claim (rev 0450) plus the ED doctor's claim the same day,
with principal diagnosis F32.9 (depression) unless stated. "Day n" counts from the ED visit.
"""

from __future__ import annotations

import re

import pytest

from allpayer.quality import framework
from tests.quality.event_world import EventWorld, summary
from tests.quality.helpers import D


@pytest.fixture(scope="module")
def world():
    w = EventWorld("vt-2024-medicaid")
    adult = D(1985, 6, 1)
    # P01: follow-up on day 30 (psychotherapy, F32.9): in the 30-day numerator, not the 7-day one
    w.person("P01", adult); w.ed("P01", D(2024, 3, 1)); w.visit("P01", D(2024, 3, 31))
    # P02: follow-up the same day as the ED visit (day 0): both numerators
    w.person("P02", adult); w.ed("P02", D(2024, 3, 1)); w.visit("P02", D(2024, 3, 1), hcpcs="99213")
    # P03: follow-up on day 31: too late
    w.person("P03", adult); w.ed("P03", D(2024, 3, 1)); w.visit("P03", D(2024, 4, 1))
    # P04: admitted (acute) on day 19: excluded, whatever the admission's diagnosis
    w.person("P04", adult); w.ed("P04", D(2024, 3, 1)); w.stay("P04", D(2024, 3, 20), D(2024, 3, 22), dx=("I509",))
    # P05: ED visits on 1 Mar, 15 Mar (inside the first 31-day window) and 1 Apr (day 31: counts)
    w.person("P05", adult)
    for d in (D(2024, 3, 1), D(2024, 3, 15), D(2024, 4, 1)):
        w.ed("P05", d)
    # P06: period boundaries: 1 December counts, 2 December does not
    w.person("P06", adult); w.ed("P06", D(2024, 12, 1)); w.ed("P06", D(2024, 12, 2))
    # P07: 5 years old on the visit date (turns 6 on 10 March): no event
    w.person("P07", D(2018, 3, 10)); w.ed("P07", D(2024, 3, 1))
    # P08: a hospice claim in the year: excluded
    w.person("P08", adult); w.ed("P08", D(2024, 3, 1))
    w.claim("P08", D(2024, 9, 1), claim_type="institutional", bill_type="811", revenue="0651", pos=None)
    # P09: coverage ends 15 March: not continuously enrolled for the 30 days after the visit
    w.person("P09", adult, spans=[(D(2023, 1, 1), D(2024, 3, 15))]); w.ed("P09", D(2024, 3, 1))
    # P10: ED visit with a mental illness only as a secondary diagnosis: no event
    w.person("P10", adult); w.ed("P10", D(2024, 3, 1), dx=("R079", "F329"))
    # P11: follow-up visit whose principal diagnosis is not a mental illness: not a follow-up
    w.person("P11", adult); w.ed("P11", D(2024, 3, 1)); w.visit("P11", D(2024, 3, 5), hcpcs="99213", dx=("J069", "F329"))
    # P12: 1 Mar visit excluded (admitted on day 2); the 10 Mar visit is then the first eligible one
    w.person("P12", adult); w.ed("P12", D(2024, 3, 1)); w.stay("P12", D(2024, 3, 3), D(2024, 3, 5), dx=("F329",))
    w.ed("P12", D(2024, 4, 10))
    # P13: ED visit for intentional self-harm (X78), follow-up with self-harm and depression: counts
    w.person("P13", adult); w.ed("P13", D(2024, 5, 1), dx=("X781XXA", "F329"))
    w.visit("P13", D(2024, 5, 4), dx=("X781XXD", "F329"))
    # P14: only the professional ED claim (POS 23), and a denied ED claim on another day
    w.person("P14", adult); w.ed("P14", D(2024, 6, 1), professional=True)
    w.claim("P14", D(2024, 8, 1), dx=("F329",), hcpcs="99284", pos="23", status="denied")
    # P15: not attributed to the program: no rows
    w.person("P15", adult, attributed_months=()); w.ed("P15", D(2024, 3, 1))
    ctx = w.context()
    return w, w.event_results("hedis_fum_30d", ctx=ctx), w.event_results("hedis_fum_7d", ctx=ctx)


def by_person(results, pid):
    return [(r[1], r[2], r[3], r[4], r[5]) for r in summary(results) if r[0] == pid]


def test_numerator_window_30_and_7_days(world):
    _, r30, r7 = world
    assert by_person(r30, "P01") == [(D(2024, 3, 1), True, False, None, True)]
    assert by_person(r7, "P01") == [(D(2024, 3, 1), True, False, None, False)]
    assert by_person(r30, "P02")[0][4] and by_person(r7, "P02")[0][4]
    assert by_person(r30, "P03") == [(D(2024, 3, 1), True, False, None, False)]
    p01 = [r for r in r30 if r["person_id"] == "P01"][0]
    assert p01["evidence_date"] == D(2024, 3, 31) and p01["evidence_value"] == "follow-up on day 30"


def test_facility_and_professional_claims_are_one_visit(world):
    _, r30, _ = world
    assert len(by_person(r30, "P01")) == 1
    assert by_person(r30, "P14") == [(D(2024, 6, 1), True, False, None, False)]  # the denied claim is no visit


def test_admission_after_the_visit_excludes_it(world):
    _, r30, _ = world
    assert by_person(r30, "P04") == [(D(2024, 3, 1), True, True, "admitted_within_30_days", False)]


def test_one_visit_per_31_day_window(world):
    _, r30, _ = world
    assert by_person(r30, "P05") == [
        (D(2024, 3, 1), True, False, None, False),
        (D(2024, 3, 15), False, False, "within_31_days_of_counted_visit", False),
        (D(2024, 4, 1), True, False, None, False),
    ]


def test_exclusions_come_before_the_de_duplication(world):
    _, r30, _ = world
    assert by_person(r30, "P12") == [
        (D(2024, 3, 1), True, True, "admitted_within_30_days", False),
        (D(2024, 4, 10), True, False, None, False),
    ]


def test_period_boundaries_and_age(world):
    _, r30, _ = world
    assert [r[0] for r in by_person(r30, "P06")] == [D(2024, 12, 1)]
    assert by_person(r30, "P07") == []


def test_hospice_and_enrollment(world):
    _, r30, _ = world
    assert by_person(r30, "P08") == [(D(2024, 3, 1), True, True, "hospice", False)]
    assert by_person(r30, "P09") == [(D(2024, 3, 1), False, False, "not_continuously_enrolled", False)]
    assert by_person(r30, "P15") == []


def test_diagnosis_rules(world):
    _, r30, _ = world
    assert by_person(r30, "P10") == []
    assert by_person(r30, "P11") == [(D(2024, 3, 1), True, False, None, False)]
    assert by_person(r30, "P13") == [(D(2024, 5, 1), True, False, None, True)]


def test_rate_counts(world):
    """30 days: denominator rows P01-P06, P08, P11-P14 = 13 visits (P05 two, P06 one, P12 two);
    exclusions P04, P08, P12 (1 Mar) = 3; numerator P01, P02, P13 = 3: rate 3/10."""
    _, r30, _ = world
    t = framework.rates(framework_table(r30), inverse={"hedis_fum_30d": False})
    (prog,) = [r for r in t.to_pyarrow().to_pylist() if r["level"] == "program"]
    assert (prog["denominator"], prog["exclusions"], prog["numerator"]) == (13, 3, 3)
    assert prog["rate"] == framework.exact_rate(3, 13, 3)


def test_the_stage_stores_the_steps_and_decides_the_same(world):
    """Through `run_quality`, which stores the visits and the de-duplication before deciding, the
    rows are those of the expression, down to the evidence text of the visit not enrolled (P09)."""
    from allpayer.quality.run import run_quality
    from tests.quality.test_shared import PAID_THROUGH, database

    w, r30, _ = world
    con = database(w, programs=1)
    run_quality(con, [w.program], 2024, PAID_THROUGH, "run-1")
    r = con.table("quality_measure_results")
    stored = r.filter(r.measure_id == "hedis_fum_30d").drop("run_id").to_pyarrow().to_pylist()
    assert sorted(stored, key=repr) == sorted(r30, key=repr)
    (p09,) = [x for x in stored if x["person_id"] == "P09"]
    assert p09["evidence_value"] == next(x["evidence_value"] for x in r30 if x["person_id"] == "P09")
    # the enrollment window checked, as plain dates (no time of day)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\.\d{4}-\d{2}-\d{2}", p09["evidence_value"]), p09["evidence_value"]


def framework_table(results):
    import ibis
    import pyarrow as pa

    cols = framework.OUTPUT_COLUMNS
    types = {"program_id": "string", "measure_id": "string", **framework.RESULT_COLUMNS, "practice_id": "string",
             "npi": "string", "tin": "string", "hsa": "string", "performance_year": "int32"}
    schema = ibis.schema({c: types[c] for c in cols})
    return ibis.memtable(pa.table({c: [r[c] for r in results] for c in cols}, schema=schema.to_pyarrow()))
