"""FUH (follow-up after hospitalization for mental illness, 7 and 30 days): hand-made Medicaid
members, one per case.

Members are enrolled all of 2023-2024 and attributed all of 2024 unless stated. A stay is one
institutional claim (bill type 111) with admission and discharge dates; "day n" counts from the
discharge. Follow-up visits are psychotherapy (90834) with depression (F32.9) unless stated.
"""

from __future__ import annotations

import pytest

from tests.quality.event_world import EventWorld
from tests.quality.helpers import D


@pytest.fixture(scope="module")
def world():
    w = EventWorld("vt-2024-medicaid")
    adult = D(1985, 6, 1)
    # H01: a medical stay transferred (02) to a psychiatric stay the same day: one episode
    # discharged 10 Mar with the psychiatric diagnosis; follow-up on day 5 (both rates)
    w.person("H01", adult)
    w.stay("H01", D(2024, 3, 1), D(2024, 3, 5), dx=("T401X1A",), disposition="02")
    w.stay("H01", D(2024, 3, 5), D(2024, 3, 10), dx=("F329",))
    w.visit("H01", D(2024, 3, 15))
    # H02: readmitted for mental illness on day 10: the first discharge is excluded, the second
    # (20 Apr) is the event; follow-up on day 20 after it (30-day rate only)
    w.person("H02", adult)
    w.stay("H02", D(2024, 4, 1), D(2024, 4, 5), dx=("F319",))
    w.stay("H02", D(2024, 4, 15), D(2024, 4, 20), dx=("F319",))
    w.visit("H02", D(2024, 5, 10))
    # H03: the only visit is on the discharge date: does not count
    w.person("H03", adult); w.stay("H03", D(2024, 6, 1), D(2024, 6, 3), dx=("F209",)); w.visit("H03", D(2024, 6, 3))
    # H04: discharged 2 December: outside the period; discharged 3 Oct into a skilled nursing
    # facility (bill type 211) the same day: excluded
    w.person("H04", adult)
    w.stay("H04", D(2024, 11, 28), D(2024, 12, 2), dx=("F209",))
    w.stay("H04", D(2024, 10, 1), D(2024, 10, 3), dx=("F209",))
    w.stay("H04", D(2024, 10, 3), D(2024, 10, 20), dx=("F209",), bill_type="211")
    # H05: readmitted on day 12 for pneumonia: excluded
    w.person("H05", adult); w.stay("H05", D(2024, 2, 1), D(2024, 2, 4), dx=("F331",))
    w.stay("H05", D(2024, 2, 16), D(2024, 2, 20), dx=("J189",))
    # H06: a stay for pneumonia: no event
    w.person("H06", adult); w.stay("H06", D(2024, 2, 1), D(2024, 2, 4), dx=("J189",))
    # H07: 5 years old at discharge: no event
    w.person("H07", D(2019, 1, 1)); w.stay("H07", D(2024, 2, 1), D(2024, 2, 4), dx=("F900",))
    # H08: coverage ends 15 July, discharged 1 July: not continuously enrolled for 30 days
    w.person("H08", adult, spans=[(D(2023, 1, 1), D(2024, 7, 15))])
    w.stay("H08", D(2024, 6, 28), D(2024, 7, 1), dx=("F329",))
    # H09: intentional self-harm stay (X78); follow-up on day 7 with a telehealth visit (99442)
    # whose principal diagnosis is the self-harm: counts for both rates
    w.person("H09", adult); w.stay("H09", D(2024, 8, 1), D(2024, 8, 4), dx=("X781XXA", "F329"))
    w.visit("H09", D(2024, 8, 11), hcpcs="99442", dx=("X781XXD",), pos="10")
    # H10: follow-up on day 8 with a primary-care visit for depression: 30-day only
    w.person("H10", adult); w.stay("H10", D(2024, 9, 1), D(2024, 9, 4), dx=("F329",))
    w.visit("H10", D(2024, 9, 12), hcpcs="99214")
    # H11: discharged 1 December (last day of the period): an event
    w.person("H11", adult); w.stay("H11", D(2024, 11, 28), D(2024, 12, 1), dx=("F329",))
    ctx = w.context()
    return {m: w.event_results(m, ctx=ctx) for m in ("hedis_fuh_7d", "hedis_fuh_30d")}


def of(results, pid):
    return [(r["event_date"], r["in_denominator"], r["excluded"], r["exclusion_reason"], r["in_numerator"])
            for r in results if r["person_id"] == pid]


def test_transfer_is_one_discharge(world):
    r7 = world["hedis_fuh_7d"]
    assert of(r7, "H01") == [(D(2024, 3, 10), True, False, None, True)]
    (row,) = [r for r in r7 if r["person_id"] == "H01"]
    assert row["evidence_value"] == "follow-up on day 5"


def test_mental_health_readmission_moves_the_event(world):
    r7, r30 = world["hedis_fuh_7d"], world["hedis_fuh_30d"]
    assert of(r30, "H02") == [
        (D(2024, 4, 5), True, True, "readmitted_for_mental_illness_within_30_days", False),
        (D(2024, 4, 20), True, False, None, True),
    ]
    assert of(r7, "H02")[1] == (D(2024, 4, 20), True, False, None, False)


def test_visit_on_the_discharge_date_does_not_count(world):
    assert of(world["hedis_fuh_30d"], "H03") == [(D(2024, 6, 3), True, False, None, False)]


def test_period_and_nonacute_transfer(world):
    assert of(world["hedis_fuh_30d"], "H04") == [(D(2024, 10, 3), True, True, "nonacute_admission_within_30_days", False)]
    assert of(world["hedis_fuh_30d"], "H11") == [(D(2024, 12, 1), True, False, None, False)]


def test_other_readmission_excludes(world):
    assert of(world["hedis_fuh_30d"], "H05") == [(D(2024, 2, 4), True, True, "readmitted_acute_within_30_days", False)]


def test_population(world):
    r30 = world["hedis_fuh_30d"]
    assert of(r30, "H06") == [] and of(r30, "H07") == []
    assert of(r30, "H08") == [(D(2024, 7, 1), False, False, "not_continuously_enrolled", False)]


def test_follow_up_rules(world):
    r7, r30 = world["hedis_fuh_7d"], world["hedis_fuh_30d"]
    assert of(r7, "H09") == [(D(2024, 8, 4), True, False, None, True)]
    assert of(r7, "H10") == [(D(2024, 9, 4), True, False, None, False)]
    assert of(r30, "H10") == [(D(2024, 9, 4), True, False, None, True)]
