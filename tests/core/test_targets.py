"""Hand-checked cases for expected-cost targets: base PMPM by rate cell with truncation, trend,
risk ratio with its cap, discount, member months, monthly and year to date; payer-supplied targets;
properties of exactness and re-runs."""

import copy
import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.core.targets import (
    BASE_COST_COLUMNS,
    BASE_MONTH_COLUMNS,
    assign_cells,
    base_population_months,
    programs_base_months,
    discount_table,
    expected_cost,
    in_attributed_panel,
    risk_ratios,
    target_totals,
    trend_factors,
)
from allpayer.core.tcoc import cost_lines, member_month_cost
from allpayer.core.claims import medical_claim_lines
from allpayer.errors import RunError
from tests.core.tables import CON, rows, table
from allpayer.terms import parse_program

D = dt.date


MEDICAID_TARGET = {
    "method": "trended_base",
    "base_years": [{"year": 2022, "weight": "1"}],
    "base_population": "performance_year_panel",
    "rate_cells": {"dimensions": ["aid_category"], "aid_categories": ["abd", "adult", "child"]},
    "trend": {"rates": {2023: "0.040", 2024: "0.040"}, "by_cell": {"abd": {2023: "0.045", 2024: "0.045"}}},
    "risk_adjustment": {"method": "none"},
    "truncation": {"threshold": "250000.00"},
    "discount": "0",
}

MEDICARE_TARGET = {
    "method": "trended_base",
    "base_years": [{"year": 2023, "weight": "1"}],
    "base_population": "base_year_attribution",
    "rate_cells": {"dimensions": ["enrollment_type"], "enrollment_types": ["esrd", "disabled", "aged_dual", "aged_nondual"]},
    "trend": {"rates": {2024: "0.040"}},
    "risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "0.67"}, {"version": "V28", "weight": "0.33"}],
                        "tables_year": 2025, "ratio_cap": "0.03"},
    "truncation": {"percentile": "0.99"},
    "discount": "0.005",
    "growth_constraint": {"national_growth": "0.030", "bands": [{"national_growth_below": "0.027", "max_above_national": "0.010"}]},
}

COMMERCIAL_TARGET = {
    "method": "trended_base",
    "base_years": [{"year": 2023, "weight": "1"}],
    "rate_cells": {
        "dimensions": ["age_band", "sex"],
        "age_bands": [{"id": "0-17", "min_age": 0, "max_age": 17}, {"id": "18-44", "min_age": 18, "max_age": 44},
                      {"id": "45-64", "min_age": 45, "max_age": 64}, {"id": "65+", "min_age": 65}],
        "age_as_of": "year_start", "sexes": ["female", "male"], "unknown_sex_as": "female",
    },
    "trend": {"rates": {2024: "0.065"}},
}

PAYERS = {"medicaid": ("medicaid", "vmng"), "medicare": ("medicare", "medicare_ffs"), "commercial": ("mvp", "qhp"),
          "self_funded": ("mvp", "aso")}


def program(kind, target, **target_changes):
    """A PY2024 test program of `kind` with the given target block (changed by `target_changes`)."""
    target = copy.deepcopy(target)
    for k, v in target_changes.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = v
    payer, plan = PAYERS[kind]
    data = {
        "program_id": f"test-2024-{kind}", "name": f"Test {kind} program", "aco": {"id": "test_aco", "name": "Test ACO"},
        "payer": payer, "product": "test", "kind": kind, "performance_year": 2024,
        "population": {"plans": [plan], **({"group_ids": ["SOV"]} if kind == "self_funded" else {})},
        "attribution": {"method": "prospective", "window_end": "2023-12-31",
                        "steps": [{"name": "claims_plurality", "rule": "plurality"}]},
        "target": target,
        "settlement": {"risk": "one_sided", "steps": ["gross_result", "share", "net"], "savings_rate": "0.5",
                       "rounding": "half_up"},
    }
    return parse_program(data, f"test-{kind}.yaml")


EM = {
    "program_id": "string", "person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string",
    "plan": "string", "group_id": "string", "month": "date", "sex": "string", "birth_date": "date",
    "aid_category": "string", "enrollment_type": "string",
}


def member_months(spec, payer="medicaid", plan="vmng", program_id=None):
    """spec: (member_id, year, first month, last month, extra columns)."""
    out = []
    for member, year, first, last, extra in spec:
        for m in range(first, last + 1):
            r = dict(program_id=program_id, person_id="P" + member[1:], member_id=member, payer=payer,
                     payer_type=payer if payer in ("medicaid", "medicare") else "commercial", plan=plan,
                     month=D(year, m, 1), sex="female", birth_date=D(1980, 1, 1))
            r.update(extra)
            out.append(r)
    return table(out, EM)


MED = {
    "claim_id": "string", "claim_line_number": "int64", "adjustment_sequence": "int64", "claim_type": "string",
    "person_id": "string", "member_id": "string", "payer": "string", "plan": "string",
    "claim_start_date": "date", "claim_end_date": "date", "claim_line_start_date": "date",
    "bill_type_code": "string", "revenue_center_code": "string", "place_of_service_code": "string",
    "hcpcs_code": "string", "paid_date": "date", "paid_amount": "decimal(18, 2)", "allowed_amount": "decimal(18, 2)",
    "payment_arrangement": "string", "claim_status": "string",
}


def claims(spec, payer="medicaid", plan="vmng"):
    """spec: (claim_id, member_id, service date, paid dollars)."""
    out = []
    for cid, member, day, amount in spec:
        out.append(dict(claim_id=cid, claim_line_number=1, adjustment_sequence=0, claim_type="professional",
                        person_id="P" + member[1:], member_id=member, payer=payer, plan=plan, claim_start_date=day,
                        claim_end_date=day, place_of_service_code="11", hcpcs_code="99213",
                        paid_date=day + dt.timedelta(days=30), paid_amount=Decimal(amount),
                        allowed_amount=Decimal(amount), payment_arrangement="ffs", claim_status="paid"))
    return medical_claim_lines(table(out, MED))


def money(cents):
    return Decimal(cents) / 100


# ------------------------------------------------------------------------------------------------
# Medicaid (aid-category cells, trend by cell, $250,000 truncation, performance-year panel)


def _medicaid_case():
    p = program("medicaid", MEDICAID_TARGET)
    adult, child, abd = {"aid_category": "adult"}, {"aid_category": "child"}, {"aid_category": "abd"}
    perf = member_months([
        ("M1", 2024, 1, 12, adult), ("M2", 2024, 1, 3, adult), ("M3", 2024, 1, 12, child), ("M4", 2024, 1, 6, abd),
        ("M5", 2024, 1, 2, {"aid_category": "refugee"}),  # no rate cell
    ], program_id=p.program_id)
    elig = member_months([
        ("M1", 2022, 1, 12, adult), ("M2", 2022, 7, 12, adult), ("M3", 2022, 1, 12, child), ("M4", 2022, 1, 12, abd),
        ("M6", 2022, 1, 12, adult),  # not in the 2024 panel: not in the base
    ])
    elig = elig.union(member_months([("M1", 2022, 1, 12, adult)], plan="other_plan"))  # another plan: not selected
    lines = claims([
        ("C1", "M1", D(2022, 3, 1), "1200.00"), ("C2", "M2", D(2022, 8, 1), "600.00"),
        ("C3", "M3", D(2022, 5, 1), "240.00"), ("C4", "M4", D(2022, 2, 1), "300000.00"),
        ("C6", "M6", D(2022, 2, 1), "99999.00"),
    ])
    base_months = base_population_months(elig, p, performance_months=perf)
    base_cost = member_month_cost(cost_lines(lines), base_months)
    return p, perf, ibis.memtable(CON.to_pyarrow(base_cost))


@pytest.fixture(scope="module")
def medicaid():
    p, perf, base_cost = _medicaid_case()
    t = expected_cost(p, performance_months=perf, base_member_month_cost=base_cost)
    return {
        "base": {(r["base_year"], r["cell_id"]): r for r in rows(t.base)},
        "cells": {r["cell_id"]: r for r in rows(t.cells)},
        "monthly": {(r["cell_id"], r["month"].month): r for r in rows(t.monthly)},
        "program": {r["month"].month: r for r in rows(t.program_monthly)},
        "unassigned": rows(t.unassigned, key=lambda r: r["population"]),
        "totals": rows(target_totals(t)),
    }


def test_base_pmpm_by_cell_with_truncation(medicaid):
    b = medicaid["base"]
    # adult: M1 12 months $1,200 + M2 6 months $600 (M6 is not in the 2024 panel)
    assert (b[2022, "adult"]["member_months"], b[2022, "adult"]["cost_cents"]) == (18, 180000)
    assert b[2022, "adult"]["base_pmpm"] == Decimal("100")
    # abd: $300,000 over 12 months, truncated at $250,000
    assert b[2022, "abd"]["truncated_amount_cents"] == 5_000_000
    assert b[2022, "abd"]["base_pmpm"] == Decimal("20833.3333333333")  # 250,000 / 12, half-up at 10 decimals
    assert b[2022, "child"]["base_pmpm"] == Decimal("20")


def test_base_truncation_caps_a_members_year_not_each_cell_of_it():
    """A member's annual cost is capped (domain.md R2.1: sum over members of min(cost, threshold)),
    as the performance year's is, even when the member changes rate cell during the base year; the
    amount above the threshold is then split over the member's cells by cost (largest remainder).
    M1: $150,000 as a child in January-June, nothing as an adult after: $150,000 a year, under
    $250,000, so nothing is truncated (annualized cell by cell, the child half was $300,000 a year
    and lost $25,000). M2: $200,000 as a child, $100,000 as an adult: $300,000 a year, $50,000
    truncated ($75,000 cell by cell), $33,333.33 of it on the child months and $16,666.67 on the
    adult months."""
    p = program("medicaid", MEDICAID_TARGET)
    child, adult = {"aid_category": "child"}, {"aid_category": "adult"}
    perf = member_months([("M1", 2024, 1, 12, adult), ("M2", 2024, 1, 12, adult)], program_id=p.program_id)
    elig = member_months([("M1", 2022, 1, 6, child), ("M1", 2022, 7, 12, adult),
                          ("M2", 2022, 1, 6, child), ("M2", 2022, 7, 12, adult)])
    lines = claims([("C1", "M1", D(2022, 2, 1), "150000.00"),
                    ("C2", "M2", D(2022, 2, 1), "200000.00"), ("C3", "M2", D(2022, 9, 1), "100000.00")])
    base_cost = member_month_cost(cost_lines(lines), base_population_months(elig, p, performance_months=perf))
    t = expected_cost(p, performance_months=perf, base_member_month_cost=base_cost)
    b = {r["cell_id"]: r for r in rows(t.base)}
    assert (b["child"]["cost_cents"], b["child"]["truncated_amount_cents"]) == (35_000_000, 3_333_333)
    assert (b["adult"]["cost_cents"], b["adult"]["truncated_amount_cents"]) == (10_000_000, 1_666_667)
    assert b["child"]["truncated_cost_cents"] == 35_000_000 - 3_333_333
    assert (b["child"]["member_months"], b["child"]["members"]) == (12, 2)
    s = rows(t.truncation.summary)[0]
    assert (s["members"], s["truncated_members"], s["truncated_amount_cents"]) == (2, 1, 5_000_000)


def test_trend_by_cell_and_target_pmpm(medicaid):
    b, c = medicaid["base"], medicaid["cells"]
    assert b[2022, "adult"]["trend_factor"] == "1.0816"  # 1.04 x 1.04
    assert b[2022, "abd"]["trend_factor"] == "1.092025"  # abd's own 4.5% a year
    assert c["adult"]["risk_adjusted_pmpm"] == Decimal("108.16") and c["adult"]["risk_rule"] == "none"
    assert c["child"]["blended_pmpm"] == Decimal("21.632")
    # 20833.3333333333 x 1.092025 = 22750.520833333296... -> 22750.5208333333
    assert c["abd"]["blended_pmpm"] == Decimal("22750.5208333333")


def test_monthly_and_year_to_date_targets(medicaid):
    m, p = medicaid["monthly"], medicaid["program"]
    # adult: 2 member months in Jan-Mar, 1 from April: 108.16 x MM
    assert (m["adult", 1]["member_months"], m["adult", 1]["target_cents"]) == (2, 21632)
    assert m["adult", 3]["ytd_target_cents"] == 64896 and m["adult", 4]["target_cents"] == 10816
    assert m["adult", 12]["ytd_target_cents"] == 162240  # 108.16 x 15
    # abd: 22750.5208333333 a month for 6 months; YTD rounds once: 136,503.12
    assert m["abd", 6]["ytd_target_cents"] == 13650312
    assert [m["abd", k]["target_cents"] for k in range(1, 8)] == [2275052] * 6 + [0]
    assert m["child", 12]["ytd_target_cents"] == 25958  # 21.632 x 12 = 259.584
    assert p[12]["ytd_target_cents"] == 162240 + 13650312 + 25958
    assert p[12]["ytd_member_months"] == 15 + 12 + 6
    assert sum(r["target_cents"] for r in p.values()) == p[12]["ytd_target_cents"]
    (tot,) = medicaid["totals"]
    assert tot["target_cents"] == p[12]["ytd_target_cents"]


def test_member_months_without_a_rate_cell_are_reported(medicaid):
    perf = [r for r in medicaid["unassigned"] if r["population"] == "performance"]
    assert [(r["year"], r["member_months"]) for r in perf] == [(2024, 2)]
    assert sum(r["member_months"] for r in medicaid["program"].values()) == 15 + 12 + 6


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.decimals(min_value=Decimal("0.0000000001"), max_value=Decimal("99999.9999999999"), places=10),
    st.lists(st.integers(0, 40), min_size=12, max_size=12),
)
def test_target_pmpm_times_member_months_rounds_to_the_target(pmpm, counts):
    """Whatever the PMPM (10 decimals) and member months, the YTD target is round(PMPM x YTD member
    months), the PMPM is kept exactly, and the months add up to the year."""
    p = program("medicaid", MEDICAID_TARGET, method="payer_supplied", base_years=None, trend=None,
                base_population=None, payer_supplied_pmpm={"abd": "1", "adult": "1", "child": "1"})
    perf = member_months([(f"M{i}x{k}", 2024, k + 1, k + 1, {"aid_category": "abd"})
                          for k, n in enumerate(counts) for i in range(n)], program_id=p.program_id)
    given_pmpm = table([{"cell_id": "abd", "month": D(2024, k, 1), "target_pmpm": pmpm} for k in range(1, 13)],
                       {"cell_id": "string", "month": "date", "target_pmpm": "decimal(38, 10)"})
    t = expected_cost(p, performance_months=perf, payer_targets=given_pmpm)
    got = rows(t.monthly.filter(t.monthly.cell_id == "abd"), key=lambda r: r["month"])
    ytd_mm = 0
    for r, n in zip(got, counts):
        ytd_mm += n
        assert r["target_pmpm"] == pmpm and r["ytd_member_months"] == ytd_mm
        assert money(r["ytd_target_cents"]) == (pmpm * ytd_mm).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert sum(r["target_cents"] for r in got) == got[-1]["ytd_target_cents"]


def test_rerunning_gives_identical_tables():
    p, perf, base_cost = _medicaid_case()
    a = expected_cost(p, performance_months=perf, base_member_month_cost=base_cost)
    b = expected_cost(p, performance_months=perf, base_member_month_cost=base_cost)
    for name in ("base", "monthly"):
        assert CON.to_pyarrow(getattr(a, name)).equals(CON.to_pyarrow(getattr(b, name)))


def test_the_base_months_kept_by_a_run_hold_what_their_cost_and_readers_need():
    from allpayer.core.tcoc import PROGRAM_MONTH_KEYS

    assert set(PROGRAM_MONTH_KEYS) <= set(BASE_MONTH_COLUMNS)  # the cost's join to the claim lines
    assert set(BASE_COST_COLUMNS) - {"year"} <= set(BASE_MONTH_COLUMNS)  # member_month_cost adds the year
    assert "person_id" in BASE_MONTH_COLUMNS  # the risk ratios weigh each person's months


@pytest.mark.parametrize("kind", ["medicaid", "commercial"])
def test_the_base_cost_columns_are_all_the_targets_read(kind):
    # `allpayer run` stores only BASE_COST_COLUMNS and the cost basis of the base months' cost:
    # the targets from those columns are the targets from every column (aid-category cells with
    # truncation; age-band and sex cells, which read the birth date and sex)
    if kind == "medicaid":
        p, perf, base_cost = _medicaid_case()
    else:
        p = program("commercial", COMMERCIAL_TARGET)
        spec = [("M1", 2023, 1, 12, {"birth_date": D(1979, 6, 15), "sex": "male"}),
                ("M2", 2023, 3, 12, {"birth_date": D(2006, 1, 1), "sex": "unknown"})]
        perf = member_months([(m, 2024, 1, 12, extra) for m, _y, _f, _l, extra in spec], payer="mvp", plan="qhp",
                             program_id=p.program_id)
        lines = claims([("C1", "M1", D(2023, 3, 1), "1200.00"), ("C2", "M2", D(2023, 5, 1), "480.00")],
                       payer="mvp", plan="qhp")
        base = base_population_months(member_months(spec, payer="mvp", plan="qhp"), p, performance_months=perf)
        base_cost = ibis.memtable(CON.to_pyarrow(member_month_cost(cost_lines(lines), base)))
    narrow = base_cost.select(*BASE_COST_COLUMNS, "ffs_paid_cents")
    assert len(narrow.columns) < len(base_cost.columns)
    full = expected_cost(p, performance_months=perf, base_member_month_cost=base_cost)
    got = expected_cost(p, performance_months=perf, base_member_month_cost=narrow)
    for name in ("base", "cells", "monthly", "unassigned"):
        assert rows(getattr(got, name), key=str) == rows(getattr(full, name), key=str), name
    assert rows(full.monthly)  # a target was computed


# ------------------------------------------------------------------------------------------------
# Medicare (enrollment-type cells, 99th percentile, risk ratio cap +3%, discount 0.5%)


def _medicare_case(p, ratios=True):
    perf = member_months([
        ("M1", 2024, 1, 12, {"enrollment_type": "aged_nondual"}), ("M4", 2024, 1, 12, {"enrollment_type": "esrd"}),
        ("M7", 2024, 1, 12, {"enrollment_type": "disabled"}),
    ], payer="medicare", plan="medicare_ffs", program_id=p.program_id)
    elig = member_months([
        ("M1", 2023, 1, 12, {"enrollment_type": "aged_nondual"}), ("M2", 2023, 1, 12, {"enrollment_type": "aged_nondual"}),
        ("M3", 2023, 1, 12, {"enrollment_type": "aged_nondual"}), ("M4", 2023, 7, 12, {"enrollment_type": "esrd"}),
    ], payer="medicare", plan="medicare_ffs")
    lines = claims([("C1", "M1", D(2023, 3, 1), "1200.00"), ("C2", "M2", D(2023, 3, 1), "2400.00"),
                    ("C3", "M3", D(2023, 3, 1), "3600.00"), ("C4", "M4", D(2023, 8, 1), "60000.00")],
                   payer="medicare", plan="medicare_ffs")
    base_cost = ibis.memtable(CON.to_pyarrow(member_month_cost(cost_lines(lines), base_population_months(elig, p))))
    rr = table([{"cell_id": "aged_nondual", "raw_ratio": 1.05}, {"cell_id": "esrd", "raw_ratio": 0.97}],
               {"cell_id": "string", "raw_ratio": "float64"}) if ratios else None
    return expected_cost(p, performance_months=perf, base_member_month_cost=base_cost, risk_ratio_table=rr)


def test_medicare_target_with_percentile_truncation_risk_cap_and_discount():
    p = program("medicare", MEDICARE_TARGET)
    t = _medicare_case(p)
    th = {r["truncation_group"]: r for r in rows(t.truncation.thresholds)}
    # 99th percentile of three members: rank ceil(2.97) = 3, the largest annualized cost: $3,600
    assert (th["aged_nondual"]["percentile_rank"], th["aged_nondual"]["threshold_cents"]) == (3, 360000)
    c = {r["cell_id"]: r for r in rows(t.cells)}
    anb = c["aged_nondual"]
    assert anb["blended_pmpm"] == Decimal("208")  # $7,200 / 36 = 200, x 1.04
    assert (anb["raw_ratio"], anb["risk_ratio"], anb["risk_rule"]) == (Decimal("1.05"), Decimal("1.03"), "cap")
    assert anb["risk_adjusted_pmpm"] == Decimal("214.24")
    assert (c["esrd"]["risk_ratio"], c["esrd"]["risk_rule"]) == (Decimal("0.97"), "raw")
    assert c["esrd"]["risk_adjusted_pmpm"] == Decimal("10088")  # 60,000 / 6 x 1.04 x 0.97
    assert c["disabled"]["status"] == "no_base_experience"
    m = {(r["cell_id"], r["month"].month): r for r in rows(t.monthly)}
    assert m["aged_nondual", 1]["target_pmpm"] == Decimal("213.1688")  # x (1 - 0.005)
    assert m["esrd", 12]["ytd_target_cents"] == 12045072  # 10,037.56 x 12
    assert m["disabled", 1]["target_cents"] is None
    p12 = {r["month"].month: r for r in rows(t.program_monthly)}[12]
    assert p12["member_months_without_target"] == 1  # the disabled member in December
    assert p12["ytd_target_cents"] == 12045072 + 255803  # 213.1688 x 12 = 2,558.0256


def test_risk_adjusted_program_needs_ratios_and_ratio_floor_applies():
    p = program("medicare", MEDICARE_TARGET)
    with pytest.raises(RunError, match="risk ratio table"):
        _medicare_case(p, ratios=False)
    ra = {"method": "cms_hcc", "models": [{"version": "V28", "weight": "1"}], "tables_year": 2025, "ratio_cap": "0.03",
          "ratio_floor": "0.02"}
    p2 = program("medicare", MEDICARE_TARGET, risk_adjustment=ra)
    rr = table([{"cell_id": "esrd", "raw_ratio": Decimal("0.9000000001")}],
               {"cell_id": "string", "raw_ratio": "decimal(38, 10)"})
    got = {r["cell_id"]: r for r in rows(risk_ratios(p2, rr))}
    assert (got["esrd"]["risk_ratio"], got["esrd"]["risk_rule"]) == (Decimal("0.98"), "floor")
    assert (got["disabled"]["risk_ratio"], got["disabled"]["risk_rule"]) == (Decimal("1"), "missing: 1 assumed")


def test_dated_discount_changes_the_monthly_target():
    p = program("medicare", MEDICARE_TARGET, discount=[{"from": "2024-01-01", "value": "0.005"}, {"from": "2024-07-01", "value": "0.01"}])
    d = {r["month"].month: r for r in rows(discount_table(p))}
    assert (d[6]["discount"], d[7]["discount"]) == ("0.005", "0.01")
    t = _medicare_case(p)
    m = {(r["cell_id"], r["month"].month): r for r in rows(t.monthly)}
    assert m["aged_nondual", 7]["target_pmpm"] == Decimal("212.0976")  # 214.24 x 0.99
    # YTD through July: 6 x 213.1688 + 212.0976 = 1,491.1104 -> 1,491.11
    assert m["aged_nondual", 7]["ytd_target_cents"] == 149111


def test_growth_constraint_limits_the_performance_year_trend():
    gc = {"national_growth": "0.020", "bands": [{"national_growth_below": "0.027", "max_above_national": "0.010"}],
          "basis": "INF"}
    p = program("medicare", MEDICARE_TARGET, growth_constraint=gc, trend={"rates": {2024: "0.045"}})
    (r,) = [r for r in rows(trend_factors(p)) if r["cell_id"] == "esrd"]
    assert (r["trend_factor"], r["growth_limited"]) == ("1.03", True)  # 2.0% + 1.0 pp


# ------------------------------------------------------------------------------------------------
# cells, payer-supplied targets, base population


def test_rate_cells_by_age_at_year_start_and_sex():
    p = program("commercial", COMMERCIAL_TARGET)
    mm = member_months([
        ("M1", 2024, 1, 1, {"birth_date": D(1979, 6, 15), "sex": "male"}),  # 44 on 1 January, 45 in June
        ("M2", 2024, 1, 1, {"birth_date": D(2006, 1, 1), "sex": "unknown"}),  # 18 on 1 January; unknown -> female
        ("M3", 2024, 1, 1, {"birth_date": D(1950, 1, 2), "sex": "female"}),
        ("M4", 2024, 1, 1, {"birth_date": D(2024, 3, 9), "sex": "male"}),  # born during the year: age 0
    ], payer="mvp", plan="qhp")
    got = {r["member_id"]: r["cell_id"] for r in rows(assign_cells(mm, p))}
    assert got == {"M1": "18-44/male", "M2": "18-44/female", "M3": "65+/female", "M4": "0-17/male"}


def test_payer_supplied_pmpm_from_terms():
    pmpm = {"abd": "1500.00", "adult": "400.00", "child": "150.005"}
    with pytest.raises(Exception):
        program("medicaid", MEDICAID_TARGET, method="payer_supplied", base_years=None, trend=None, base_population=None,
                payer_supplied_pmpm=pmpm)  # money has at most two decimals
    pmpm["child"] = "150.01"
    p = program("medicaid", MEDICAID_TARGET, method="payer_supplied", base_years=None, trend=None, base_population=None,
                payer_supplied_pmpm=pmpm)
    perf = member_months([("M1", 2024, 1, 3, {"aid_category": "child"}), ("M2", 2024, 2, 2, {"aid_category": "abd"})],
                         program_id=p.program_id)
    t = expected_cost(p, performance_months=perf)
    m = {(r["cell_id"], r["month"].month): r for r in rows(t.monthly)}
    assert m["child", 3]["ytd_target_cents"] == 45003 and m["abd", 2]["target_cents"] == 150000
    assert {r["status"] for r in rows(t.cells)} == {"payer_supplied"}


def test_base_population_from_an_attribution_table():
    p = program("medicare", MEDICARE_TARGET)
    elig = member_months([("M1", 2023, 1, 12, {"enrollment_type": "esrd"}), ("M2", 2023, 1, 12, {"enrollment_type": "esrd"}),
                          ("M3", 2022, 1, 12, {"enrollment_type": "esrd"})], payer="medicare", plan="medicare_ffs")
    att = table([{"member_id": "M1", "month": D(2023, m, 1)} for m in range(1, 7)], {"member_id": "string", "month": "date"})
    got = rows(base_population_months(elig, p, attribution=att))
    assert {(r["member_id"], r["month"].month) for r in got} == {("M1", m) for m in range(1, 7)}
    assert {r["program_id"] for r in got} == {"test-2024-medicare"}
    everyone = rows(base_population_months(elig, p))
    assert len(everyone) == 24  # 2022 is not a base year


def test_a_performance_year_panel_is_narrowed_to_the_attributed_and_eligible_people():
    """`in_attributed_panel`: the base months of a ``performance_year_panel`` program keep the people
    attributed and eligible in a month of the performance year (M1), not those only eligible (M2) or
    listed while ineligible (M3); another program's rows stay as they are."""
    medicaid, medicare = program("medicaid", MEDICAID_TARGET), program("medicare", MEDICARE_TARGET, base_population=None)
    perf = member_months([(m, 2024, 1, 12, {}) for m in ("M1", "M2", "M3")], program_id=medicaid.program_id)
    elig = ibis.union(member_months([(m, 2022, 1, 12, {}) for m in ("M1", "M2", "M3")]),
                      member_months([("M4", 2023, 1, 12, {})], payer="medicare", plan="medicare_ffs")).drop("program_id")
    base = programs_base_months(elig, [medicaid, medicare], performance_months=perf)
    att = table([{"program_id": medicaid.program_id, "person_id": pid, "month": D(2024, 3, 1), "attributed": a,
                  "eligible": e} for pid, a, e in (("P1", True, True), ("P2", False, True), ("P3", True, False))],
                {"program_id": "string", "person_id": "string", "month": "date", "attributed": "boolean",
                 "eligible": "boolean"})
    got = {(r["program_id"], r["member_id"]) for r in rows(in_attributed_panel(base, att, [medicaid, medicare]))}
    assert got == {(medicaid.program_id, "M1"), (medicare.program_id, "M4")}
    assert in_attributed_panel(base, att, [medicare]) is base  # no panel program: nothing to narrow


def test_mssp_benchmark_method_is_refused():
    p = program("medicaid", MEDICAID_TARGET)
    p2 = p.model_copy(update={"target": p.target.model_copy(update={"method": "mssp_benchmark"})})
    with pytest.raises(RunError, match="mssp_benchmark"):
        expected_cost(p2, performance_months=member_months([]))


def test_an_employer_group_keeps_its_base_year_history_under_its_previous_administrator():
    p = program("self_funded", COMMERCIAL_TARGET)
    elig = member_months([("M1", 2023, 1, 12, {"group_id": "SOV"}), ("M2", 2023, 1, 12, {"group_id": "OTHER"})],
                         payer="bcbsvt", plan="aso")
    got = rows(base_population_months(elig, p))
    assert {(r["member_id"], r["payer"]) for r in got} == {("M1", "bcbsvt")} and len(got) == 12


def test_several_programs_base_months_in_one_query_match_each_program_alone():
    """`programs_base_months` selects each program's rows as `base_population_months` does for it
    alone: a panel program, a program with every eligible month and an employer group's program,
    with a month the group holds under two administrators (the first payer in sort order kept)."""
    medicaid, medicare, employer = (program("medicaid", MEDICAID_TARGET),
                                    program("medicare", MEDICARE_TARGET, base_population=None),
                                    program("self_funded", COMMERCIAL_TARGET))
    perf = member_months([("M1", 2024, 1, 12, {}), ("M2", 2024, 1, 3, {})], program_id=medicaid.program_id)
    perf = perf.union(member_months([("M7", 2024, 1, 12, {})], payer="medicare", plan="medicare_ffs",
                                    program_id=medicare.program_id))
    elig = ibis.union(
        member_months([("M1", 2022, 1, 12, {}), ("M2", 2022, 7, 8, {}), ("M6", 2022, 1, 12, {}),
                       ("M1", 2023, 1, 12, {})]),  # M6: not in the 2024 panel; 2023: not medicaid's base year
        member_months([("M3", 2023, 1, 2, {}), ("M4", 2022, 1, 12, {})], payer="medicare", plan="medicare_ffs"),
        member_months([("M5", 2023, 1, 3, {"group_id": "SOV"})], payer="mvp", plan="aso"),
        member_months([("M5", 2023, 3, 4, {"group_id": "SOV"})], payer="bcbsvt", plan="aso"),
        member_months([("M8", 2023, 1, 1, {"group_id": "OTHER"})], payer="mvp", plan="aso"),
    ).drop("program_id")
    together = programs_base_months(elig, [medicaid, medicare, employer], performance_months=perf)
    got = {(r["program_id"], r["member_id"], r["month"], r["payer"], r["performance_year"]) for r in rows(together)}
    want = {(medicaid.program_id, "M1", D(2022, m, 1), "medicaid", 2022) for m in range(1, 13)}
    want |= {(medicaid.program_id, "M2", D(2022, m, 1), "medicaid", 2022) for m in (7, 8)}
    want |= {(medicare.program_id, "M3", D(2023, m, 1), "medicare", 2023) for m in (1, 2)}
    want |= {(employer.program_id, "M5", D(2023, 1, 1), "mvp", 2023), (employer.program_id, "M5", D(2023, 2, 1), "mvp", 2023),
             (employer.program_id, "M5", D(2023, 3, 1), "bcbsvt", 2023), (employer.program_id, "M5", D(2023, 4, 1), "bcbsvt", 2023)}
    assert got == want and together.count().to_pyarrow().as_py() == len(want)
    alone = [base_population_months(elig, p, performance_months=perf.filter(perf.program_id == p.program_id))
             for p in (medicaid, medicare, employer)]
    assert list(together.columns) == list(alone[0].columns) == [*elig.columns, "program_id", "product", "program_kind", "performance_year",
                                                                    "plans_in_month"]
    assert sorted(map(str, rows(together))) == sorted(str(r) for a in alone for r in rows(a))
    # with an attribution table: the programs of base-year attribution (medicare, the employer's)
    # keep their attributed months only
    att = table([{"program_id": medicare.program_id, "member_id": "M3", "month": D(2023, 1, 1)},
                 {"program_id": "another", "member_id": "M3", "month": D(2023, 2, 1)}],
                {"program_id": "string", "member_id": "string", "month": "date"})
    attributed = programs_base_months(elig, [medicaid, medicare, employer], performance_months=perf, attribution=att)
    got = {(r["program_id"], r["member_id"], r["month"], r["payer"], r["performance_year"]) for r in rows(attributed)}
    assert got == {r for r in want if r[0] == medicaid.program_id} | {(medicare.program_id, "M3", D(2023, 1, 1), "medicare", 2023)}
    # a program of two plans keeps, for a month in both, the plan first in sort order
    qhp = program("commercial", COMMERCIAL_TARGET)
    qhp = qhp.model_copy(update={"population": qhp.population.model_copy(update={"plans": ["qhp_silver", "qhp"]})})
    two = ibis.union(member_months([("M9", 2023, 1, 2, {})], payer="mvp", plan="qhp_silver"),
                     member_months([("M9", 2023, 2, 3, {})], payer="mvp", plan="qhp")).drop("program_id")
    got = {(r["month"].month, r["plan"]) for r in rows(programs_base_months(two, [qhp, medicare]))}
    assert got == {(1, "qhp_silver"), (2, "qhp"), (3, "qhp")}
    with pytest.raises(RunError, match="lacks program_id"):
        programs_base_months(elig, [medicaid, medicare], performance_months=perf.drop("program_id"))


def test_a_base_month_in_two_plans_of_a_program_is_one_month_with_both_plans_claims_once():
    """A member in two plans of the program in February 2023 (silver until the 15th, then the QHP):
    one base month, carrying the first plan in sort order (as a performance-year member month
    does), and its cost counts the claims of both plans once; a plan the program does not select
    stays out."""
    qhp = program("commercial", COMMERCIAL_TARGET)
    qhp = qhp.model_copy(update={"population": qhp.population.model_copy(update={"plans": ["qhp_silver", "qhp"]})})
    elig = ibis.union(member_months([("M9", 2023, 1, 2, {})], payer="mvp", plan="qhp_silver"),
                      member_months([("M9", 2023, 2, 3, {})], payer="mvp", plan="qhp"),
                      member_months([("M9", 2023, 2, 2, {})], payer="mvp", plan="aso")).drop("program_id")
    base = base_population_months(elig, qhp)
    assert [(r["month"].month, r["plan"], r["plans_in_month"]) for r in rows(base, key=lambda r: r["month"])] == [
        (1, "qhp_silver", None), (2, "qhp", "|qhp|qhp_silver|"), (3, "qhp", None)]
    lines = ibis.union(claims([("S1", "M9", D(2023, 2, 3), "100.00")], payer="mvp", plan="qhp_silver"),
                       claims([("Q1", "M9", D(2023, 2, 20), "200.00")], payer="mvp", plan="qhp"),
                       claims([("A1", "M9", D(2023, 2, 21), "400.00")], payer="mvp", plan="aso"))
    cost = rows(member_month_cost(cost_lines(lines), base, unique_months=True), key=lambda r: r["month"])
    assert [(r["month"].month, r["ffs_paid_cents"]) for r in cost] == [(1, 0), (2, 30000), (3, 0)]


def test_an_employer_base_month_under_two_member_ids_of_one_person_is_one_month():
    """An employee of the group (P5) moves from MVP to BCBSVT as administrator in March 2023 and gets a
    new member id there (M15): one base month in March, not two (the row of the first payer in sort
    order, as for one member id), four in all."""
    p = program("self_funded", COMMERCIAL_TARGET)
    elig = ibis.union(member_months([("M5", 2023, 1, 3, {"group_id": "SOV"})], payer="mvp", plan="aso"),
                      member_months([("M15", 2023, 3, 4, {"group_id": "SOV", "person_id": "P5"})], payer="bcbsvt",
                                    plan="aso")).drop("program_id")
    got = sorted((r["month"].month, r["member_id"], r["payer"]) for r in rows(base_population_months(elig, p)))
    assert got == [(1, "M5", "mvp"), (2, "M5", "mvp"), (3, "M15", "bcbsvt"), (4, "M15", "bcbsvt")]
