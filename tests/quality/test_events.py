"""The shared event helpers: one event per window, direct transfers merged into one stay, claim
flags from the lines' codes."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.quality.events import (
    LineFlag,
    claim_line_flags,
    first_per_window,
    line_code_combinations,
    merge_transfers,
)
from tests.quality.helpers import D


def _table(records: list[dict], schema: dict) -> ibis.Table:
    s = ibis.schema(schema)
    return ibis.memtable(pa.table({c: [r.get(c) for r in records] for c in s.names}, schema=s.to_pyarrow()))


def _greedy(dates: list[dt.date], days: int) -> list[dt.date]:
    """The rule written out: the first event counts, then the first one at least `days` later."""
    kept: list[dt.date] = []
    for d in sorted(dates):
        if not kept or (d - kept[-1]).days >= days:
            kept.append(d)
    return kept


def test_first_per_window_hand_checked():
    # 1 Jan counts; 15 Jan and 31 Jan are within 31 days of it; 1 Feb is day 31: counts; 20 Feb
    # is within its window; 5 Mar (day 33 after 1 Feb) counts.
    dates = [D(2024, 1, 1), D(2024, 1, 15), D(2024, 1, 31), D(2024, 2, 1), D(2024, 2, 20), D(2024, 3, 5)]
    t = _table([{"person_id": "P1", "d": d} for d in dates], {"person_id": "string", "d": "date"})
    out = sorted(first_per_window(t, date_col="d", days=31, span_days=366).to_pyarrow().to_pylist(),
                 key=lambda r: r["d"])
    assert [(r["d"], r["counted"], r["counted_date"]) for r in out] == [
        (D(2024, 1, 1), True, None), (D(2024, 1, 15), False, D(2024, 1, 1)), (D(2024, 1, 31), False, D(2024, 1, 1)),
        (D(2024, 2, 1), True, None), (D(2024, 2, 20), False, D(2024, 2, 1)), (D(2024, 3, 5), True, None),
    ]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(["P1", "P2", "P3"]),
                    st.sets(st.integers(0, 334), min_size=1, max_size=40), min_size=1),
    st.sampled_from([8, 31]),
)
def test_first_per_window_matches_the_sequential_rule(visits, days):
    """Pointer doubling gives the same events as walking the dates one by one, even for long
    chains of close visits (up to 40 visits a person in 335 days)."""
    y0 = D(2024, 1, 1)
    recs = [{"person_id": p, "d": y0 + dt.timedelta(days=i)} for p, ds in visits.items() for i in ds]
    t = _table(recs, {"person_id": "string", "d": "date"})
    out = first_per_window(t, date_col="d", days=days, span_days=335).to_pyarrow().to_pylist()
    for p, ds in visits.items():
        got = sorted(r["d"] for r in out if r["person_id"] == p and r["counted"])
        assert got == _greedy([y0 + dt.timedelta(days=i) for i in ds], days)


def test_direct_transfers_are_one_episode():
    stays = _table([
        # P1: transferred (02) on 5 Jan to another hospital, admitted the same day: one episode
        # from 1 Jan to 9 Jan with the second stay's diagnosis; a stay on 11 Jan (two days after
        # the discharge) is a new episode
        dict(person_id="P1", admission_date=D(2024, 1, 1), discharge_date=D(2024, 1, 5), claim_id="a",
             principal_dx="T401X1A", discharge_disposition_code="02", last_claim_id="a"),
        dict(person_id="P1", admission_date=D(2024, 1, 6), discharge_date=D(2024, 1, 9), claim_id="b",
             principal_dx="F329", discharge_disposition_code="01", last_claim_id="b"),
        dict(person_id="P1", admission_date=D(2024, 1, 11), discharge_date=D(2024, 1, 12), claim_id="c",
             principal_dx="F331", discharge_disposition_code="01", last_claim_id="c"),
        # P2: a stay inside a longer one is the same episode
        dict(person_id="P2", admission_date=D(2024, 1, 1), discharge_date=D(2024, 1, 30), claim_id="d",
             principal_dx="I509", discharge_disposition_code="01", last_claim_id="d"),
        dict(person_id="P2", admission_date=D(2024, 1, 10), discharge_date=D(2024, 1, 12), claim_id="e",
             principal_dx="J189", discharge_disposition_code="01", last_claim_id="e"),
    ], {"person_id": "string", "admission_date": "date", "discharge_date": "date", "claim_id": "string",
        "principal_dx": "string", "discharge_disposition_code": "string", "last_claim_id": "string",
        "member_id": "string", "payer": "string", "plan": "string"})
    out = sorted(merge_transfers(stays).to_pyarrow().to_pylist(), key=lambda r: (r["person_id"], r["admission_date"]))
    assert [(r["person_id"], r["admission_date"], r["discharge_date"], r["stays"], r["claim_id"], r["principal_dx"],
             r["first_principal_dx"]) for r in out] == [
        ("P1", D(2024, 1, 1), D(2024, 1, 9), 2, "a", "F329", "T401X1A"),
        ("P1", D(2024, 1, 11), D(2024, 1, 12), 1, "c", "F331", "F331"),
        ("P2", D(2024, 1, 1), D(2024, 1, 30), 2, "d", "I509", "I509"),
    ]


def test_line_flags_tested_once_per_code_combination_match_a_test_of_each_line():
    """`claim_line_flags` with `LineFlag`s (tested on the distinct code combinations, the lines
    joined back with NULL matching NULL) gives the flags a test of every line gives, for codes that
    are NULL too."""
    lines = _table([
        dict(claim_id="c1", hcpcs_code="99213", revenue_center_code=None, service_category="office"),
        dict(claim_id="c1", hcpcs_code=None, revenue_center_code="0450", service_category="ed"),
        dict(claim_id="c2", hcpcs_code="99213", revenue_center_code=None, service_category="ed"),
        dict(claim_id="c3", hcpcs_code=None, revenue_center_code=None, service_category=None),
        dict(claim_id="c4", hcpcs_code="90834", revenue_center_code="0900", service_category="office"),
        dict(claim_id="c5", hcpcs_code="J0571", revenue_center_code=None, service_category="office"),
    ], {"claim_id": "string", "hcpcs_code": "string", "revenue_center_code": "string", "service_category": "string"})
    tests = {
        "visit": (lambda t: t.hcpcs_code.isin(["99213", "90834"]) & t.service_category.notin(["ed", "inpatient"]),
                  ("hcpcs_code", "service_category")),
        "ed_revenue": (lambda t: t.revenue_center_code.fill_null("").startswith("045"), ("revenue_center_code",)),
        "no_codes": (lambda t: t.hcpcs_code.isnull() & t.revenue_center_code.isnull(),
                     ("hcpcs_code", "revenue_center_code")),
    }

    def flags(t):
        return sorted(t.to_pyarrow().to_pylist(), key=lambda r: r["_fl_claim"])

    by_line = flags(claim_line_flags(lines, {k: f for k, (f, _) in tests.items()}))
    by_code = flags(claim_line_flags(lines, {k: LineFlag(f, cols) for k, (f, cols) in tests.items()}))
    assert by_code == by_line
    # the same with the combinations stored beforehand (as a quality run shares them per payer),
    # over more columns than the flags read
    combinations = line_code_combinations(lines).cache()
    assert set(combinations.columns) == {"hcpcs_code", "revenue_center_code", "service_category"}
    assert combinations.count().to_pyarrow().as_py() == 6
    stored = flags(claim_line_flags(lines, {k: LineFlag(f, cols) for k, (f, cols) in tests.items()}, combinations))
    assert stored == by_line
    assert by_code == [
        {"_fl_claim": "c1", "visit": True, "ed_revenue": True, "no_codes": False},
        {"_fl_claim": "c3", "visit": False, "ed_revenue": False, "no_codes": True},
        {"_fl_claim": "c4", "visit": True, "ed_revenue": False, "no_codes": False},
    ]


_LINE_SCHEMA = {
    "claim_id": "string", "claim_line_number": "int64", "person_id": "string", "member_id": "string",
    "payer": "string", "plan": "string", "claim_type": "string", "claim_status": "string",
    "claim_start_date": "date", "claim_end_date": "date", "service_date": "date",
    "bill_type_code": "string", "place_of_service_code": "string", "diagnosis_code_1": "string",
    "admission_date": "date", "discharge_date": "date", "service_category": "string", "allowed_cents": "int64",
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(
    st.tuples(st.sampled_from(["C1", "C2", "C3", "C4", None]), st.sampled_from([1, 2, 3, None]),
              st.sampled_from(["M1", "M2"]), st.sampled_from(["paid", "denied", None]),
              st.integers(0, 40), st.integers(-5000, 20000), st.sampled_from(["ed", "professional", None]),
              st.sampled_from(["E11.9", "I10", None]), st.sampled_from(["0111", "131", None])),
    min_size=1, max_size=14, unique_by=lambda r: (r[0], r[1]) if r[0] is not None and r[1] is not None else object()))
def test_claim_rows_of_one_line_claims_are_those_the_aggregates_give(spec):
    """`claim_base` projects the claims of one line instead of grouping them: every claim row is
    the one a grouping of all lines by claim id gives (lines of several line numbers, numbers 2 and
    3 alone, missing numbers, lines with no claim id, denied and non-positive claims)."""
    from allpayer.quality.events import _per_claim, claim_base

    y0 = D(2024, 1, 1)
    recs = [{"claim_id": c, "claim_line_number": n, "person_id": "P" + m[-1], "member_id": m, "payer": "medicaid",
             "plan": "vmng", "claim_type": "institutional" if bill else "professional", "claim_status": status,
             "claim_start_date": y0 + dt.timedelta(days=day), "claim_end_date": y0 + dt.timedelta(days=day + 2),
             "service_date": y0 + dt.timedelta(days=day), "bill_type_code": bill, "place_of_service_code": "23",
             "diagnosis_code_1": dx, "admission_date": None, "discharge_date": None, "service_category": cat,
             "allowed_cents": cents}
            for c, n, m, status, day, cents, cat, dx, bill in spec]
    lines = _table(recs, _LINE_SCHEMA)
    plain = _per_claim(lines, one_line=False)
    plain = plain.filter(~plain._denied & (plain.allowed_cents > 0)).drop("_denied")
    con = ibis.duckdb.connect()

    def rows(t):
        return sorted(con.to_pyarrow(t).to_pylist(), key=lambda r: (r["claim_id"] is None, r["claim_id"] or ""))

    assert claim_base(lines).schema() == plain.schema()
    assert rows(claim_base(lines)) == rows(plain)
