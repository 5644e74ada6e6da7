"""Hand-checked cases for the TCOC stage: cost per member month, truncation, completion factors,
utilization, high-cost claimants, leakage and aggregates, plus exactness properties."""

import datetime as dt
import doctest
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_DOWN, ROUND_UP, Decimal
from fractions import Fraction

import ibis
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allpayer.core import tcoc
from allpayer.core.claims import medical_claim_lines, pharmacy_claim_lines
from allpayer.core.tcoc import (
    MEDICARE_PARTS_A_B,
    TcocScope,
    apply_completion,
    claim_payment_rows,
    completion,
    completion_window,
    cost_lines,
    cost_reconciliation,
    div_round,
    high_cost_claimants,
    leakage,
    leakage_lines,
    member_month_cost,
    member_year_cost,
    tcoc_aggregate,
    threshold_table,
    truncation,
    utilization_events,
    utilization_rates,
    with_per_member,
)
from allpayer.errors import RunError
from tests.core.tables import CON, rows, table

D = dt.date


# ------------------------------------------------------------------------------------------------
# builders

MEDICAL = {
    "claim_id": "string", "claim_line_number": "int64", "adjustment_sequence": "int64", "claim_type": "string",
    "person_id": "string", "member_id": "string", "payer": "string", "plan": "string",
    "claim_start_date": "date", "claim_end_date": "date", "claim_line_start_date": "date",
    "admission_date": "date", "discharge_date": "date", "admit_type_code": "string",
    "discharge_disposition_code": "string", "bill_type_code": "string", "revenue_center_code": "string",
    "place_of_service_code": "string", "hcpcs_code": "string", "billing_npi": "string", "billing_tin": "string",
    "facility_npi": "string", "paid_date": "date", "paid_amount": "decimal(18, 2)",
    "allowed_amount": "decimal(18, 2)", "payment_arrangement": "string", "claim_status": "string",
}
PHARMACY = {
    "claim_id": "string", "claim_line_number": "int64", "adjustment_sequence": "int64", "person_id": "string",
    "member_id": "string", "payer": "string", "plan": "string", "dispensing_date": "date", "ndc_code": "string",
    "paid_date": "date", "paid_amount": "decimal(18, 2)", "allowed_amount": "decimal(18, 2)",
}
PROGRAM_MONTHS = {
    "program_id": "string", "member_id": "string", "person_id": "string", "payer": "string", "plan": "string",
    "group_id": "string", "month": "date", "enrollment_type": "string",
}


def medical(records):
    base = dict(claim_line_number=1, adjustment_sequence=0, claim_type="professional", person_id="P1",
                member_id="M1", payer="mcd", plan="vmng", place_of_service_code="11", hcpcs_code="99213",
                payment_arrangement="ffs", claim_status="paid")
    out = []
    for r in records:
        r = dict(base, **r)
        r.setdefault("claim_end_date", r["claim_start_date"])
        r.setdefault("paid_date", r["claim_start_date"] + dt.timedelta(days=20))
        r["paid_amount"] = Decimal(r["paid_amount"])
        r["allowed_amount"] = Decimal(r.get("allowed_amount", r["paid_amount"]))
        out.append(r)
    return table(out, MEDICAL)


def pharmacy(records):
    base = dict(claim_line_number=1, adjustment_sequence=0, person_id="P1", member_id="M1", payer="mcd",
                plan="vmng", ndc_code="00000000000")
    out = []
    for r in records:
        r = dict(base, **r)
        r.setdefault("paid_date", r["dispensing_date"])
        r["paid_amount"] = Decimal(r["paid_amount"])
        r["allowed_amount"] = Decimal(r.get("allowed_amount", r["paid_amount"]))
        out.append(r)
    return table(out, PHARMACY)


def program_months(spec):
    """spec: list of (program_id, member_id, months, extra) with months a list of (year, month)."""
    out = []
    for program_id, member_id, months, extra in spec:
        for y, m in months:
            out.append(dict(program_id=program_id, member_id=member_id, person_id="P" + member_id[1:], payer="mcd",
                            plan="vmng", month=D(y, m, 1), **extra))
    return table(out, PROGRAM_MONTHS)


def months(year, first, last):
    return [(year, m) for m in range(first, last + 1)]


# ------------------------------------------------------------------------------------------------
# exact arithmetic


MODES = {"half_up": ROUND_HALF_UP, "half_even": ROUND_HALF_EVEN, "down": ROUND_DOWN, "up": ROUND_UP}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(-(10**30), 10**30), st.integers(1, 10**12)), min_size=1, max_size=30
    ),
    st.sampled_from(sorted(MODES)),
)
def test_div_round_is_exact_integer_division(pairs, mode):
    t = table([{"n": Decimal(n), "d": Decimal(d), "i": i} for i, (n, d) in enumerate(pairs)],
              {"n": "decimal(38, 0)", "d": "decimal(38, 0)", "i": "int64"})
    got = {r["i"]: int(r["q"]) for r in rows(div_round(t, "q", t.n, t.d, mode))}
    for i, (n, d) in enumerate(pairs):
        expected = int((Decimal(n) / Decimal(d)).quantize(Decimal(1), rounding=MODES[mode])) if abs(n) < 10**27 else None
        exact = Fraction(n, d)
        q = got[i]
        # the result is within one of the exact quotient, and equals Decimal's rounding
        assert abs(Fraction(q) - exact) <= 1
        if expected is not None:
            assert q == expected, (n, d, mode)


def test_div_round_zero_denominator_is_null():
    t = table([{"n": 5, "d": 0}], {"n": "int64", "d": "int64"})
    assert rows(div_round(t, "q", t.n, t.d))[0]["q"] is None


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(-(10**11), 10**11), st.integers(1, 10**7)), min_size=1, max_size=40))
def test_pmpm_times_member_months_rounds_back_to_the_dollar_total(cases):
    t = table([{"i": i, "c": c, "mm": mm} for i, (c, mm) in enumerate(cases)], {"i": "int64", "c": "int64", "mm": "int64"})
    got = {r["i"]: r["pmpm"] for r in rows(with_per_member(t, "pmpm", t.c, t.mm))}
    for i, (total_cents, member_months) in enumerate(cases):
        pmpm = got[i]
        assert pmpm.as_tuple().exponent == -10
        assert (pmpm * member_months).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) == Decimal(total_cents) / 100


# ------------------------------------------------------------------------------------------------
# cost per member month


def _cost_case():
    med = medical([
        # January: an inpatient stay, paid FFS, adjusted down by a later row
        dict(claim_id="IP1", claim_type="institutional", bill_type_code="111", revenue_center_code="0120",
             place_of_service_code=None, hcpcs_code=None, claim_start_date=D(2024, 1, 3), paid_amount="1000.00",
             allowed_amount="1200.00"),
        dict(claim_id="IP1", adjustment_sequence=1, claim_type="institutional", bill_type_code="111",
             revenue_center_code="0120", place_of_service_code=None, hcpcs_code=None, claim_start_date=D(2024, 1, 3),
             paid_amount="-100.00", allowed_amount="-100.00"),
        # February: a shadow professional claim (FPP provider): paid 0, priced at 80.00 allowed
        dict(claim_id="SH1", claim_start_date=D(2024, 2, 10), paid_amount="0", allowed_amount="80.00",
             payment_arrangement="fpp"),
        # February: an ED visit and a DME line (reported as 'other')
        dict(claim_id="ED1", hcpcs_code="99284", place_of_service_code="23", claim_start_date=D(2024, 2, 11),
             paid_amount="150.00", allowed_amount="175.00"),
        dict(claim_id="DME1", claim_type="dme", hcpcs_code="E0601", claim_start_date=D(2024, 2, 12),
             paid_amount="20.00"),
        # April: outside the member's program months (Jan-Mar)
        dict(claim_id="OUT1", claim_start_date=D(2024, 4, 2), paid_amount="55.55"),
        # another plan's claim in January: not this program's cost
        dict(claim_id="OTHER", plan="qhp", claim_start_date=D(2024, 1, 9), paid_amount="9.99"),
    ])
    rx = pharmacy([dict(claim_id="RX1", dispensing_date=D(2024, 3, 5), paid_amount="30.00", allowed_amount="33.00")])
    pm = program_months([
        ("prog", "M1", months(2024, 1, 3), {}),
        ("prog", "M2", months(2024, 1, 2), {}),
    ])
    lines = cost_lines(medical_claim_lines(med), pharmacy_claim_lines(rx))
    return lines, pm


def test_member_month_cost_by_category_and_basis():
    lines, pm = _cost_case()
    out = {(r["member_id"], r["month"]): r for r in rows(member_month_cost(lines, pm))}
    assert len(out) == 5  # every program member month, with or without claims
    jan, feb, mar = out["M1", D(2024, 1, 1)], out["M1", D(2024, 2, 1)], out["M1", D(2024, 3, 1)]
    assert (jan["paid_cents"], jan["allowed_cents"], jan["ffs_paid_cents"]) == (90000, 110000, 90000)
    assert jan["inpatient_ffs_paid_cents"] == 90000 and jan["inpatient_allowed_cents"] == 110000
    # shadow claim: paid 0, FFS basis = its priced allowed amount
    assert feb["paid_cents"] == 15000 + 2000
    assert feb["shadow_priced_cents"] == 8000
    assert feb["ffs_paid_cents"] == 15000 + 2000 + 8000
    assert feb["professional_ffs_paid_cents"] == 8000 and feb["ed_ffs_paid_cents"] == 15000
    assert feb["other_ffs_paid_cents"] == 2000 and feb["ed_allowed_cents"] == 17500
    assert mar["pharmacy_ffs_paid_cents"] == 3000 and mar["pharmacy_allowed_cents"] == 3300
    assert out["M2", D(2024, 1, 1)]["ffs_paid_cents"] == 0 and out["M2", D(2024, 1, 1)]["claim_lines"] == 0
    # category columns add up to the total
    for r in out.values():
        assert sum(r[f"{c}_ffs_paid_cents"] for c in ("inpatient", "outpatient", "ed", "professional", "pharmacy",
                                                        "other")) == r["ffs_paid_cents"]


def test_medicare_scope_leaves_pharmacy_out_and_reconciliation_accounts_for_every_line():
    lines, pm = _cost_case()
    mmc = rows(member_month_cost(lines, pm, {"prog": MEDICARE_PARTS_A_B}))
    assert sum(r["ffs_paid_cents"] for r in mmc) == 90000 + 25000
    assert sum(r["pharmacy_ffs_paid_cents"] for r in mmc) == 0
    rec = {(r["program_id"], r["disposition"]): r for r in rows(cost_reconciliation(lines, pm, MEDICARE_PARTS_A_B))}
    assert rec["prog", "in_program"]["ffs_paid_cents"] == 115000
    assert rec["prog", "out_of_scope"]["ffs_paid_cents"] == 3000
    assert rec[None, "outside_program_months"]["ffs_paid_cents"] == 5555 + 999
    assert rec[None, "outside_program_months"]["claim_lines"] == 2
    total = sum(r["ffs_paid_cents"] for r in rows(lines))
    assert sum(r["ffs_paid_cents"] for r in rec.values()) == total


def test_summed_cost_lines_give_the_same_member_months_and_reconciliation():
    """What a run stores, the cost lines summed per member, payer, plan, month and category (with
    how many lines each row holds), gives the member-month costs and the reconciliation of the lines
    themselves (every line doubled, so that rows really are summed), with and without a scope."""
    lines, pm = _cost_case()
    lines = lines.union(lines, distinct=False)
    summed = tcoc.summed_cost_lines(lines)
    assert len(rows(summed)) * 2 == len(rows(lines))
    for scope in (None, {"prog": MEDICARE_PARTS_A_B}):
        key = lambda r: (r["member_id"], r["month"])  # noqa: E731
        assert rows(member_month_cost(summed, pm, scope), key=key) == rows(member_month_cost(lines, pm, scope), key=key)
        key = lambda r: (str(r["program_id"]), r["disposition"], r["service_year"], r["payer"])  # noqa: E731
        assert rows(cost_reconciliation(summed, pm, scope), key=key) == rows(cost_reconciliation(lines, pm, scope), key=key)


def test_unique_member_months_join_the_lines_as_they_are():
    """The run passes `unique_months=True` for its member months: on months that are one row per
    program, member, payer, plan and month the results are those of the default (which makes the
    months distinct first); a repeated month is what the default guards against."""
    lines, pm = _cost_case()
    key = lambda r: (r["member_id"], r["month"])  # noqa: E731
    rkey = lambda r: (str(r["program_id"]), r["disposition"], r["service_year"], r["payer"])  # noqa: E731
    for scope in (None, {"prog": MEDICARE_PARTS_A_B}):
        assert (rows(member_month_cost(lines, pm, scope, unique_months=True), key=key)
                == rows(member_month_cost(lines, pm, scope), key=key))
        assert (rows(cost_reconciliation(lines, pm, scope, unique_months=True), key=rkey)
                == rows(cost_reconciliation(lines, pm, scope), key=rkey))
    repeated = pm.union(pm, distinct=False)
    once = rows(cost_reconciliation(lines, repeated, None), key=rkey)
    assert once == rows(cost_reconciliation(lines, pm, None), key=rkey)
    twice = rows(cost_reconciliation(lines, repeated, None, unique_months=True), key=rkey)
    assert sum(r["claim_lines"] for r in twice) > sum(r["claim_lines"] for r in once)


def test_program_months_are_unique_on_the_keys_the_cost_lines_join():
    """What `unique_months=True` relies on in a run: overlapping spans in one plan, two groups of
    one plan and a repeated span still give one program month per program, member, payer, plan
    and month."""
    from allpayer.core.member_months import eligibility_months
    from allpayer.core.programs import program_months as tag_programs
    from allpayer.terms import load_programs, programs_dir

    programs = load_programs([programs_dir() / "vermont" / "2024"])
    schema = {"person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string",
              "plan": "string", "group_id": "string", "gender": "string", "birth_date": "date",
              "death_date": "date", "enrollment_start_date": "date", "enrollment_end_date": "date",
              "aid_category": "string", "medicare_status_code": "string", "dual_status_code": "string",
              "data_sharing_opt_out": "boolean"}
    spans = [
        ("P1", "M1", "medicaid", "vmng", None, D(2024, 1, 1), D(2024, 6, 30)),
        ("P1", "M1", "medicaid", "vmng", None, D(2024, 3, 1), D(2024, 12, 31)),  # overlaps the first
        ("P2", "M2", "mvp", "aso", "SOV", D(2024, 1, 1), D(2024, 12, 31)),
        ("P2", "M2", "mvp", "aso", "ACME", D(2024, 1, 1), D(2024, 12, 31)),  # same plan, another group
        ("P3", "M3", "medicare", "medicare_ffs", None, D(2024, 1, 1), D(2024, 12, 31)),
        ("P3", "M3", "medicare", "medicare_ffs", None, D(2024, 1, 1), D(2024, 12, 31)),  # repeated
    ]
    elig = table([
        dict(person_id=p, member_id=m, payer=payer, payer_type=payer if payer != "mvp" else "self_funded", plan=plan,
             group_id=g, gender="female", birth_date=D(1950, 5, 5), enrollment_start_date=a, enrollment_end_date=b,
             aid_category="adult", data_sharing_opt_out=False)
        for p, m, payer, plan, g, a, b in spans
    ], schema)
    out = rows(tag_programs(eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)), programs))
    keys = [(r["program_id"], r["member_id"], r["payer"], r["plan"], r["month"]) for r in out]
    assert keys and len(keys) == len(set(keys))
    assert {r["member_id"] for r in out} >= {"M1", "M3"}


def test_a_plan_switch_month_is_one_member_month_with_the_claims_of_both_plans_once():
    """A member who moves from MVP's silver QHP to its QHP on 16 March has one March member month in
    the (two-plan) program; its claims under either plan count in it once, a claim under a plan
    the program does not select stays outside, and so do the events and leakage lines."""
    from allpayer.core.member_months import eligibility_months
    from allpayer.core.programs import program_months as tag_programs
    from allpayer.terms import load_programs, programs_dir

    qhp = next(p for p in load_programs([programs_dir() / "vermont" / "2024"]) if p.program_id == "vt-2024-mvp-qhp")
    qhp = qhp.model_copy(update={"population": qhp.population.model_copy(update={"plans": ["qhp", "qhp_silver"]})})
    schema = {"person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string",
              "plan": "string", "group_id": "string", "gender": "string", "birth_date": "date",
              "death_date": "date", "enrollment_start_date": "date", "enrollment_end_date": "date",
              "aid_category": "string", "medicare_status_code": "string", "dual_status_code": "string",
              "data_sharing_opt_out": "boolean"}
    elig = table([dict(person_id="P1", member_id="M1", payer="mvp", payer_type="commercial", plan=plan,
                       gender="female", birth_date=D(1980, 5, 5), enrollment_start_date=a, enrollment_end_date=b)
                  for plan, a, b in (("qhp_silver", D(2024, 1, 1), D(2024, 3, 15)),
                                     ("qhp", D(2024, 3, 16), D(2024, 12, 31)),
                                     ("aso", D(2024, 3, 1), D(2024, 3, 31)))], schema)
    pm = tag_programs(eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)), [qhp])
    med = medical([
        dict(claim_id="S1", payer="mvp", plan="qhp_silver", claim_start_date=D(2024, 3, 5), paid_amount="100.00"),
        dict(claim_id="Q1", payer="mvp", plan="qhp", claim_start_date=D(2024, 3, 20), paid_amount="200.00"),
        dict(claim_id="A1", payer="mvp", plan="aso", claim_start_date=D(2024, 3, 21), paid_amount="400.00"),
        dict(claim_id="ED1", payer="mvp", plan="qhp_silver", hcpcs_code="99284", place_of_service_code="23",
             claim_start_date=D(2024, 3, 6), paid_amount="50.00"),
    ])
    lines = cost_lines(medical_claim_lines(med))
    for unique in (False, True):
        march = [r for r in rows(member_month_cost(lines, pm, unique_months=unique)) if r["month"] == D(2024, 3, 1)]
        assert [(r["plan"], r["claim_lines"], r["ffs_paid_cents"]) for r in march] == [("qhp", 3, 35000)]
        rec = {r["disposition"]: r["ffs_paid_cents"] for r in rows(cost_reconciliation(lines, pm, unique_months=unique))}
        assert rec == {"in_program": 35000, "outside_program_months": 40000}
    events = rows(utilization_events(medical_claim_lines(med), pm))
    assert [(e["event"], e["month"]) for e in events] == [("ed_visit", D(2024, 3, 1))]


def _person_elig(spans):
    """Eligibility of person P1 at MVP: (member_id, plan, group_id, start, end) spans."""
    schema = {"person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string",
              "plan": "string", "group_id": "string", "gender": "string", "birth_date": "date",
              "death_date": "date", "enrollment_start_date": "date", "enrollment_end_date": "date",
              "aid_category": "string", "medicare_status_code": "string", "dual_status_code": "string",
              "data_sharing_opt_out": "boolean"}
    return table([dict(person_id="P1", member_id=m, payer="mvp", payer_type="commercial", plan=plan, group_id=g,
                       gender="female", birth_date=D(1980, 5, 5), enrollment_start_date=a, enrollment_end_date=b)
                  for m, plan, g, a, b in spans], schema)


def _person_claims(plan):
    """P1's March claims under its first member id (M1) and its reissued one (M2)."""
    return medical([
        dict(claim_id="C1", member_id="M1", payer="mvp", plan=plan, claim_start_date=D(2024, 3, 5), paid_amount="100.00"),
        dict(claim_id="C2", member_id="M2", payer="mvp", plan=plan, claim_start_date=D(2024, 3, 20), paid_amount="200.00"),
        dict(claim_id="ED2", member_id="M2", payer="mvp", plan=plan, hcpcs_code="99284", place_of_service_code="23",
             claim_start_date=D(2024, 3, 22), paid_amount="50.00"),
    ])


def test_a_reissued_member_id_month_is_one_member_month_with_the_claims_of_both_ids_once():
    """MVP reissues P1's card on 16 March (M1, then M2): one March member month (carrying M1, the id
    of its first day) in which the claims filed under either id count once ($100 + $200 + $50), as
    do the ED visit (under the month's member id) and the leakage lines."""
    from allpayer.core.member_months import eligibility_months
    from allpayer.core.programs import program_months as tag_programs
    from allpayer.terms import load_programs, programs_dir

    qhp = next(p for p in load_programs([programs_dir() / "vermont" / "2024"]) if p.program_id == "vt-2024-mvp-qhp")
    elig = _person_elig([("M1", "qhp", None, D(2024, 1, 1), D(2024, 3, 15)),
                         ("M2", "qhp", None, D(2024, 3, 16), D(2024, 12, 31))])
    pm = tag_programs(eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)), [qhp])
    med = _person_claims("qhp")
    lines = cost_lines(medical_claim_lines(med))
    for unique in (False, True):
        mmc = rows(member_month_cost(lines, pm, unique_months=unique))
        assert len(mmc) == 12
        march = [r for r in mmc if r["month"] == D(2024, 3, 1)]
        assert [(r["member_id"], r["claim_lines"], r["ffs_paid_cents"]) for r in march] == [("M1", 3, 35000)]
        rec = {r["disposition"]: r["ffs_paid_cents"] for r in rows(cost_reconciliation(lines, pm, unique_months=unique))}
        assert rec == {"in_program": 35000}
    events = rows(utilization_events(medical_claim_lines(med), pm))
    assert [(e["event"], e["member_id"], e["person_id"], e["month"]) for e in events] == [
        ("ed_visit", "M1", "P1", D(2024, 3, 1))]
    leak = rows(leakage_lines(medical_claim_lines(med), table([], ROSTER), pm))
    assert sorted((r["claim_id"], r["program_id"]) for r in leak) == [
        ("C1", "vt-2024-mvp-qhp"), ("C2", "vt-2024-mvp-qhp"), ("ED2", "vt-2024-mvp-qhp")]


def test_a_mid_month_employer_group_change_counts_the_months_claims_in_one_program_once():
    """Two employer programs on MVP's `aso` plan, told apart by group: P1 moves from UVMMC to the
    State (SOV) on 16 March under a new member id. March is UVMMC's member month (its group covered
    the month's first day) and every March claim counts there once, whichever id it was filed under;
    the State's program has no March month and none of its claims."""
    from allpayer.core.member_months import eligibility_months
    from allpayer.core.programs import program_months as tag_programs
    from allpayer.terms import load_programs, programs_dir

    programs = [p for p in load_programs([programs_dir() / "vermont" / "2024"]) if p.payer == "mvp"]
    elig = _person_elig([("M1", "aso", "UVMMC", D(2024, 1, 1), D(2024, 3, 15)),
                         ("M2", "aso", "SOV", D(2024, 3, 16), D(2024, 12, 31))])
    eg = table([dict(group_id=g, aco_opt_in=True, effective_start_date=D(2020, 1, 1)) for g in ("SOV", "UVMMC")],
               {"group_id": "string", "aco_opt_in": "boolean", "effective_start_date": "date",
                "effective_end_date": "date"})
    pm = tag_programs(eligibility_months(elig, D(2024, 1, 1), D(2024, 12, 31)), programs, eg)
    lines = cost_lines(medical_claim_lines(_person_claims("aso")))
    for unique in (False, True):
        march = [r for r in rows(member_month_cost(lines, pm, unique_months=unique)) if r["month"] == D(2024, 3, 1)]
        assert [(r["program_id"], r["claim_lines"], r["ffs_paid_cents"]) for r in march] == [
            ("vt-2024-uvmmc-employees", 3, 35000)]
        rec = {(r["program_id"], r["disposition"]): r["ffs_paid_cents"]
               for r in rows(cost_reconciliation(lines, pm, unique_months=unique))}
        assert rec == {("vt-2024-uvmmc-employees", "in_program"): 35000}


def test_scope_by_program_with_defaults_and_categories_outside_the_list():
    lines, pm = _cost_case()
    pm2 = pm.union(pm.mutate(program_id=ibis.literal("other")), distinct=False)
    # one line per category, plus a NULL and an unknown category, for two programs
    odd = lines.filter(lines.claim_id == "RX1")
    odd = odd.mutate(tcoc_category=ibis.null("string")).union(odd.mutate(tcoc_category=ibis.literal("dental")))
    pl = rows(tcoc.program_lines(lines.union(odd, distinct=False), pm2, {"prog": MEDICARE_PARTS_A_B}))
    got = {(r["program_id"], r["claim_id"], r["tcoc_category"]): r["in_scope"] for r in pl if r["program_id"]}
    # "prog" is Medicare (no pharmacy); "other" is not in the mapping: all services
    assert got["prog", "RX1", "pharmacy"] is False and got["other", "RX1", "pharmacy"] is True
    assert got["prog", "IP1", "inpatient"] is True and got["other", "IP1", "inpatient"] is True
    assert got["prog", "RX1", "dental"] is False and got["other", "RX1", "dental"] is False
    assert got["prog", "RX1", None] is None and got["other", "RX1", None] is None
    # a single scope for every program
    one = rows(tcoc.program_lines(lines, pm2, MEDICARE_PARTS_A_B))
    assert {r["in_scope"] for r in one if r["tcoc_category"] == "pharmacy" and r["program_id"]} == {False}
    assert {r["in_scope"] for r in one if r["tcoc_category"] == "ed" and r["program_id"]} == {True}
    assert {r["in_scope"] for r in one if r["program_id"] is None} == {False}


def test_member_month_cost_computes_only_the_amounts_asked_for():
    lines, pm = _cost_case()
    key = lambda r: (r["member_id"], r["month"])  # noqa: E731
    full = rows(member_month_cost(lines, pm), key=key)
    some = member_month_cost(lines, pm, amounts=("ffs_paid_cents", "ed_allowed_cents"))
    assert "allowed_cents" not in some.columns and "claim_lines" not in some.columns
    assert [(r["ffs_paid_cents"], r["ed_allowed_cents"]) for r in rows(some, key=key)] == [
        (r["ffs_paid_cents"], r["ed_allowed_cents"]) for r in full]
    with pytest.raises(ValueError, match="unknown member-month amounts"):
        member_month_cost(lines, pm, amounts=("dental_cents",))


def test_payment_exclusions_come_off_the_ffs_basis_only():
    lines, pm = _cost_case()
    x = table([{"claim_id": "IP1", "claim_line_number": 1, "excluded_cents": 12345}],
              {"claim_id": "string", "claim_line_number": "int64", "excluded_cents": "int64"})
    med = medical([dict(claim_id="IP1", claim_type="institutional", bill_type_code="111", claim_start_date=D(2024, 1, 3),
                        paid_amount="1000.00", allowed_amount="1200.00")])
    got = rows(cost_lines(medical_claim_lines(med), payment_exclusions=x))[0]
    assert got["excluded_payment_cents"] == 12345
    assert got["ffs_paid_cents"] == 100000 - 12345
    assert got["paid_cents"] == 100000 and got["allowed_cents"] == 120000


def test_unknown_scope_category_is_refused():
    with pytest.raises(ValueError, match="unknown TCOC categories"):
        TcocScope(categories=("inpatient", "dental"))


# ------------------------------------------------------------------------------------------------
# truncation

MY_SCHEMA = {"program_id": "string", "member_id": "string", "person_id": "string", "year": "int32",
             "truncation_group": "string", "eligible_months": "int64", "ffs_paid_cents": "int64",
             "allowed_cents": "int64", "paid_cents": "int64"}


def member_years(records):
    base = dict(program_id="prog", year=2024, truncation_group="all", allowed_cents=0, paid_cents=0)
    recs = [dict(base, person_id="P" + r["member_id"][1:], **r) for r in records]
    return table(recs, MY_SCHEMA)


def test_dollar_threshold_caps_annualized_cost_and_scales_back():
    my = member_years([
        # 6 months, $60,000: annualized $120,000 > $100,000 -> capped at 100,000 x 6/12 = $50,000
        dict(member_id="MA", eligible_months=6, ffs_paid_cents=6_000_000),
        # 12 months, $90,000: under the threshold
        dict(member_id="MB", eligible_months=12, ffs_paid_cents=9_000_000),
        # 5 months, $50,000.01: annualized 120,000.024 -> 120,000.02; cap 100,000 x 5/12 = 41,666.666... -> 41,666.67
        dict(member_id="MC", eligible_months=5, ffs_paid_cents=5_000_001),
        # exactly at the threshold (annualized = 100,000.00): not above it, not truncated
        dict(member_id="MD", eligible_months=3, ffs_paid_cents=2_500_000),
    ])
    tr = truncation(my, thresholds=10_000_000)
    got = {r["member_id"]: r for r in rows(tr.member_years)}
    assert got["MA"]["annualized_cents"] == 12_000_000
    assert (got["MA"]["truncated_cost_cents"], got["MA"]["truncated_amount_cents"]) == (5_000_000, 1_000_000)
    assert got["MB"]["exceeds_threshold"] is False and got["MB"]["truncated_cost_cents"] == 9_000_000
    assert got["MC"]["annualized_cents"] == 12_000_002
    assert got["MC"]["truncated_cost_cents"] == 4_166_667 and got["MC"]["truncated_amount_cents"] == 833_334
    assert got["MD"]["exceeds_threshold"] is False and got["MD"]["truncated_amount_cents"] == 0
    (s,) = rows(tr.summary)
    assert s["truncated_members"] == 2 and s["threshold_rule"] == "dollar"
    assert s["truncated_amount_cents"] == 1_000_000 + 833_334
    assert s["cost_cents"] - s["truncated_amount_cents"] == s["truncated_cost_cents"]


def _ten_members():
    # annualized costs $1,000 .. $10,000 (member M1 .. M10, 12 months each)
    return member_years([dict(member_id=f"M{i}", eligible_months=12, ffs_paid_cents=i * 100_000) for i in range(1, 11)])


@pytest.mark.parametrize(
    "percentile,rank,threshold",
    [("0.9", 9, 900_000), ("0.95", 10, 1_000_000), ("0.91", 10, 1_000_000), ("0.5", 5, 500_000), ("0.01", 1, 100_000)],
)
def test_percentile_threshold_is_the_nearest_rank_value(percentile, rank, threshold):
    (th,) = rows(truncation(_ten_members(), percentile=percentile).thresholds)
    assert (th["percentile_rank"], th["percentile_threshold_cents"], th["threshold_cents"]) == (rank, threshold, threshold)
    assert th["members"] == 10 and th["threshold_rule"] == "percentile"


def test_percentile_and_dollar_threshold_combine_by_max_or_min():
    my = _ten_members()
    (mx,) = rows(truncation(my, percentile="0.9", thresholds=950_000, combine="max").thresholds)
    assert (mx["threshold_cents"], mx["threshold_rule"]) == (950_000, "dollar")
    (mn,) = rows(truncation(my, percentile="0.9", thresholds=950_000, combine="min").thresholds)
    assert (mn["threshold_cents"], mn["threshold_rule"]) == (900_000, "percentile")
    tr = rows(truncation(my, percentile="0.9").member_years, key=lambda r: r["member_id"])
    assert sum(r["truncated_amount_cents"] for r in tr) == 100_000  # only M10 is above $9,000


def test_thresholds_by_year_and_enrollment_type_with_an_all_row():
    my = member_years([
        dict(member_id="M1", truncation_group="esrd", eligible_months=12, ffs_paid_cents=20_000_000),
        dict(member_id="M2", truncation_group="aged_nondual", eligible_months=12, ffs_paid_cents=20_000_000),
    ])
    th = threshold_table({(2024, "esrd"): "150000.00", (2024, "all"): "100000.00"})
    got = {r["member_id"]: r for r in rows(truncation(my, thresholds=th).member_years)}
    assert got["M1"]["threshold_cents"] == 15_000_000 and got["M1"]["truncated_cost_cents"] == 15_000_000
    assert got["M2"]["threshold_cents"] == 10_000_000 and got["M2"]["truncated_cost_cents"] == 10_000_000


def test_member_year_cost_splits_by_enrollment_type():
    pm = table(
        [dict(program_id="mc", member_id="M1", person_id="P1", payer="mcd", plan="vmng", month=D(2024, m, 1),
              enrollment_type="aged_nondual" if m <= 4 else "esrd") for m in range(1, 13)],
        PROGRAM_MONTHS,
    )
    med = medical([dict(claim_id="C1", claim_start_date=D(2024, 2, 1), paid_amount="100.00"),
                   dict(claim_id="C2", claim_start_date=D(2024, 6, 1), paid_amount="50.00")])
    my = {r["truncation_group"]: r for r in rows(member_year_cost(member_month_cost(cost_lines(medical_claim_lines(med)), pm)))}
    assert (my["aged_nondual"]["eligible_months"], my["aged_nondual"]["ffs_paid_cents"]) == (4, 10000)
    assert (my["esrd"]["eligible_months"], my["esrd"]["ffs_paid_cents"]) == (8, 5000)


def test_truncation_needs_a_threshold():
    with pytest.raises(RunError, match="threshold"):
        truncation(_ten_members())


# ------------------------------------------------------------------------------------------------
# completion factors


def _triangle_claims():
    """Incurred Jan/Feb/Mar 2024 (payer mcd), paid in later months:

    incurred \\ lag    0      1     2
    Jan              100    50    10
    Feb              200   100
    Mar              300
    """
    spec = [((1, 1), 0, "100.00"), ((1, 2), 1, "50.00"), ((1, 3), 2, "10.00"), ((2, 2), 0, "200.00"),
            ((2, 3), 1, "100.00"), ((3, 3), 0, "300.00")]
    recs = []
    for i, ((inc, paid), _lag, amount) in enumerate(spec):
        recs.append(dict(claim_id=f"C{i}", claim_start_date=D(2024, inc, 5), paid_date=D(2024, paid, 25),
                         paid_amount=amount))
    # paid after the valuation date: ignored
    recs.append(dict(claim_id="LATE", claim_start_date=D(2024, 3, 5), paid_date=D(2024, 4, 2), paid_amount="999.00"))
    return medical(recs)


def test_chain_ladder_factors_and_ibnr_by_incurred_month():
    comp = completion(claim_payment_rows(_triangle_claims()), D(2024, 3, 31), max_lag=2, history_months=3)
    tri = {(r["incurred_month"].month, r["lag"]): r for r in rows(comp.triangle)}
    assert tri[1, 2]["cumulative_cents"] == 16000 and tri[2, 1]["cumulative_cents"] == 30000
    assert tri[2, 2]["observed"] is False and tri[3, 0]["observed"] is True
    f = {r["lag"]: r for r in rows(comp.factors)}
    # lag 0 -> 1 over Jan and Feb: (150 + 300) / (100 + 200) = 1.5
    assert (f[0]["numerator_cents"], f[0]["denominator_cents"], f[0]["incurred_months"]) == (45000, 30000, 2)
    assert f[0]["age_to_age_factor"] == Decimal("1.5")
    # lag 1 -> 2 over Jan only: 160 / 150
    assert f[1]["age_to_age_factor"] == Decimal("1.0666666667")
    assert f[2]["factor_rule"] == "tail" and f[2]["cumulative_development_factor"] == Decimal("1")
    # 1.5 x 1.0666666667 = 1.60000000005 -> 1.6000000001 (half-up at 10 decimals)
    assert f[0]["cumulative_development_factor"] == Decimal("1.6000000001")
    assert f[0]["completion_factor"] == Decimal("0.6250000000")  # 1 / 1.6000000001 = 0.62499999996...
    m = {r["incurred_month"].month: r for r in rows(comp.by_month)}
    assert (m[3]["paid_to_date_cents"], m[3]["ibnr_cents"], m[3]["estimated_incurred_cents"]) == (30000, 18000, 48000)
    assert (m[2]["latest_lag"], m[2]["ibnr_cents"]) == (1, 2000)  # 300.00 x 0.0666666667 = 20.00
    assert (m[1]["latest_lag"], m[1]["ibnr_cents"]) == (2, 0)


def test_completion_reads_only_the_window_of_the_claim_rows():
    # rows served before the incurred months (December 2023) or after the paid-through date leave
    # the factors as they are: with the window given they are left out first, the same tables
    claims = _triangle_claims().union(medical([
        dict(claim_id="OLD", claim_start_date=D(2023, 12, 5), paid_date=D(2024, 1, 25), paid_amount="70.00"),
        dict(claim_id="NEXT", claim_start_date=D(2024, 4, 1), paid_date=D(2024, 3, 30), paid_amount="40.00"),
    ]))
    assert completion_window(D(2024, 3, 31), history_months=3) == (D(2024, 1, 1), D(2024, 3, 31))
    full = completion(claim_payment_rows(claims), D(2024, 3, 31), max_lag=2, history_months=3)
    rows_in = claim_payment_rows(claims, incurred_between=completion_window(D(2024, 3, 31), history_months=3))
    assert {r["incurred_month"] for r in rows(rows_in)} == {D(2024, 1, 1), D(2024, 2, 1), D(2024, 3, 1)}
    windowed = completion(rows_in, D(2024, 3, 31), max_lag=2, history_months=3)
    for name in ("triangle", "factors", "by_month"):
        assert rows(getattr(windowed, name), key=str) == rows(getattr(full, name), key=str), name


def test_apply_completion_keeps_ibnr_next_to_paid():
    comp = completion(claim_payment_rows(_triangle_claims()), D(2024, 3, 31), max_lag=2, history_months=3)
    costs = table(
        [dict(program_id="prog", payer="mcd", month=D(y, m, 1), ffs_paid_cents=c)
         for y, m, c in ((2023, 12, 5000), (2024, 2, 10001), (2024, 3, 1000), (2024, 4, 700))],
        {"program_id": "string", "payer": "string", "month": "date", "ffs_paid_cents": "int64"},
    )
    out = {r["month"]: r for r in rows(apply_completion(costs, comp))}
    feb, mar = out[D(2024, 2, 1)], out[D(2024, 3, 1)]
    assert feb["ffs_paid_cents"] == 10001 and feb["ibnr_cents"] == 667  # 10001 x 0.0666666667 = 666.73
    assert mar["ibnr_cents"] == 600 and mar["estimated_incurred_cents"] == 1600
    assert mar["completion_rule"] == "estimated"
    assert out[D(2023, 12, 1)]["completion_rule"] == "complete" and out[D(2023, 12, 1)]["ibnr_cents"] == 0
    assert out[D(2024, 4, 1)]["completion_rule"] == "after_valuation"


def test_completion_needs_a_month_end_paid_through():
    with pytest.raises(RunError, match="last day of a month.*use 2024-02-29"):
        completion(claim_payment_rows(_triangle_claims()), D(2024, 3, 15))


def test_factor_is_one_when_a_lag_has_no_data():
    med = medical([dict(claim_id="C1", claim_start_date=D(2024, 3, 5), paid_date=D(2024, 3, 20), paid_amount="10.00")])
    comp = completion(claim_payment_rows(med), D(2024, 3, 31), max_lag=2, history_months=2)
    f = {r["lag"]: r for r in rows(comp.factors)}
    assert f[0]["factor_rule"] == "no_data" and f[0]["age_to_age_factor"] == Decimal("1")
    assert rows(comp.by_month, key=lambda r: r["incurred_month"])[-1]["ibnr_cents"] == 0


# ------------------------------------------------------------------------------------------------
# utilization


def _ip(claim_id, person, admit, discharge, disposition="01", admit_type="1", **kw):
    member = "M" + person[1:]
    return dict(claim_id=claim_id, claim_type="institutional", bill_type_code="0111", revenue_center_code="0120",
                place_of_service_code=None, hcpcs_code=None, person_id=person, member_id=member,
                claim_start_date=admit, claim_end_date=discharge, admission_date=admit, discharge_date=discharge,
                discharge_disposition_code=disposition, admit_type_code=admit_type, paid_amount="1000.00", **kw)


def _utilization_case():
    med = medical([
        # P1: a stay, a readmission 15 days after discharge, then an admission 50 days later
        _ip("A1", "P1", D(2024, 1, 5), D(2024, 1, 10)),
        _ip("A2", "P1", D(2024, 1, 25), D(2024, 1, 30)),
        _ip("A3", "P1", D(2024, 3, 20), D(2024, 3, 22)),
        # P2: transferred out (02) and admitted the same day elsewhere: not a readmission
        _ip("B1", "P2", D(2024, 2, 1), D(2024, 2, 3), disposition="02"),
        _ip("B2", "P2", D(2024, 2, 3), D(2024, 2, 9)),
        # P3: an elective (planned) admission 10 days after a discharge: not a readmission;
        # its interim bill (same admission date) is the same stay
        _ip("C1", "P3", D(2024, 1, 2), D(2024, 1, 4)),
        _ip("C2", "P3", D(2024, 1, 14), D(2024, 1, 31), admit_type="3"),
        _ip("C3", "P3", D(2024, 1, 14), D(2024, 2, 6), admit_type="3"),
        # a denied inpatient claim is no stay
        _ip("X1", "P4", D(2024, 1, 8), D(2024, 1, 9), claim_status="denied"),
        # ED: facility and professional claims the same day are one visit; another day is another
        dict(claim_id="E1", claim_type="institutional", bill_type_code="131", revenue_center_code="0450",
             place_of_service_code=None, hcpcs_code=None, claim_start_date=D(2024, 2, 14), paid_amount="300.00"),
        dict(claim_id="E2", hcpcs_code="99284", place_of_service_code="23", claim_start_date=D(2024, 2, 14),
             paid_amount="90.00"),
        dict(claim_id="E3", hcpcs_code="99283", place_of_service_code="23", claim_start_date=D(2024, 3, 1),
             paid_amount="80.00"),
        # a fully reversed ED claim is no visit
        dict(claim_id="E4", hcpcs_code="99283", place_of_service_code="23", claim_start_date=D(2024, 3, 9),
             paid_amount="80.00"),
        dict(claim_id="E4", adjustment_sequence=1, hcpcs_code="99283", place_of_service_code="23",
             claim_start_date=D(2024, 3, 9), paid_amount="-80.00"),
    ])
    pm = program_months([(("prog"), f"M{i}", months(2024, 1, 3), {}) for i in (1, 2, 3, 4)])
    return medical_claim_lines(med), pm


def test_admissions_readmissions_and_ed_visits():
    lines, pm = _utilization_case()
    ev = rows(utilization_events(lines, pm), key=lambda r: (r["event"], r["person_id"], r["event_date"]))
    adm = [(r["person_id"], r["event_date"]) for r in ev if r["event"] == "admission"]
    assert adm == [("P1", D(2024, 1, 5)), ("P1", D(2024, 1, 25)), ("P1", D(2024, 3, 20)), ("P2", D(2024, 2, 1)),
                   ("P2", D(2024, 2, 3)), ("P3", D(2024, 1, 2)), ("P3", D(2024, 1, 14))]
    interim = [r for r in ev if r["event"] == "admission" and r["event_date"] == D(2024, 1, 14)][0]
    assert interim["claims"] == 2 and interim["claim_id"] == "C2"
    readm = [r for r in ev if r["event"] == "readmission"]
    assert [(r["person_id"], r["event_date"], r["prior_discharge_date"], r["days_since_discharge"]) for r in readm] == [
        ("P1", D(2024, 1, 25), D(2024, 1, 10), 15)
    ]
    ed = [(r["event_date"], r["claims"]) for r in ev if r["event"] == "ed_visit"]
    assert ed == [(D(2024, 2, 14), 2), (D(2024, 3, 1), 1)]
    # the run's member months are unique on the join keys: the same events without the distinct
    key = lambda r: (r["event"], r["person_id"], r["event_date"], r["claims"])  # noqa: E731
    assert rows(utilization_events(lines, pm, unique_months=True), key=key) == sorted(ev, key=key)
    # the program months' span given: the ED lines outside it are left out first, the same events
    # (the stays still read every line: an earlier discharge may make a readmission)
    within = utilization_events(lines, pm, months_between=(D(2024, 1, 1), D(2024, 3, 31)))
    assert rows(within, key=key) == sorted(ev, key=key)
    # whole months: a span given as mid-February keeps the visit of 14 February, not March's
    feb = rows(utilization_events(lines, pm, months_between=(D(2024, 2, 20), D(2024, 2, 1))), key=key)
    assert [(r["event_date"], r["claims"]) for r in feb if r["event"] == "ed_visit"] == [(D(2024, 2, 14), 2)]
    assert [r for r in feb if r["event"] != "ed_visit"] == [r for r in sorted(ev, key=key) if r["event"] != "ed_visit"]


def test_utilization_rates_per_thousand_member_years():
    lines, pm = _utilization_case()
    ev = ibis.memtable(CON.to_pyarrow(utilization_events(lines, pm)))
    (year,) = rows(utilization_rates(ev, pm, period="year"))
    assert year["member_months"] == 12
    assert (year["admissions"], year["readmissions"], year["ed_visits"]) == (7, 1, 2)
    # 7 admissions x 12,000 / 12 member months = 7,000 per 1,000 member-years
    assert year["admissions_per_1000"] == Decimal("7000")
    assert year["readmissions_per_1000"] == Decimal("1000")
    by_month = {r["month"].month: r for r in rows(utilization_rates(ev, pm, period="month"))}
    assert by_month[1]["admissions"] == 4 and by_month[1]["member_months"] == 4
    assert by_month[2]["ed_visits"] == 1 and by_month[2]["ed_visits_per_1000"] == Decimal("3000")
    ytd = {r["month"].month: r for r in rows(utilization_rates(ev, pm, period="ytd"))}
    assert (ytd[3]["admissions"], ytd[3]["member_months"], ytd[2]["admissions"]) == (7, 12, 6)
    # 6 admissions x 12,000 / 8 member months
    assert ytd[2]["admissions_per_1000"] == Decimal("9000")


# ------------------------------------------------------------------------------------------------
# high-cost claimants, leakage, aggregates


def test_high_cost_claimants_rank_and_share():
    my = member_years([
        dict(member_id="M1", eligible_months=12, ffs_paid_cents=30_000_000),
        dict(member_id="M2", eligible_months=6, ffs_paid_cents=10_000_000),
        dict(member_id="M3", eligible_months=12, ffs_paid_cents=9_999_999),
        dict(member_id="M4", eligible_months=12, ffs_paid_cents=1),
    ])
    got = rows(high_cost_claimants(my, 10_000_000))
    assert [(r["member_id"], r["rank"]) for r in got] == [("M1", 1), ("M2", 2)]
    assert got[0]["program_cost_cents"] == 50_000_000
    assert got[0]["share_of_program_cost"] == Decimal("0.6")


ROSTER = {"npi": "string", "tin": "string", "payer": "string", "participation": "string",
          "effective_start_date": "date", "effective_end_date": "date"}


def test_leakage_by_billing_npi_facility_npi_or_tin_for_the_payer_and_date():
    med = medical([
        dict(claim_id="IN_NPI", billing_npi="1111111111", claim_start_date=D(2024, 2, 1), allowed_amount="100.00",
             paid_amount="90.00"),
        dict(claim_id="IN_FAC", claim_type="institutional", bill_type_code="131", revenue_center_code="0300",
             place_of_service_code=None, billing_npi="9999999999", facility_npi="1111111111",
             claim_start_date=D(2024, 2, 2), paid_amount="200.00"),
        dict(claim_id="IN_TIN", billing_npi="8888888888", billing_tin="123456789", claim_start_date=D(2024, 2, 3),
             paid_amount="40.00"),
        dict(claim_id="OUT", billing_npi="7777777777", billing_tin="999999999", claim_start_date=D(2024, 2, 4),
             paid_amount="60.00"),
        # participating only with another payer
        dict(claim_id="OTHER_PAYER", billing_npi="2222222222", claim_start_date=D(2024, 2, 5), paid_amount="30.00"),
        # participation ended before the service date
        dict(claim_id="ENDED", billing_npi="3333333333", claim_start_date=D(2024, 3, 5), paid_amount="25.00"),
        # a non-participating roster row does not count
        dict(claim_id="NONPAR", billing_npi="4444444444", claim_start_date=D(2024, 2, 6), paid_amount="15.00"),
    ])
    roster = table([
        dict(npi="1111111111", tin="111111111", payer="mcd", participation="participant",
             effective_start_date=D(2023, 1, 1)),
        dict(npi="5555555555", tin="123456789", payer="mcd", participation="preferred",
             effective_start_date=D(2024, 1, 1), effective_end_date=D(2024, 12, 31)),
        dict(npi="2222222222", tin="222222222", payer="bcbs", participation="participant",
             effective_start_date=D(2023, 1, 1)),
        dict(npi="3333333333", tin="333333333", payer="mcd", participation="participant",
             effective_start_date=D(2023, 1, 1), effective_end_date=D(2024, 2, 29)),
        dict(npi="4444444444", tin="444444444", payer="mcd", participation="non_participating",
             effective_start_date=D(2023, 1, 1)),
    ], ROSTER)
    pm = program_months([("prog", "M1", months(2024, 1, 12), {})])
    lines = ibis.memtable(CON.to_pyarrow(leakage_lines(medical_claim_lines(med), roster, pm)))
    ll = {r["claim_id"]: r for r in rows(lines)}
    assert ll["IN_NPI"]["matched_by"] == "billing_npi"
    assert ll["IN_FAC"]["matched_by"] == "facility_npi"
    assert ll["IN_TIN"]["matched_by"] == "billing_tin"
    assert {k for k, r in ll.items() if r["out_of_network"]} == {"OUT", "OTHER_PAYER", "ENDED", "NONPAR"}
    summary = {(r["year"], r["tcoc_category"]): r for r in rows(leakage(lines))}
    prof = summary[2024, "professional"]
    assert prof["allowed_cents"] == 10000 + 4000 + 6000 + 3000 + 2500 + 1500
    assert prof["out_of_network_allowed_cents"] == 6000 + 3000 + 2500 + 1500
    assert prof["leakage_share"] == Decimal("0.4814814815")  # 130.00 / 270.00 = 0.481481481481...
    assert summary[2024, "outpatient"]["out_of_network_allowed_cents"] == 0


def test_participation_periods_merge_overlaps_of_one_identifier():
    """A TIN listed with several NPIs, overlapping and nested periods, an open end, a period that
    only touches the next, and rows that do not participate."""
    roster = table([
        dict(npi="1", tin="T", payer="mcd", participation="participant", effective_start_date=D(2024, 1, 1),
             effective_end_date=D(2024, 6, 30)),
        dict(npi="2", tin="T", payer="mcd", participation="preferred", effective_start_date=D(2024, 3, 1),
             effective_end_date=D(2024, 9, 30)),
        dict(npi="3", tin="T", payer="mcd", participation="participant", effective_start_date=D(2024, 4, 1),
             effective_end_date=D(2024, 5, 31)),
        dict(npi="1", tin="T", payer="mcd", participation="participant", effective_start_date=D(2024, 10, 1)),
        dict(npi="4", tin="T", payer="bcbs", participation="participant", effective_start_date=D(2024, 2, 1),
             effective_end_date=D(2024, 2, 29)),
        dict(npi="5", tin="U", payer="mcd", participation="non_participating", effective_start_date=D(2024, 1, 1)),
    ], ROSTER)
    got = sorted((r["payer"], r["kind"], r["value"], r["start"], r["end"])
                 for r in rows(tcoc.participation_periods(roster)))
    open_end = D(9999, 12, 31)
    assert got == [
        ("bcbs", "npi", "4", D(2024, 2, 1), D(2024, 2, 29)),
        ("bcbs", "tin", "T", D(2024, 2, 1), D(2024, 2, 29)),
        ("mcd", "npi", "1", D(2024, 1, 1), D(2024, 6, 30)),
        ("mcd", "npi", "1", D(2024, 10, 1), open_end),
        ("mcd", "npi", "2", D(2024, 3, 1), D(2024, 9, 30)),
        ("mcd", "npi", "3", D(2024, 4, 1), D(2024, 5, 31)),
        ("mcd", "tin", "T", D(2024, 1, 1), D(2024, 9, 30)),  # three rows, one period
        ("mcd", "tin", "T", D(2024, 10, 1), open_end),  # touches the one before: no overlap, kept apart
    ]


_ROSTER_ROW = st.tuples(
    st.sampled_from(["1", "2", "3"]), st.sampled_from(["A", "B"]), st.sampled_from(["mcd", "bcbs"]),
    st.sampled_from(["participant", "preferred", "non_participating"]),
    st.integers(0, 330), st.one_of(st.none(), st.integers(0, 200)),
)
_LINE = st.tuples(
    st.one_of(st.none(), st.sampled_from(["1", "2", "3", "9"])), st.one_of(st.none(), st.sampled_from(["1", "2"])),
    st.one_of(st.none(), st.sampled_from(["A", "B", "Z"])), st.sampled_from(["mcd", "bcbs"]), st.integers(0, 365),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_ROSTER_ROW, max_size=10), st.lists(_LINE, min_size=1, max_size=12))
def test_leakage_lines_match_the_roster_row_by_row(roster_rows, line_rows):
    """Each line keeps one row, matched by the first of billing NPI, facility NPI and billing TIN
    that some participating roster row of its payer covers on its service date, whatever the
    roster's overlaps."""
    start = D(2024, 1, 1)
    roster = [
        dict(npi=npi, tin=tin, payer=payer, participation=part, effective_start_date=start + dt.timedelta(s),
             effective_end_date=None if length is None else start + dt.timedelta(s + length))
        for npi, tin, payer, part, s, length in roster_rows
    ]
    med = medical([
        dict(claim_id=f"C{i}", billing_npi=b, facility_npi=f, billing_tin=tin, payer=payer,
             claim_start_date=start + dt.timedelta(day), paid_amount="10.00")
        for i, (b, f, tin, payer, day) in enumerate(line_rows)
    ])
    pm = program_months([("prog", "M1", months(2024, 1, 12), {})])
    pm = pm.union(program_months([("prog", "M1", months(2024, 1, 12), {})]).mutate(payer=ibis.literal("bcbs")))
    got = rows(leakage_lines(medical_claim_lines(med), table(roster, ROSTER), pm))
    assert sorted(r["claim_id"] for r in got) == sorted(f"C{i}" for i in range(len(line_rows)))

    def covers(value, kind, payer, day):
        return value is not None and any(
            r["payer"] == payer and r["participation"] in ("participant", "preferred") and r[kind] == value
            and r["effective_start_date"] <= day
            and (r["effective_end_date"] is None or day <= r["effective_end_date"])
            for r in roster
        )

    for r in got:
        b, f, tin, payer, day = line_rows[int(r["claim_id"][1:])]
        day = start + dt.timedelta(day)
        expected = next((name for name, value, kind in (("billing_npi", b, "npi"), ("facility_npi", f, "npi"),
                                                        ("billing_tin", tin, "tin"))
                         if covers(value, kind, payer, day)), None)
        assert r["matched_by"] == expected and r["out_of_network"] == (expected is None)


MMC = {"program_id": "string", "member_id": "string", "person_id": "string", "group_id": "string", "month": "date",
       "year": "int32", "claim_lines": "int64", **{c: "int64" for c in (
           "allowed_cents", "paid_cents", "shadow_priced_cents", "excluded_payment_cents", "ffs_paid_cents")},
       **{f"{c}_{a}_cents": "int64" for c in ("inpatient", "outpatient", "ed", "professional", "pharmacy", "other")
          for a in ("allowed", "ffs_paid")}}


def _mmc(records):
    out = []
    for r in records:
        base = {c: 0 for c, t in MMC.items() if t == "int64"}
        base.update(program_id="prog", person_id="P" + r["member_id"][1:], year=r["month"].year)
        base.update(r)
        base.setdefault("allowed_cents", base["ffs_paid_cents"])
        base["professional_ffs_paid_cents"] = base["ffs_paid_cents"]
        out.append(base)
    return table(out, MMC)


def test_aggregates_pmpm_pmpy_by_program_and_employer():
    mmc = _mmc([
        dict(member_id="M1", group_id="G1", month=D(2024, 1, 1), ffs_paid_cents=3333),
        dict(member_id="M1", group_id="G1", month=D(2024, 2, 1), ffs_paid_cents=3333),
        dict(member_id="M2", group_id="G2", month=D(2024, 1, 1), ffs_paid_cents=3334),
    ])
    (prog,) = rows(tcoc_aggregate(mmc))
    assert (prog["level"], prog["member_months"], prog["ffs_paid_cents"]) == ("program", 3, 10000)
    assert prog["ffs_paid_pmpm"] == Decimal("33.3333333333")
    assert prog["ffs_paid_pmpy"] == Decimal("400.0000000000")
    assert (prog["ffs_paid_pmpm"] * 3).quantize(Decimal("0.01")) == Decimal("100.00")
    eg = table([dict(group_id="G1", employer_id="E1", effective_start_date=D(2020, 1, 1)),
                dict(group_id="G2", employer_id="E2", effective_start_date=D(2020, 1, 1),
                     effective_end_date=D(2023, 12, 31))],
               {"group_id": "string", "employer_id": "string", "effective_start_date": "date",
                "effective_end_date": "date"})
    emp = {r["employer_id"]: r for r in rows(tcoc_aggregate(mmc, level="employer", employer_group=eg))}
    assert emp["E1"]["ffs_paid_pmpm"] == Decimal("33.3300000000") and emp["E1"]["member_months"] == 2
    assert emp[None]["ffs_paid_cents"] == 3334  # G2's employer link ended before 2024
    assert {r["level"] for r in emp.values()} == {"employer"}
    ytd = rows(tcoc_aggregate(mmc, period="ytd"))
    assert [(r["month"].month, r["member_months"], r["ffs_paid_cents"]) for r in ytd] == [(1, 2, 6667), (2, 3, 10000)]


def test_aggregates_by_practice_need_attribution():
    mmc = _mmc([dict(member_id="M1", group_id=None, month=D(2024, 1, 1), ffs_paid_cents=100)])
    with pytest.raises(RunError, match="attribution"):
        tcoc_aggregate(mmc, level="practice")
    att = table([dict(program_id="prog", member_id="M1", month=D(2024, 1, 1), practice_id="PR1", hsa="Burlington")],
                {"program_id": "string", "member_id": "string", "month": "date", "practice_id": "string", "hsa": "string"})
    (r,) = rows(tcoc_aggregate(mmc, level="hsa", attribution=att))
    assert (r["level"], r["hsa"], r["ffs_paid_cents"]) == ("hsa", "Burlington", 100)


def test_docstring_examples_run():
    assert doctest.testmod(tcoc).failed == 0


def test_rerunning_gives_identical_tables():
    lines, pm = _cost_case()
    mmc = member_month_cost(lines, pm)
    key = lambda r: (r["program_id"], r["member_id"], r["month"])  # noqa: E731
    assert rows(mmc, key=key) == rows(member_month_cost(lines, pm), key=key)
    my = member_years([dict(member_id=f"M{i}", eligible_months=1 + i % 12, ffs_paid_cents=i * 7919) for i in range(40)])
    a = truncation(my, percentile="0.9", thresholds=100_000)
    b = truncation(my, percentile="0.9", thresholds=100_000)
    by_member = lambda r: r["member_id"]  # noqa: E731
    assert rows(a.member_years, key=by_member) == rows(b.member_years, key=by_member)
    assert rows(a.thresholds) == rows(b.thresholds)


def test_employer_of_a_member_month_when_group_links_overlap():
    """A group linked to several employers in one month counts under the link that started last
    (then the lowest employer id); every member month counts once, under its own group and month."""
    mmc = _mmc([
        dict(member_id="M1", group_id="G1", month=D(2024, 1, 1), ffs_paid_cents=100),
        dict(member_id="M1", group_id="G1", month=D(2024, 2, 1), ffs_paid_cents=200),
        dict(member_id="M2", group_id="G1", month=D(2024, 2, 1), ffs_paid_cents=400),
        dict(member_id="M3", group_id="G2", month=D(2024, 1, 1), ffs_paid_cents=800),
        dict(member_id="M4", group_id=None, month=D(2024, 1, 1), ffs_paid_cents=1600),
    ])
    eg = table([dict(group_id="G1", employer_id="E1", effective_start_date=D(2020, 1, 1)),
                dict(group_id="G1", employer_id="E9", effective_start_date=D(2024, 2, 1)),
                dict(group_id="G2", employer_id="E3", effective_start_date=D(2023, 1, 1)),
                dict(group_id="G2", employer_id="E2", effective_start_date=D(2023, 1, 1))],
               {"group_id": "string", "employer_id": "string", "effective_start_date": "date",
                "effective_end_date": "date"})
    emp = {r["employer_id"]: (r["member_months"], r["ffs_paid_cents"])
           for r in rows(tcoc_aggregate(mmc, level="employer", employer_group=eg))}
    assert emp == {"E1": (1, 100), "E9": (2, 600), "E2": (1, 800), None: (1, 1600)}
