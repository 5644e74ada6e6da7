"""FUA (follow-up after ED visit for substance use) and NQF 2605 (alcohol and other drug
dependence, Medicare version): hand-made members, one per case, and the 42 CFR Part 2 redaction.

Members are enrolled all of 2023-2024 and attributed all of 2024 unless stated. "Day n" counts
from the ED visit (facility claim rev 0450 plus the ED doctor's claim).
"""

from __future__ import annotations

import pytest

from allpayer.quality import framework
from tests.quality.event_world import EventWorld, summary
from tests.quality.helpers import D
from tests.quality.test_fum import framework_table


@pytest.fixture(scope="module")
def world():
    w = EventWorld("vt-2024-medicaid")
    adult = D(1985, 6, 1)
    # A01: alcohol dependence (F10.20); counselling (H0004, F10.20) on day 9: 30-day yes, 7-day no
    w.person("A01", adult); w.ed("A01", D(2024, 3, 1), dx=("F1020",))
    w.visit("A01", D(2024, 3, 10), hcpcs="H0004", dx=("F1020",))
    # A02: opioid overdose as a secondary diagnosis (T40.1X1A); buprenorphine injection (J0572) on
    # day 3 with an unrelated diagnosis: medication counts whatever the diagnosis (both rates)
    w.person("A02", adult); w.ed("A02", D(2024, 3, 1), dx=("R4182", "T401X1A"))
    w.visit("A02", D(2024, 3, 4), hcpcs="J0572", dx=("Z79899",))
    # A03: opioid dependence; an office visit for a cold only: no follow-up
    w.person("A03", adult); w.ed("A03", D(2024, 3, 1), dx=("F1120",))
    w.visit("A03", D(2024, 3, 5), hcpcs="99213", dx=("J069",))
    # A04: 12 on the visit date: no FUA event (13 and older)
    w.person("A04", D(2011, 6, 1)); w.ed("A04", D(2024, 3, 1), dx=("F1020",))
    # A05: 15 on the visit date: an FUA event, not an NQF 2605 one (18 and older)
    w.person("A05", D(2008, 6, 1)); w.ed("A05", D(2024, 3, 1), dx=("F1220",))
    # A06: admitted on day 30: excluded; A07: admitted on day 31: stays in the denominator
    w.person("A06", adult); w.ed("A06", D(2024, 3, 1), dx=("F1020",)); w.stay("A06", D(2024, 3, 31), D(2024, 4, 2), dx=("K703",))
    w.person("A07", adult); w.ed("A07", D(2024, 3, 1), dx=("F1020",)); w.stay("A07", D(2024, 4, 1), D(2024, 4, 2), dx=("K703",))
    # A08: overdose alone (no dependence diagnosis): FUA yes, NQF 2605 no
    w.person("A08", adult); w.ed("A08", D(2024, 5, 1), dx=("T424X1A",))
    # A09: follow-up visit whose principal diagnosis is depression with alcohol use secondary:
    # counts for FUA (any substance-use diagnosis), not for NQF 2605 (principal diagnosis)
    w.person("A09", adult); w.ed("A09", D(2024, 6, 1), dx=("F1020",))
    w.visit("A09", D(2024, 6, 10), hcpcs="90834", dx=("F329", "F1020"))
    ctx = w.context()
    return {m: w.event_results(m, ctx=ctx) for m in ("hedis_fua_30d", "hedis_fua_7d", "fu_ed_aod_30d")}


def rows_of(results, pid):
    return [(r[1], r[2], r[3], r[4], r[5]) for r in summary(results) if r[0] == pid]


def test_follow_up_windows_and_kinds(world):
    r30, r7 = world["hedis_fua_30d"], world["hedis_fua_7d"]
    assert rows_of(r30, "A01") == [(D(2024, 3, 1), True, False, None, True)]
    assert rows_of(r7, "A01") == [(D(2024, 3, 1), True, False, None, False)]
    assert rows_of(r30, "A02")[0][4] and rows_of(r7, "A02")[0][4]
    assert rows_of(r30, "A03") == [(D(2024, 3, 1), True, False, None, False)]


def test_ages(world):
    r30, nqf = world["hedis_fua_30d"], world["fu_ed_aod_30d"]
    assert rows_of(r30, "A04") == []
    assert rows_of(r30, "A05") == [(D(2024, 3, 1), True, False, None, False)]
    assert rows_of(nqf, "A05") == []


def test_admission_window_boundary(world):
    r30 = world["hedis_fua_30d"]
    assert rows_of(r30, "A06") == [(D(2024, 3, 1), True, True, "admitted_within_30_days", False)]
    assert rows_of(r30, "A07") == [(D(2024, 3, 1), True, False, None, False)]


def test_nqf_2605_needs_a_dependence_diagnosis_first_listed(world):
    r30, nqf = world["hedis_fua_30d"], world["fu_ed_aod_30d"]
    assert rows_of(r30, "A08") == [(D(2024, 5, 1), True, False, None, False)]
    assert rows_of(nqf, "A08") == []
    assert rows_of(r30, "A09")[0][4] is True
    assert rows_of(nqf, "A09") == [(D(2024, 6, 1), True, False, None, False)]
    assert rows_of(nqf, "A01") == [(D(2024, 3, 1), True, False, None, True)]


def test_redacted_data_is_not_reportable():
    """Part 2 redaction: the program's claims carry `substance_use_redacted`, so the context is
    marked redacted, the SUD measures declare that they depend on it, and the rate the run writes
    is NULL with the note instead of a false rate."""
    w = EventWorld("vt-2024-medicare")
    w.person("R1", D(1950, 1, 1)); w.ed("R1", D(2024, 3, 1), dx=("F1020",))
    w.visit("R1", D(2024, 3, 5), hcpcs="H0004", dx=("R69",), redacted=True)  # the diagnosis was removed
    ctx = w.context()
    assert ctx.redacted
    reg = framework.registry()
    assert all(reg[m].depends_on_sud for m in ("hedis_fua_30d", "hedis_fua_7d", "fu_ed_aod_30d", "iet", "iet_engagement"))
    assert not reg["hedis_fum_30d"].depends_on_sud
    res = w.event_results("fu_ed_aod_30d", ctx=ctx)
    # computed on what is left, the visit does not look like a follow-up: a false 0% ...
    assert [r["in_numerator"] for r in res] == [False]
    t = framework.rates(framework_table(res), inverse={"fu_ed_aod_30d": False},
                        not_reportable={(ctx.program.program_id, "fu_ed_aod_30d"): "not reportable: redacted data"})
    # ... which is reported as not reportable, at the program and ACO levels
    for r in t.to_pyarrow().to_pylist():
        assert r["rate"] is None and r["reportable"] is False and r["note"] == "not reportable: redacted data"


def test_unredacted_program_is_reportable():
    w = EventWorld("vt-2024-medicaid")
    w.person("U1", D(1985, 1, 1)); w.ed("U1", D(2024, 3, 1), dx=("F1020",))
    assert not w.context().redacted
