"""IET (initiation and engagement of substance use disorder treatment): hand-made Medicaid
members, one per case.

Members are enrolled all of 2023-2024 and attributed all of 2024 unless stated. Counselling
(H0004) with alcohol dependence (F10.20) is a treatment visit. "Day n" counts from the episode
date (IESD).
"""

from __future__ import annotations

import pytest

from tests.quality.event_world import EventWorld
from tests.quality.helpers import D


def tx(w, pid, d, hcpcs="H0004", dx=("F1020",)):
    w.visit(pid, d, hcpcs=hcpcs, dx=dx)


@pytest.fixture(scope="module")
def world():
    w = EventWorld("vt-2024-medicaid")
    adult = D(1985, 6, 1)
    # I01: new episode 1 Mar; treatment on day 4 (initiation); then 10 and 20 Mar (two
    # engagement dates within 34 days of initiation)
    w.person("I01", adult)
    for d in (D(2024, 3, 1), D(2024, 3, 5), D(2024, 3, 10), D(2024, 3, 20)):
        tx(w, "I01", d)
    # I02: an SUD diagnosis on 10 Jan makes 1 Mar (51 days later) no new episode; 10 Jan is one,
    # with no treatment within 14 days
    w.person("I02", adult)
    w.visit("I02", D(2024, 1, 10), hcpcs="99213", dx=("F1120",)); w.visit("I02", D(2024, 3, 1), hcpcs="99213", dx=("F1120",))
    # I03: inpatient detox stay: initiation by itself (on the discharge date); extended-release
    # naltrexone (J2315) on day 10: engagement by one long-acting medication
    w.person("I03", adult)
    w.stay("I03", D(2024, 5, 1), D(2024, 5, 5), dx=("F10239",)); w.visit("I03", D(2024, 5, 15), hcpcs="J2315", dx=("F1020",))
    # I04: ED visit 20 November: after the intake period (ends 14 November)
    w.person("I04", adult); w.ed("I04", D(2024, 11, 20), dx=("F1020",))
    # I05: episode 14 November (last day of the intake period); treatment on day 13 (last day)
    w.person("I05", adult); tx(w, "I05", D(2024, 11, 14)); tx(w, "I05", D(2024, 11, 27))
    # I06: episode 15 November of the year before (first day of the intake period); treatment on
    # day 14: too late
    w.person("I06", adult); tx(w, "I06", D(2023, 11, 15)); tx(w, "I06", D(2023, 11, 29))
    # I07: an episode in June, another SUD visit 200 days later (January 2024: a new episode,
    # history clean for 194 days), treated on day 0 by a second claim (buprenorphine, J0572)
    w.person("I07", adult); tx(w, "I07", D(2023, 6, 20)); tx(w, "I07", D(2024, 1, 6))
    w.visit("I07", D(2024, 1, 6), hcpcs="J0572", dx=("F1120",))
    # I08: 12 years old: no episode; I09: coverage starts 1 January 2024 (no 194-day history
    # window): not continuously enrolled
    w.person("I08", D(2011, 6, 1)); tx(w, "I08", D(2024, 3, 1))
    w.person("I09", adult, spans=[(D(2024, 1, 1), D(2024, 12, 31))]); tx(w, "I09", D(2024, 3, 1))
    # I10: initiated on day 2, one engagement visit only: initiation yes, engagement no
    w.person("I10", adult); tx(w, "I10", D(2024, 4, 1)); tx(w, "I10", D(2024, 4, 3)); tx(w, "I10", D(2024, 4, 20))
    # I11, I12: an SUD diagnosis on 1 September 2023, then another 194 days later (13 March:
    # still in the history window, no episode) or 195 days later (14 March: an episode)
    for pid, later in (("I11", D(2024, 3, 13)), ("I12", D(2024, 3, 14))):
        w.person(pid, adult)
        w.visit(pid, D(2023, 9, 1), hcpcs="99213", dx=("F1120",)); w.visit(pid, later, hcpcs="99213", dx=("F1120",))
    ctx = w.context()
    return {m: w.event_results(m, ctx=ctx) for m in ("iet", "iet_engagement")}


def of(results, pid):
    return [(r["event_date"], r["in_denominator"], r["excluded"], r["exclusion_reason"], r["in_numerator"])
            for r in results if r["person_id"] == pid]


def test_initiation_and_engagement(world):
    ini, eng = world["iet"], world["iet_engagement"]
    assert of(ini, "I01") == [(D(2024, 3, 1), True, False, None, True)]
    assert of(eng, "I01") == [(D(2024, 3, 1), True, False, None, True)]
    assert of(ini, "I10") == [(D(2024, 4, 1), True, False, None, True)]
    assert of(eng, "I10") == [(D(2024, 4, 1), True, False, None, False)]


def test_negative_history(world):
    ini, _ = world["iet"], world["iet_engagement"]
    assert of(ini, "I02") == [(D(2024, 1, 10), True, False, None, False)]
    assert [r[0] for r in of(ini, "I07")] == [D(2024, 1, 6)]  # June 2023 is before the intake period
    assert of(ini, "I07")[0][4] is True
    # the window's first day counts (194 days before), the day before it does not
    assert of(ini, "I11") == []
    assert of(ini, "I12") == [(D(2024, 3, 14), True, False, None, False)]


def test_inpatient_episode_and_long_acting_medication(world):
    ini, eng = world["iet"], world["iet_engagement"]
    assert of(ini, "I03") == [(D(2024, 5, 5), True, False, None, True)]
    assert of(eng, "I03") == [(D(2024, 5, 5), True, False, None, True)]
    (row,) = [r for r in eng if r["person_id"] == "I03"]
    assert row["evidence_value"].startswith("long-acting medication")


def test_intake_period_and_initiation_window(world):
    ini, _ = world["iet"], world["iet_engagement"]
    assert of(ini, "I04") == []
    assert of(ini, "I05") == [(D(2024, 11, 14), True, False, None, True)]
    assert of(ini, "I06") == [(D(2023, 11, 15), True, False, None, False)]


def test_age_and_enrollment(world):
    ini, _ = world["iet"], world["iet_engagement"]
    assert of(ini, "I08") == []
    assert of(ini, "I09") == [(D(2024, 3, 1), False, False, "not_continuously_enrolled", False)]
