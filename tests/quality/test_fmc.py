"""FMC (follow-up within 7 days after an ED visit, people with multiple chronic conditions):
hand-made Medicare members, one per case.

Members are enrolled all of 2023-2024 and attributed all of 2024 unless stated. Chronic
conditions come from office claims before the ED visit: heart failure (I50.9) and COPD (J44.9)
are two different conditions. "Day n" counts from the ED visit (R07.9, chest pain).
"""

from __future__ import annotations

import pytest

from tests.quality.event_world import EventWorld, summary
from tests.quality.helpers import D


def chronic(w, pid, *codes_dates):
    for code, d in codes_dates:
        w.visit(pid, d, hcpcs="99213", dx=(code,))


@pytest.fixture(scope="module")
def results():
    w = EventWorld("vt-2024-medicare")
    old = D(1950, 5, 1)
    two = (("I509", D(2023, 6, 1)), ("J449", D(2024, 1, 10)))
    # F01: two conditions; office follow-up on day 7 (the last day): numerator
    w.person("F01", old); chronic(w, "F01", *two); w.ed("F01", D(2024, 3, 1), dx=("R079",))
    w.visit("F01", D(2024, 3, 8), hcpcs="99214", dx=("R079",))
    # F02: one condition only: no event
    w.person("F02", old); chronic(w, "F02", ("I509", D(2023, 6, 1))); w.ed("F02", D(2024, 3, 1), dx=("R079",))
    # F03: the second condition appears on the ED claim itself (not before the visit): no event
    w.person("F03", old); chronic(w, "F03", ("I509", D(2023, 6, 1))); w.ed("F03", D(2024, 3, 1), dx=("R079", "J449"))
    # F04: follow-up on day 8: too late
    w.person("F04", old); chronic(w, "F04", *two); w.ed("F04", D(2024, 3, 1), dx=("R079",))
    w.visit("F04", D(2024, 3, 9), hcpcs="99214", dx=("R079",))
    # F05: ED visits on 1 Mar, 8 Mar (inside the 8-day window) and 9 Mar (day 8: counts)
    w.person("F05", old); chronic(w, "F05", *two)
    for d in (D(2024, 3, 1), D(2024, 3, 8), D(2024, 3, 9)):
        w.ed("F05", d, dx=("R079",))
    # F06: period ends 24 December
    w.person("F06", old); chronic(w, "F06", *two)
    w.ed("F06", D(2024, 12, 24), dx=("R079",)); w.ed("F06", D(2024, 12, 25), dx=("R079",))
    # F07: admitted on day 7: excluded; F08: admitted on day 8: stays in
    w.person("F07", old); chronic(w, "F07", *two); w.ed("F07", D(2024, 3, 1), dx=("R079",))
    w.stay("F07", D(2024, 3, 8), D(2024, 3, 10), dx=("I509",))
    w.person("F08", old); chronic(w, "F08", *two); w.ed("F08", D(2024, 3, 1), dx=("R079",))
    w.stay("F08", D(2024, 3, 9), D(2024, 3, 10), dx=("I509",))
    # F09: conditions diagnosed only in 2022 (before 1 January of the prior year): no event
    w.person("F09", old, spans=[(D(2022, 1, 1), D(2024, 12, 31))])
    chronic(w, "F09", ("I509", D(2022, 6, 1)), ("J449", D(2022, 7, 1))); w.ed("F09", D(2024, 3, 1), dx=("R079",))
    # F10: a 61-day gap in coverage in the year before the visit: not continuously enrolled
    w.person("F10", old, spans=[(D(2023, 1, 1), D(2023, 5, 31)), (D(2023, 8, 1), D(2024, 12, 31))])
    chronic(w, "F10", *two); w.ed("F10", D(2024, 3, 1), dx=("R079",))
    # F11: a 30-day gap (one gap of up to 45 days is allowed); telephone follow-up (99442) on day 2
    w.person("F11", old, spans=[(D(2023, 1, 1), D(2023, 5, 31)), (D(2023, 7, 1), D(2024, 12, 31))])
    chronic(w, "F11", *two); w.ed("F11", D(2024, 3, 1), dx=("R079",))
    w.visit("F11", D(2024, 3, 3), hcpcs="99442", dx=("R079",), pos="10")
    # F12: 17 years old: no event (18 and older)
    w.person("F12", D(2006, 12, 1)); chronic(w, "F12", ("J4520", D(2023, 3, 1)), ("F329", D(2023, 4, 1)))
    w.ed("F12", D(2024, 3, 1), dx=("R079",))
    return w.event_results("hedis_fmc")


def of(results, pid):
    return [(r[1], r[2], r[3], r[4], r[5]) for r in summary(results) if r[0] == pid]


def test_two_conditions_before_the_visit(results):
    assert of(results, "F01") == [(D(2024, 3, 1), True, False, None, True)]
    assert of(results, "F02") == [] and of(results, "F03") == [] and of(results, "F09") == []


def test_seven_day_window_and_age(results):
    assert of(results, "F04") == [(D(2024, 3, 1), True, False, None, False)]
    assert of(results, "F12") == []


def test_one_visit_per_8_days(results):
    assert of(results, "F05") == [
        (D(2024, 3, 1), True, False, None, False),
        (D(2024, 3, 8), False, False, "within_8_days_of_counted_visit", False),
        (D(2024, 3, 9), True, False, None, False),
    ]


def test_period_ends_24_december(results):
    assert [r[0] for r in of(results, "F06")] == [D(2024, 12, 24)]


def test_admission_within_7_days(results):
    assert of(results, "F07") == [(D(2024, 3, 1), True, True, "admitted_within_7_days", False)]
    assert of(results, "F08") == [(D(2024, 3, 1), True, False, None, False)]


def test_enrollment_gap_rule(results):
    assert of(results, "F10") == [(D(2024, 3, 1), False, False, "not_continuously_enrolled", False)]
    assert of(results, "F11") == [(D(2024, 3, 1), True, False, None, True)]
