"""All-cause 30-day readmissions, local version ("unadjusted observed"): hand-made Medicaid
members, one per case.

Members are enrolled all of 2023-2024 and attributed all of 2024 unless stated. A stay is one
institutional claim (bill type 111); "day n" counts from the index discharge.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from allpayer.quality import framework
from tests.quality.event_world import EventWorld
from tests.quality.helpers import D
from tests.quality.test_fum import framework_table


@pytest.fixture(scope="module")
def results():
    w = EventWorld("vt-2024-medicaid")
    adult = D(1960, 1, 1)
    # R01: heart failure stay, readmitted on day 15: numerator; the readmission is itself an
    # index stay with no readmission after it
    w.person("R01", adult)
    w.stay("R01", D(2024, 3, 1), D(2024, 3, 5), dx=("I509",)); w.stay("R01", D(2024, 3, 20), D(2024, 3, 25), dx=("I509",))
    # R02: readmitted on day 15 for chemotherapy (Z51.11): planned, not a readmission
    w.person("R02", adult)
    w.stay("R02", D(2024, 3, 1), D(2024, 3, 5), dx=("C189",)); w.stay("R02", D(2024, 3, 20), D(2024, 3, 22), dx=("Z5111",))
    # R03: delivery (O80): excluded
    w.person("R03", D(1995, 1, 1)); w.stay("R03", D(2024, 3, 1), D(2024, 3, 3), dx=("O800",))
    # R04: died in hospital (disposition 20): excluded
    w.person("R04", adult); w.stay("R04", D(2024, 3, 1), D(2024, 3, 5), dx=("I509",), disposition="20")
    # R05: same-day stay excluded; kidney transplant (0TY00Z0) readmission is planned; an
    # unplanned readmission on day 7 after the transplant stay counts
    w.person("R05", adult)
    w.stay("R05", D(2024, 3, 1), D(2024, 3, 1), dx=("I509",))
    w.stay("R05", D(2024, 4, 1), D(2024, 4, 5), dx=("N186",))
    w.stay("R05", D(2024, 4, 20), D(2024, 4, 30), dx=("N186",), procedures=("0TY00Z0",))
    w.stay("R05", D(2024, 5, 7), D(2024, 5, 9), dx=("T8611",))
    # R06: rehabilitation MS-DRG 945 on the readmission: planned
    w.person("R06", adult)
    w.stay("R06", D(2024, 6, 1), D(2024, 6, 5), dx=("I639",)); w.stay("R06", D(2024, 6, 10), D(2024, 6, 20), dx=("I639",), drg="945")
    # R07: transferred (02) to another hospital the same day: one index stay 1-10 Jul; readmitted
    # on day 30 (9 Aug): numerator; the readmission on day 31 of R08 is not
    w.person("R07", adult)
    w.stay("R07", D(2024, 7, 1), D(2024, 7, 4), dx=("I214",), disposition="02")
    w.stay("R07", D(2024, 7, 4), D(2024, 7, 10), dx=("I214",))
    w.stay("R07", D(2024, 8, 9), D(2024, 8, 12), dx=("I509",))
    w.person("R08", adult)
    w.stay("R08", D(2024, 7, 1), D(2024, 7, 10), dx=("I214",)); w.stay("R08", D(2024, 8, 10), D(2024, 8, 12), dx=("I509",))
    # R09: 17 at discharge: no index stay; R10: discharged 2 December: outside the period
    w.person("R09", D(2006, 12, 1)); w.stay("R09", D(2024, 3, 1), D(2024, 3, 4), dx=("J189",))
    w.person("R10", adult); w.stay("R10", D(2024, 11, 28), D(2024, 12, 2), dx=("J189",))
    # R11: coverage starts 1 February 2024: not enrolled for the 365 days before discharge
    w.person("R11", adult, spans=[(D(2024, 2, 1), D(2024, 12, 31))]); w.stay("R11", D(2024, 3, 1), D(2024, 3, 4), dx=("J189",))
    return w.event_results("hedis_pcr")


def of(results, pid):
    return [(r["event_date"], r["in_denominator"], r["excluded"], r["exclusion_reason"], r["in_numerator"])
            for r in results if r["person_id"] == pid]


def test_unplanned_readmission_counts(results):
    assert of(results, "R01") == [(D(2024, 3, 5), True, False, None, True), (D(2024, 3, 25), True, False, None, False)]
    (first,) = [r for r in results if r["person_id"] == "R01" and r["event_date"] == D(2024, 3, 5)]
    assert first["evidence_value"] == "unplanned readmission on day 15" and first["evidence_date"] == D(2024, 3, 20)


def test_planned_readmissions_do_not_count(results):
    assert of(results, "R02")[0] == (D(2024, 3, 5), True, False, None, False)
    assert of(results, "R06")[0] == (D(2024, 6, 5), True, False, None, False)
    assert of(results, "R05") == [
        (D(2024, 3, 1), True, True, "same_day_stay", False),
        (D(2024, 4, 5), True, False, None, False),
        (D(2024, 4, 30), True, False, None, True),
        (D(2024, 5, 9), True, False, None, False),
    ]


def test_exclusions(results):
    assert of(results, "R03") == [(D(2024, 3, 3), True, True, "pregnancy", False)]
    assert of(results, "R04") == [(D(2024, 3, 5), True, True, "died_during_stay", False)]


def test_transfer_merged_and_30_day_boundary(results):
    assert of(results, "R07") == [(D(2024, 7, 10), True, False, None, True), (D(2024, 8, 12), True, False, None, False)]
    assert of(results, "R08")[0] == (D(2024, 7, 10), True, False, None, False)


def test_population_and_period(results):
    assert of(results, "R09") == []
    assert of(results, "R10") == []
    assert of(results, "R11") == [(D(2024, 3, 4), False, False, "not_continuously_enrolled", False)]


def test_inverse_and_labelled_unadjusted_observed(results):
    m = framework.registry()["hedis_pcr"]
    assert m.inverse and m.label == "unadjusted observed"
    t = framework.rates(framework_table(results), inverse={"hedis_pcr": True}, labels={"hedis_pcr": m.label})
    (prog,) = [r for r in t.to_pyarrow().to_pylist() if r["level"] == "program"]
    # denominator: R01 x2, R02 x2, R03, R04, R05 x4, R06 x2, R07 x2, R08 x2 = 16; exclusions R03,
    # R04, R05 same-day = 3; readmissions R01, R05, R07 = 3: 3 / 13
    assert (prog["denominator"], prog["exclusions"], prog["numerator"]) == (16, 3, 3)
    assert prog["rate"] == framework.exact_rate(3, 16, 3).quantize(Decimal("1E-10"), rounding=ROUND_HALF_UP)
    assert prog["inverse"] is True and prog["label"] == "unadjusted observed"
