import datetime as dt

import ibis
import pytest

from allpayer.core.member_months import eligibility_months, month_starts

D = dt.date


def _elig(rows):
    cols = [
        "person_id", "member_id", "payer", "payer_type", "plan", "group_id", "gender", "birth_date",
        "death_date", "enrollment_start_date", "enrollment_end_date", "aid_category",
        "medicare_status_code", "dual_status_code", "data_sharing_opt_out",
    ]
    data = {c: [r.get(c) for r in rows] for c in cols}
    schema = {c: "string" for c in cols}
    schema.update(
        birth_date="date", death_date="date", enrollment_start_date="date", enrollment_end_date="date",
        data_sharing_opt_out="boolean",
    )
    return ibis.memtable(data, schema=ibis.schema(schema))


BASE = dict(person_id="P1", member_id="M1", payer="medicaid", payer_type="medicaid", plan="vmng",
            gender="female", birth_date=D(1990, 3, 15), aid_category="adult")


def run(rows, start=D(2024, 1, 1), end=D(2024, 12, 31)):
    con = ibis.duckdb.connect()
    rows = con.to_pyarrow(eligibility_months(_elig(rows), start, end)).to_pylist()
    return sorted(rows, key=lambda r: (r["member_id"], r["month"]))


def col(rows, name):
    return [r[name] for r in rows]


def test_partial_months_count_and_span_is_clipped_to_period():
    mm = run([dict(BASE, enrollment_start_date=D(2023, 11, 20), enrollment_end_date=D(2024, 3, 2))])
    assert col(mm, 'month') == [D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)]


def test_death_month_counts_but_not_later_months():
    mm = run([dict(BASE, enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 12, 31),
                   death_date=D(2024, 4, 10))])
    assert col(mm, 'month') == [D(2024, m, 1) for m in (1, 2, 3, 4)]


def test_overlapping_spans_count_once_per_month():
    mm = run([
        dict(BASE, enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 6, 30)),
        dict(BASE, enrollment_start_date=D(2024, 5, 1), enrollment_end_date=D(2024, 8, 31)),
    ])
    assert len(mm) == 8 and len(set(col(mm, 'month'))) == 8


def test_members_with_one_span_and_with_several_expand_alike():
    # M1 has one span per plan (each expands as it is), M2 two spans in one plan with a gap, M3 two
    # overlapping spans; a span with no plan has no key and counts nowhere, with one span or several.
    # (Each member is another person: spans of one person in one plan share its months.)
    mm = run([
        dict(BASE, enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 3, 31)),
        dict(BASE, plan="other", enrollment_start_date=D(2024, 2, 1), enrollment_end_date=D(2024, 2, 29)),
        dict(BASE, person_id="P2", member_id="M2", enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 1, 31)),
        dict(BASE, person_id="P2", member_id="M2", enrollment_start_date=D(2024, 3, 1), enrollment_end_date=D(2024, 4, 30)),
        dict(BASE, person_id="P3", member_id="M3", aid_category="b", enrollment_start_date=D(2024, 1, 1),
             enrollment_end_date=D(2024, 2, 29)),
        dict(BASE, person_id="P3", member_id="M3", aid_category="a", enrollment_start_date=D(2024, 2, 1),
             enrollment_end_date=D(2024, 3, 31)),
        dict(BASE, person_id="P4", member_id="M4", plan=None, enrollment_start_date=D(2024, 1, 1),
             enrollment_end_date=D(2024, 1, 31)),
        dict(BASE, person_id="P5", member_id="M5", plan=None, enrollment_start_date=D(2024, 1, 1),
             enrollment_end_date=D(2024, 1, 31)),
        dict(BASE, person_id="P5", member_id="M5", plan=None, enrollment_start_date=D(2024, 2, 1),
             enrollment_end_date=D(2024, 2, 29)),
    ])
    got = sorted((r["member_id"], r["plan"], r["month"].month, r["aid_category"]) for r in mm)
    assert got == [
        ("M1", "other", 2, "adult"),
        ("M1", "vmng", 1, "adult"), ("M1", "vmng", 2, "adult"), ("M1", "vmng", 3, "adult"),
        ("M2", "vmng", 1, "adult"), ("M2", "vmng", 3, "adult"), ("M2", "vmng", 4, "adult"),
        ("M3", "vmng", 1, "b"), ("M3", "vmng", 2, "a"), ("M3", "vmng", 3, "a"),
    ]


def test_age_and_band_on_first_of_month():
    mm = run([dict(BASE, birth_date=D(1979, 6, 2), enrollment_start_date=D(2024, 5, 1),
                   enrollment_end_date=D(2024, 7, 31))])
    assert col(mm, 'age') == [44, 44, 45]
    assert col(mm, 'age_band') == ["19-44", "19-44", "45-64"]


@pytest.mark.parametrize(
    "status,dual,expected",
    [("10", "00", "aged_nondual"), ("10", "02", "aged_dual"), ("20", None, "disabled"), ("11", None, "esrd"),
     ("31", "02", "esrd")],
)
def test_medicare_enrollment_type(status, dual, expected):
    mm = run([dict(BASE, payer="medicare", payer_type="medicare", plan="medicare_ffs", medicare_status_code=status,
                   dual_status_code=dual, enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 1, 31))])
    assert col(mm, 'enrollment_type') == [expected]


def test_month_starts_rejects_empty_period():
    with pytest.raises(ValueError):
        month_starts(D(2024, 2, 1), D(2024, 1, 1))


@pytest.mark.parametrize("order", [0, 1])
def test_overlapping_spans_keep_one_row_on_a_total_order(order):
    # Two Medicare spans of one plan overlap in May-June with the same group and aid category but
    # different Medicare status: the overlap keeps the row that sorts first on every column
    # (enrollment type 'aged_nondual' before 'disabled'), whatever order the spans arrive in.
    mc = dict(BASE, payer="medicare", payer_type="medicare", plan="ffs", aid_category=None, dual_status_code="00")
    spans = [
        dict(mc, medicare_status_code="20", enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 6, 30)),
        dict(mc, medicare_status_code="10", enrollment_start_date=D(2024, 5, 1), enrollment_end_date=D(2024, 8, 31)),
    ]
    mm = run(spans[::-1] if order else spans)
    types = {r["month"].month: r["enrollment_type"] for r in mm}
    assert types == {1: "disabled", 2: "disabled", 3: "disabled", 4: "disabled",
                     5: "aged_nondual", 6: "aged_nondual", 7: "aged_nondual", 8: "aged_nondual"}


def test_a_reissued_member_id_gives_one_month_per_person_carrying_the_span_of_its_first_covered_day():
    """A payer reissues P1's card on 16 March (M2 after M1) in the same plan: one row per person,
    payer, plan and month (12, not 13), March carrying the span in force on its first day (M1),
    whichever id sorts first (the reissued id M0 in the second case)."""
    for old, new in (("M1", "M2"), ("M1", "M0")):
        mm = run([dict(BASE, member_id=old, enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 3, 15)),
                  dict(BASE, member_id=new, enrollment_start_date=D(2024, 3, 16), enrollment_end_date=D(2024, 12, 31))])
        assert len(mm) == 12 and len({r["month"] for r in mm}) == 12
        assert {r["month"].month: r["member_id"] for r in mm if r["month"].month in (2, 3, 4)} == {2: old, 3: old, 4: new}


def test_a_group_change_within_a_month_keeps_the_group_of_its_first_covered_day():
    """A member moves from group UVMMC to group SOV of one self-funded plan on 16 March (one member
    id, then a reissued one): March carries UVMMC, the group in force on its first day, though SOV
    sorts first; a member who joins mid-month carries the group of the first day it is covered."""
    sf = dict(BASE, payer="mvp", payer_type="self_funded", plan="aso", aid_category=None)
    for new in ("M1", "M2"):
        mm = run([dict(sf, group_id="UVMMC", enrollment_start_date=D(2024, 1, 1), enrollment_end_date=D(2024, 3, 15)),
                  dict(sf, member_id=new, group_id="SOV", enrollment_start_date=D(2024, 3, 16),
                       enrollment_end_date=D(2024, 12, 31))])
        assert len(mm) == 12
        assert {r["month"].month: r["group_id"] for r in mm if r["month"].month in (3, 4)} == {3: "UVMMC", 4: "SOV"}
    mm = run([dict(sf, group_id="UVMMC", enrollment_start_date=D(2024, 3, 20), enrollment_end_date=D(2024, 4, 30)),
              dict(sf, member_id="M2", group_id="SOV", enrollment_start_date=D(2024, 3, 10),
                   enrollment_end_date=D(2024, 3, 19))])
    assert sorted((r["month"].month, r["member_id"], r["group_id"]) for r in mm) == [(3, "M2", "SOV"),
                                                                                    (4, "M1", "UVMMC")]
