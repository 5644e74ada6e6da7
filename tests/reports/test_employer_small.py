"""The employer report on a small hand-built population: AWV and WCV rates of its own members,
the completed (IBNR) estimate, and a quarter against its months. Every expected number is worked
out by hand in the comments."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pyarrow as pa
import pytest

from allpayer.reports import csvout, employer
from allpayer.reports.base import HIDDEN, Period
from allpayer.reports.suppression import is_small

CATS = ("inpatient", "outpatient", "ed", "professional", "pharmacy", "other")


def group_row(group_id, employer_id, name, start=dt.date(2020, 1, 1), end=None):
    return {"group_id": group_id, "employer_id": employer_id, "employer_name": name,
            "effective_start_date": start, "effective_end_date": end}


GROUPS = pa.schema([("group_id", pa.string()), ("employer_id", pa.string()), ("employer_name", pa.string()),
                    ("effective_start_date", pa.date32()), ("effective_end_date", pa.date32())])


@pytest.fixture()
def con():
    c = ibis.duckdb.connect()
    mm = []
    # employer E1: 30 persons in program P (payer medicaid), January to March 2024, $100.01 a month each
    # (all professional); employer E2: 5 persons, $50.00 a month
    for emp, group, n, cents in (("E1", "G1", 30, 10001), ("E2", "G2", 5, 5000)):
        for i in range(n):
            for m in (1, 2, 3):
                mm.append({"performance_year": 2024, "month": dt.date(2024, m, 1), "group_id": group,
                           "program_id": "P", "payer": "medicaid", "person_id": f"{emp}-{i}",
                           "member_id": f"{emp}-{i}", "data_sharing_opt_out": False, "ffs_paid_cents": cents,
                           **{f"{k}_ffs_paid_cents": (cents if k == "professional" else 0) for k in CATS}})
    c.create_table("tcoc_member_month", pa.Table.from_pylist(mm))
    c.create_table("employer_group", pa.Table.from_pylist([
        group_row("G1", "E1", "One"), group_row("G2", "E2", "Two")], schema=GROUPS))
    # the program's target: $120.00 PMPM over its 105 member months a month
    c.create_table("targets", pa.Table.from_pylist([
        {"performance_year": 2024, "program_id": "P", "month": dt.date(2024, m, 1), "target_cents": 105 * 12000,
         "member_months": 105} for m in (1, 2, 3)]))
    c.create_table("runs", pa.Table.from_pylist([
        {"run_id": "R1", "seq": 1, "paid_through": dt.date(2024, 3, 31)}]))
    # development factors by lag: 0 -> 1.5, 1 -> 1.2, 2 -> 1.05, 3 -> 1 (complete)
    c.create_table("completion_factors", pa.Table.from_pylist([
        {"performance_year": 2024, "payer": "medicaid", "lag": lag, "cumulative_development_factor": f, "run_id": "R1"}
        for lag, f in ((0, "1.5"), (1, "1.2"), (2, "1.05"), (3, "1"))]))
    q = []
    # AWV: E1 persons 0-26 in the denominator, 25 and 26 excluded (hospice); 0-11 with a visit -> 12 / 25
    # (13 without one); person 27 is in no denominator, even with a visit
    for i in range(28):
        q.append({"performance_year": 2024, "program_id": "P", "measure_id": "awv", "person_id": f"E1-{i}",
                  "in_denominator": i < 27, "excluded": i in (25, 26), "in_numerator": i < 12 or i == 27})
    # WCV: E1 persons 0-11 eligible, 0-4 with a visit -> 5 / 12 (5 and 7 are small: rate hidden)
    for i in range(12):
        q.append({"performance_year": 2024, "program_id": "P", "measure_id": "hedis_wcv", "person_id": f"E1-{i}",
                  "in_denominator": True, "excluded": False, "in_numerator": i < 5})
    # E2's members never count for E1
    for i in range(5):
        q.append({"performance_year": 2024, "program_id": "P", "measure_id": "awv", "person_id": f"E2-{i}",
                  "in_denominator": True, "excluded": False, "in_numerator": True})
    c.create_table("quality_measure_results", pa.Table.from_pylist(q))
    yield c
    c.disconnect()


def values(rep, section):
    return {(r[6], r[7]): r[8] for r in csvout.records(rep) if r[5] == section}


def test_wellness_rates_of_the_employers_own_members(con):
    rep = employer.build(con, "E1", Period(2024), "R1")
    w = values(rep, "wellness")
    assert w[("Annual wellness visit (AWV)", "denominator")] == "25"
    assert w[("Annual wellness visit (AWV)", "numerator")] == "12"
    assert w[("Annual wellness visit (AWV)", "rate")] == "48.0%"  # 12 / 25
    # 5 with a visit and 7 without are both small: the numerator and rate are hidden, the 12 eligible shown
    assert w[("Well-care visits ages 3-21 (WCV)", "denominator")] == "12"
    assert w[("Well-care visits ages 3-21 (WCV)", "numerator")] == HIDDEN
    assert w[("Well-care visits ages 3-21 (WCV)", "rate")] == HIDDEN


def test_a_small_number_without_a_visit_hides_the_numerator(con):
    """18 eligible and 12 with a visit: the 6 without one would be 18 - 12, so 12 is hidden."""
    con.raw_sql("UPDATE quality_measure_results SET excluded = true WHERE measure_id = 'awv' AND person_id IN "
                "('E1-18', 'E1-19', 'E1-20', 'E1-21', 'E1-22', 'E1-23', 'E1-24')")
    w = values(employer.build(con, "E1", Period(2024), "R1"), "wellness")
    assert w[("Annual wellness visit (AWV)", "denominator")] == "18"
    assert w[("Annual wellness visit (AWV)", "numerator")] == HIDDEN
    assert w[("Annual wellness visit (AWV)", "rate")] == HIDDEN


def test_completed_estimate_applies_the_development_factor_at_each_months_lag(con):
    rep = employer.build(con, "E1", Period(2024), "R1")
    t = dict(rep.totals)
    # 30 x $100.01 = $3,000.30 a month; valuation month March: lags 2, 1, 0
    # January 300,030 x 1.05 = 315,031.5 -> 315,032; February x 1.2 = 360,036; March x 1.5 = 450,045
    assert t["Member months"] == "90"
    assert t["TCOC paid (FFS basis)"] == "$9,000.90"
    assert t["TCOC completed estimate (IBNR)"] == "$11,251.13"
    m = values(rep, "members_and_cost_by_month")
    assert [m[(f"2024-0{i}", "TCOC completed estimate")] for i in (1, 2, 3)] == ["$3,150.32", "$3,600.36", "$4,500.45"]
    # target: $120.00 x 105 member months x 30 / 105 = $3,600.00 a month
    assert t["TCOC target"] == "$10,800.00"
    assert any("TCOC is incomplete for claims incurred but not yet paid" in n for n in rep.notes)


def test_completed_estimate_is_valued_at_the_paid_through_date_of_the_run_that_wrote_its_factors(con):
    """A later run (another year's, paid through December 2024) does not move 2024's valuation month:
    the factors were developed to March (run R1), and January to March stay at lags 2, 1, 0."""
    con.create_table("runs", pa.Table.from_pylist([
        {"run_id": "R1", "seq": 1, "paid_through": dt.date(2024, 3, 31)},
        {"run_id": "R2", "seq": 2, "paid_through": dt.date(2024, 12, 31)}]), overwrite=True)
    rep = employer.build(con, "E1", Period(2024), "R2")
    assert dict(rep.totals)["TCOC completed estimate (IBNR)"] == "$11,251.13"
    assert any("claims are paid through 2024-03" in n for n in rep.notes)


def test_a_quarter_equals_its_months_and_a_month_is_its_own_row(con):
    q1 = employer.build(con, "E1", Period.parse("2024-Q1"), "R1")
    months = [employer.build(con, "E1", Period.parse(f"2024-0{i}"), "R1") for i in (1, 2, 3)]
    cents = [int(dict(r.totals)["TCOC completed estimate (IBNR)"].replace("$", "").replace(",", "").replace(".", ""))
             for r in months]
    assert cents == [315032, 360036, 450045]
    assert dict(q1.totals)["TCOC completed estimate (IBNR)"] == "$11,251.13"
    assert [dict(r.totals)["Member months"] for r in months] == ["30", "30", "30"]
    assert q1.slug == "employer-E1-2024-Q1" and months[1].title.endswith("February 2024")


def _claimants(con, threshold_cents: int, extra: dict[str, int]):
    """The fixture with some E1 persons' April cost added (`extra`: person -> cents) and the run's
    high-cost threshold (one row of ``high_cost_claimants`` carries it)."""
    mm = con.table("tcoc_member_month").to_pyarrow().to_pylist()
    for person, cents in extra.items():
        mm.append({**next(r for r in mm if r["person_id"] == person), "month": dt.date(2024, 4, 1),
                   "ffs_paid_cents": cents, **{f"{k}_ffs_paid_cents": (cents if k == "inpatient" else 0) for k in CATS}})
    con.create_table("tcoc_member_month", pa.Table.from_pylist(mm), overwrite=True)
    con.create_table("high_cost_claimants", pa.Table.from_pylist([
        {"program_id": "P", "member_id": "x", "year": 2024, "person_id": "x", "cost_cents": threshold_cents,
         "threshold_cents": threshold_cents}]), overwrite=True)
    got = values(employer.build(con, "E1", Period(2024), "R1"), "high_cost_claimants")
    (threshold,) = {row for row, _column in got}  # one row, labelled by its first cell
    return {"threshold (cost in the year)": threshold, **{column: value for (_row, column), value in got.items()}}


def test_high_cost_claimants_of_the_employer_in_aggregate(con):
    # every E1 person costs $300.03 in the year (3 x $100.01): all 30 reach $300.00
    hc = _claimants(con, 30_000, {})
    assert hc == {"threshold (cost in the year)": "$300.00", "members": "30",
                  "their cost (FFS paid)": "$9,000.90",  # 30 x $300.03
                  "share of the employer's cost": "100.0%", "mean per claimant": "$300.03"}


def test_fewer_than_11_high_cost_claimants_are_hidden_with_their_cost(con):
    # four E1 persons add $500.00 in April ($800.03 in the year) and reach $500.00: a small cell
    hc = _claimants(con, 50_000, {f"E1-{i}": 50_000 for i in range(4)})
    assert hc == {"threshold (cost in the year)": "$500.00", "members": HIDDEN, "their cost (FFS paid)": HIDDEN,
                  "share of the employer's cost": HIDDEN, "mean per claimant": HIDDEN}
    # the members are still shown (30): the hidden 4 and the 26 others are never printed apart
    rep = employer.build(con, "E1", Period(2024), "R1")
    assert dict(rep.totals)["Members (distinct persons)"] == "30"
    # eleven reach it: shown, $800.03 each; $8,800.33 of 30 x $300.03 + 11 x $500.00 = $14,500.90
    hc = _claimants(con, 50_000, {f"E1-{i}": 50_000 for i in range(4, 11)})
    assert hc == {"threshold (cost in the year)": "$500.00", "members": "11", "their cost (FFS paid)": "$8,800.33",
                  "share of the employer's cost": "60.7%", "mean per claimant": "$800.03"}


def test_no_high_cost_section_without_a_threshold(con):
    assert values(employer.build(con, "E1", Period(2024), "R1"), "high_cost_claimants") == {}


def test_a_hidden_opted_out_total_hides_the_smallest_paid_category_not_a_zero_one(con):
    """Three E1 persons opt out: their $900.09 (3 x 3 x $100.01) is hidden, and with it the smallest
    category with cost, professional ($8,100.81 for the 27 who share data): hiding a zero category
    ("ed", say) would leave the total less the shown categories as the opted-out cost."""
    con.raw_sql("UPDATE tcoc_member_month SET data_sharing_opt_out = true WHERE person_id IN ('E1-0', 'E1-1', 'E1-2')")
    c = values(employer.build(con, "E1", Period(2024), "R1"), "cost_by_category")
    opted = "members who opted out of data sharing (payer-supplied total, not itemized)"
    assert c[(opted, "TCOC paid (FFS basis)")] == HIDDEN
    assert c[("professional", "TCOC paid (FFS basis)")] == HIDDEN
    assert [c[(k, "TCOC paid (FFS basis)")] for k in CATS if k != "professional"] == ["$0.00"] * 5
    assert c[("Total", "TCOC paid (FFS basis)")] == "$9,000.90"


def _every_period(year: int) -> list[Period]:
    """Every period a report can be asked for within `year`: the year, its quarters, months and
    years to date."""
    texts = [str(year), *[f"{year}-Q{q}" for q in range(1, 5)], *[f"{year}-{m:02d}" for m in range(1, 13)],
             *[f"{year}-{m:02d}-YTD" for m in range(1, 13)]]
    return [Period.parse(t) for t in texts]


def test_no_small_month_follows_from_the_reports_of_two_periods(con):
    """E3 grows: 5 members in January, 12 in February, 30 a month from March. The year's report hides
    January (5) and, so that the year's total does not give it, February (12). February's own report
    must not show its 12, nor must any quarter or year to date give January with the year's figures:
    every period's report shows member months (in the month rows, the total and, for a month, the
    distinct persons), and no month the reports hide may follow from all of them together."""
    from tests.reports.test_suppression import derivable

    mm = con.table("tcoc_member_month").to_pyarrow().to_pylist()
    size = {1: 5, 2: 12, **{m: 30 for m in range(3, 13)}}
    for m, n in size.items():
        for i in range(n):
            mm.append({**mm[0], "month": dt.date(2024, m, 1), "group_id": "G3", "person_id": f"E3-{i}",
                       "member_id": f"E3-{i}"})
    con.create_table("tcoc_member_month", pa.Table.from_pylist(mm), overwrite=True)
    groups = con.table("employer_group").to_pyarrow().to_pylist()
    con.create_table("employer_group", pa.Table.from_pylist(
        groups + [group_row("G3", "E3", "Three")], schema=GROUPS), overwrite=True)
    values = {("month", m): n for m, n in size.items()}
    cons, shown = [], set()
    for p in _every_period(2024):
        rep = employer.build(con, "E3", p, "R1")
        v = {(r[6], r[7]): r[8] for r in csvout.records(rep)}
        key = ("period", p.first, p.last)
        values[key] = sum(size[m] for m in range(p.first, p.last + 1))
        cons.append((key, [("month", m) for m in range(p.first, p.last + 1)]))
        if v[("Member months", "value")] != HIDDEN:
            assert v[("Member months", "value")] == f"{values[key]:,}"
            shown.add(key)
        if p.first == p.last and v[("Members (distinct persons)", "value")] != HIDDEN:
            shown.add(key)  # one program: a month's persons are its member months
        for m in range(p.first, p.last + 1):
            if v[(f"2024-{m:02d}", "member months")] != HIDDEN:
                shown.add(("month", m))
    assert ("month", 1) not in shown
    hidden = set(values) - shown
    fixed = derivable(values, cons, hidden)  # a hidden period total may follow (from the year's), a month not
    assert not [k for k in fixed if k[0] == "month" or is_small(values[k])], \
        f"hidden counts follow from the reports of several periods: {sorted(fixed)}"
    for total, cells in cons:  # a shown period total over hidden months must not narrow them to a small count
        hid = [c for c in cells if c in hidden]
        if hid and total in shown:
            assert not is_small(sum(values[c] for c in hid)), total


def test_a_group_that_changes_employer_is_in_each_employers_report_for_its_own_months(con):
    """Group G1 belongs to E1 until 29 February and to E9 from 1 March: E1's report counts
    January and February (60 member months), E9's March (30); neither sees the other's months
    (both counted all three months: E1 and E9 read each other's members)."""
    groups = [g for g in con.table("employer_group").to_pyarrow().to_pylist() if g["group_id"] != "G1"]
    con.create_table("employer_group", pa.Table.from_pylist(groups + [
        group_row("G1", "E1", "One", end=dt.date(2024, 2, 29)),
        group_row("G1", "E9", "Nine", start=dt.date(2024, 3, 1))], schema=GROUPS), overwrite=True)
    for org, expected, months in (("E1", "60", ("2024-01", "2024-02")), ("E9", "30", ("2024-03",))):
        v = {(r[6], r[7]): r[8] for r in csvout.records(employer.build(con, org, Period(2024), "R1"))}
        assert v[("Member months", "value")] == expected
        assert sorted(k[0] for k in v if k[1] == "member months" and k[0].startswith("2024-")) == list(months)


def _program_figures(con, actual_ytd_cents: int, awv: tuple[int, int]):
    """Program P's AWV rate (`awv`: denominator, numerator), its Value Payment adjustment of
    2024-Q1 (the target: 3 x 105 member months x $120.00 = $37,800.00; `actual_ytd_cents`) and
    E1's invoices (30 member months a month at $21.00)."""
    d, n = awv
    con.create_table("quality_rates", pa.Table.from_pylist([
        {"program_id": "P", "measure_id": "awv", "level": "program", "level_id": "P", "performance_year": 2024,
         "denominator": d, "numerator": n, "rate": Decimal(n) / Decimal(d), "note": ""}]), overwrite=True)
    con.create_table("value_payment_adjustments", pa.Table.from_pylist([
        {"performance_year": 2024, "program_id": "P", "quarter": "2024-Q1", "basis_quarter": 1,
         "target_ytd_cents": 3_780_000, "actual_ytd_cents": actual_ytd_cents, "quality_score": "0.9",
         "factor": "1.05", "pmpm_cents": 2100}]), overwrite=True)
    con.create_table("value_payment_invoices", pa.Table.from_pylist([
        {"performance_year": 2024, "employer_id": "E1", "program_id": "P", "month": dt.date(2024, m, 1),
         "quarter": "2024-Q1", "member_months": 30, "pmpm_cents": 2100, "amount_cents": 63_000} for m in (1, 2, 3)]),
        overwrite=True)


def test_an_employer_sharing_its_program_sees_no_program_wide_counts_or_cost(con):
    """E1 (30 members) and E2 (5) are both in program P. The program's AWV counts are 30 eligible,
    17 with a visit: less E1's own 25 and 12 (its wellness table) they give E2's 5 members, all with
    a visit. The program's actual cost year to date, $9,750.90, less E1's own $9,000.90 is E2's
    $750.00. E1 sees neither; the factor and the PMPM (the same for every employer) stay."""
    _program_figures(con, 900_090 + 75_000, (30, 17))
    rep = employer.build(con, "E1", Period(2024), "R1")
    assert values(rep, "wellness")[("Annual wellness visit (AWV)", "denominator")] == "25"
    assert not [k for k, v in values(rep, "quality").items() if v != HIDDEN]
    assert any("P" in n and "other" in n for n in rep.notes)
    vp = values(rep, "value_payment_adjustments")
    assert vp[("2024-Q1", "target YTD")] == vp[("2024-Q1", "actual YTD")] == HIDDEN
    assert vp[("2024-Q1", "factor")] == "1.050000" and vp[("2024-Q1", "PMPM")] == "$21.00"


def test_an_employer_alone_in_its_program_sees_the_programs_figures(con):
    """Without E2, P's members are all E1's: the program's figures are E1's own and are shown."""
    con.raw_sql("DELETE FROM tcoc_member_month WHERE group_id = 'G2'")
    _program_figures(con, 900_090, (25, 12))
    rep = employer.build(con, "E1", Period(2024), "R1")
    q = values(rep, "quality")
    assert (q[("awv", "denominator")], q[("awv", "numerator")], q[("awv", "rate")]) == ("25", "12", "48.0%")
    vp = values(rep, "value_payment_adjustments")
    assert (vp[("2024-Q1", "target YTD")], vp[("2024-Q1", "actual YTD")]) == ("$37,800.00", "$9,000.90")


def test_utilization_per_1000_is_hidden_with_the_member_months(con):
    """E4's 4 members are program Q's only members, for January and February: 8 member months,
    hidden. Their 12 ED visits are shown, but not as 18,000 per 1,000 a year, which gives back the
    8 member months (12 x 12,000 / 18,000)."""
    mm = con.table("tcoc_member_month").to_pyarrow().to_pylist()
    mm += [{**mm[0], "month": dt.date(2024, m, 1), "group_id": "G4", "program_id": "Q", "person_id": f"E4-{i}",
            "member_id": f"E4-{i}"} for m in (1, 2) for i in range(4)]
    con.create_table("tcoc_member_month", pa.Table.from_pylist(mm), overwrite=True)
    groups = con.table("employer_group").to_pyarrow().to_pylist()
    con.create_table("employer_group", pa.Table.from_pylist(groups + [group_row("G4", "E4", "Four")], schema=GROUPS),
                     overwrite=True)
    con.create_table("utilization", pa.Table.from_pylist([
        {"year": 2024, "program_id": "Q", "member_months": 8, "admissions": 0, "ed_visits": 12, "readmissions": 0}]))
    rep = employer.build(con, "E4", Period(2024), "R1")
    assert dict(rep.totals)["Member months"] == HIDDEN
    u = values(rep, "utilization")
    assert u[("ED visits", "events")] == "12"
    assert [u[(k, "per 1,000")] for k in ("inpatient admissions", "ED visits", "readmissions")] == [HIDDEN] * 3


def test_no_opted_out_cost_follows_from_the_reports_of_several_periods(con):
    """E5 has 40 members all year at $100.00 a month professional and pharmacy of $10.00 in January,
    $300.00 a month after. Three members opt out from January to March, twelve others from April to
    December: 15 in the year (its opted-out total is shown), 3 in the first quarter. Taken one by
    one, the second to fourth quarters' reports showed their opted-out totals, and the year's less
    them was the first quarter's three members' cost. Each period also hid its own smallest category
    with a hidden opted-out total (January pharmacy, February professional, ...), so that a category
    shown in one period and hidden in another could be worked out, and a month's opted-out cost with
    it. No opted-out cost of 1 to 10 members may follow from all the periods' reports together."""
    from tests.reports.test_suppression import derivable

    def cents(m):
        return {"professional": 10_000, "pharmacy": 1_000 if m == 1 else 30_000}

    opted = {m: set(range(3)) if m <= 3 else set(range(3, 15)) for m in range(1, 13)}
    mm = con.table("tcoc_member_month").to_pyarrow().to_pylist()
    for m in range(1, 13):
        for i in range(40):
            c = cents(m)
            mm.append({**mm[0], "month": dt.date(2024, m, 1), "group_id": "G5", "person_id": f"E5-{i}",
                       "member_id": f"E5-{i}", "data_sharing_opt_out": i in opted[m], "ffs_paid_cents": sum(c.values()),
                       **{f"{k}_ffs_paid_cents": c.get(k, 0) for k in CATS}})
    con.create_table("tcoc_member_month", pa.Table.from_pylist(mm), overwrite=True)
    groups = con.table("employer_group").to_pyarrow().to_pylist()
    con.create_table("employer_group", pa.Table.from_pylist(groups + [group_row("G5", "E5", "Five")], schema=GROUPS),
                     overwrite=True)
    opt_line = "members who opted out of data sharing (payer-supplied total, not itemized)"
    series = {"opted": opt_line, "total": "Total", **{k: k for k in CATS}}
    cons = [(("total", m), [("opted", m), *[(k, m) for k in CATS]]) for m in range(1, 13)]
    keys, shown, persons = set(), set(), {}
    for p in _every_period(2024):
        months = range(p.first, p.last + 1)
        c = values(employer.build(con, "E5", p, "R1"), "cost_by_category")
        persons[p.first, p.last] = len(set().union(*(opted[m] for m in months)))
        for s, row in series.items():
            key = (s, (p.first, p.last))
            cons.append((key, [(s, m) for m in months]))
            keys.add(key)
            if c[(row, "TCOC paid (FFS basis)")] != HIDDEN:
                shown.add(key)
        shown |= {("total", m) for m in months}  # the month rows' cost (40 member months a month, all shown)
    assert ("opted", (1, 12)) in shown  # 15 members: the year's total is shown
    unknown = keys | {(s, m) for s in series for m in range(1, 13)}
    fixed = derivable(dict.fromkeys(unknown, 0), cons, unknown - shown)
    leaked = sorted((k for k in fixed | (shown & keys) if k[0] == "opted" and is_small(
        persons[k[1]] if isinstance(k[1], tuple) else len(opted[k[1]]))), key=str)
    assert not leaked, f"the opted-out cost of 1 to 10 members follows from the reports: {leaked}"
