"""Shadow claims, fixed payment performance, fixed-payment TCOC, combined result (domain.md R4).

Worked examples: OneCare's published Medicaid results (domain.md T1, T5; sources S2, S3) and the
synthetic VMNG example T7 (domain.md §4, rule from S4).
"""

from __future__ import annotations

import datetime as dt

import pytest

from allpayer.payments import fpp, shadow

from .helpers import CON, JAN, att_months, many_months, program, rows, table

DOLLAR = 100


@pytest.mark.parametrize(
    "settlement, fpp_performance, combined",
    [
        (-6_505_293, 8_245_865, 1_740_572),  # OneCare Medicaid PY2019 (S2; domain.md T1)
        (11_621_236, 43_738_036, 55_359_272),  # OneCare Medicaid PY2020 (S3; domain.md T5)
    ],
)
def test_onecare_published_identities(settlement, fpp_performance, combined):
    assert shadow.combined_result(settlement * DOLLAR, fpp_performance * DOLLAR) == combined * DOLLAR


def test_combined_results_table_adds_the_program_total_only():
    settle = table([{"program_id": "vt-2019-medicaid", "performance_year": 2019, "net_cents": -6_505_293 * DOLLAR},
                    {"program_id": "vt-2019-medicare", "performance_year": 2019, "net_cents": 11_059_786 * DOLLAR}],
                   {"program_id": "string", "performance_year": "int32", "net_cents": "int64"})
    perf = table([
        {"program_id": "vt-2019-medicaid", "hospital_id": "ALL", "performance_year": 2019,
         "performance_cents": 8_245_865 * DOLLAR},
        {"program_id": "vt-2019-medicaid", "hospital_id": "org-a", "performance_year": 2019,
         "performance_cents": 1 * DOLLAR},
    ], {"program_id": "string", "hospital_id": "string", "performance_year": "int32", "performance_cents": "int64"})
    got = rows(shadow.combined_results(settle, perf), key=lambda r: r["program_id"])
    # Medicaid: -6,505,293 + 8,245,865 = 1,740,572 (S2); Medicare has no FPP performance (S2 shows $0)
    assert [(r["program_id"], r["combined_cents"]) for r in got] == [
        ("vt-2019-medicaid", 1_740_572 * DOLLAR), ("vt-2019-medicare", 11_059_786 * DOLLAR)]


def t7_program(threshold="0.05"):
    def edit(d):
        f = d["payments"]["fpp"]
        f["pmpm_by_cell"] = {c: "150.00" for c in f["pmpm_by_cell"]}
        f["withhold"] = "0"
        f["rebase_threshold"] = threshold
        d["settlement"]["quality_modifiers"] = []
        d["settlement"]["steps"].remove("quality_modifier")

    return program(edit=edit)


def test_t7_vmng_fixed_payment_tcoc_performance_and_combined():
    """domain.md T7: 114,000 MM x $150 = $17.1M FPP; FFS outside FPP $27.0M -> A = $44.1M;
    shadow claims $16.2M -> FPP performance +$0.9M; with the ACO's $1,368,000 (3% cap, settled
    by the settlement engine) the combined result is $2.268M."""
    p = t7_program()
    am = many_months(114_000, JAN, "adult_parent")
    fp = fpp.payer_payments(am, p, [JAN])
    (only,) = rows(fp)
    assert (only["member_months"], only["net_cents"]) == (114_000, 17_100_000 * DOLLAR)
    hp = table([{"program_id": "vt-2024-medicaid", "month": JAN, "hospital_id": "org-a", "amount_cents": 17_100_000 * DOLLAR}],
               {"program_id": "string", "month": "date", "hospital_id": "string", "amount_cents": "int64"})
    sh = table([{"program_id": "vt-2024-medicaid", "hospital_id": "org-a", "month": JAN,
                 "shadow_value_cents": 16_200_000 * DOLLAR}],
               {"program_id": "string", "hospital_id": "string", "month": "date", "shadow_value_cents": "int64"})
    perf = {r["hospital_id"]: r for r in rows(shadow.performance(p, fp, hp, sh, 2024))}
    assert perf["ALL"]["performance_cents"] == 900_000 * DOLLAR
    assert perf["org-a"]["performance_cents"] == 900_000 * DOLLAR
    # |16.2 - 17.1| / 17.1 = 5.26% > 5%: the rebase flag is raised
    assert perf["ALL"]["rebase_flag"] is True and str(perf["ALL"]["drift"]).startswith("0.0526315")
    # FFS paid outside the FPP scope: $27.0M over the same member months (one member carries it)
    tmm = table([{"program_id": "vt-2024-medicaid", "performance_year": 2024, "member_id": "m0", "month": JAN,
                  "paid_cents": 27_000_000 * DOLLAR, "excluded_payment_cents": 0}],
                {"program_id": "string", "performance_year": "int32", "member_id": "string", "month": "date",
                 "paid_cents": "int64", "excluded_payment_cents": "int64"})
    (tc,) = rows(shadow.fixed_payment_tcoc(p, fp, tmm, am, 2024, lines=table([], LINE)))
    assert (tc["fpp_paid_cents"], tc["ffs_outside_scope_cents"], tc["actual_tcoc_cents"]) == (
        17_100_000 * DOLLAR, 27_000_000 * DOLLAR, 44_100_000 * DOLLAR)
    assert tc["cpr_paid_cents"] == tc["shadow_outside_scope_cents"] == 0  # no CPR, no other shadow claims
    target = 114_000 * 400 * DOLLAR  # T = 114,000 MM x $400 = $45.6M
    assert target - tc["actual_tcoc_cents"] == 1_500_000 * DOLLAR  # G = $1.5M (3.29%)
    assert shadow.combined_result(1_368_000 * DOLLAR, perf["ALL"]["performance_cents"]) == 2_268_000 * DOLLAR


def test_rebase_flag_stays_down_inside_the_threshold():
    p = t7_program()
    am = many_months(10, JAN, "adult_parent")  # FPP 10 x $150 = $1,500
    fp = fpp.payer_payments(am, p, [JAN])
    hp = table([], {"program_id": "string", "month": "date", "hospital_id": "string", "amount_cents": "int64"})
    sh = table([{"program_id": "vt-2024-medicaid", "hospital_id": "org-a", "month": JAN, "shadow_value_cents": 1_575_00}],
               {"program_id": "string", "hospital_id": "string", "month": "date", "shadow_value_cents": "int64"})
    perf = {r["hospital_id"]: r for r in rows(shadow.performance(p, fp, hp, sh, 2024))}
    # |1,575 - 1,500| / 1,500 = 5% exactly: not past the threshold
    assert perf["ALL"]["rebase_flag"] is False and perf["ALL"]["performance_cents"] == -75_00
    # a hospital with shadow claims but no fixed payment shows them with FPP 0 and no drift
    assert perf["org-a"]["fpp_paid_cents"] == 0 and perf["org-a"]["drift"] is None


LINE = {"payer": "string", "claim_type": "string", "service_category": "string", "payment_arrangement": "string",
        "member_id": "string", "service_date": "date", "service_month": "date", "billing_npi": "string",
        "allowed_cents": "int64", "paid_cents": "int64"}
ROSTER = {"npi": "string", "payer": "string", "payment_model": "string", "organization_id": "string", "hsa": "string",
          "effective_start_date": "date", "effective_end_date": "date"}


def claim_line(**kw):
    """A medicaid claim line of member a on 10 January (or on the 10th of `service_month`): an FPP
    inpatient shadow claim of $1,000.00 billed by NPI 1, but for what `kw` changes."""
    base = {"payer": "medicaid", "claim_type": "institutional", "service_category": "inpatient",
            "payment_arrangement": "fpp", "member_id": "a", "service_month": JAN, "billing_npi": "1",
            "allowed_cents": 1000_00, "paid_cents": 0}
    out = {**base, **kw}
    out.setdefault("service_date", out["service_month"].replace(day=10))
    return out


def roster_row(**kw):
    """NPI 1 in FPP for medicaid under hospital org-a from 1 January 2024, open-ended, but for `kw`."""
    base = {"npi": "1", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-a", "hsa": "x",
            "effective_start_date": dt.date(2024, 1, 1), "effective_end_date": None}
    return {**base, **kw}


def test_shadow_claims_are_in_scope_fpp_lines_of_attributed_members_priced_at_allowed():
    p = program()
    am = att_months([("a", JAN, "child", "pr", "x")])
    roster = table([roster_row()], ROSTER)

    line = claim_line

    lines = table([
        line(),
        line(billing_npi="9", allowed_cents=50_00),              # not on the roster: 'unmatched'
        line(payment_arrangement="ffs", allowed_cents=7_00, paid_cents=7_00),  # paid FFS: not shadow
        line(service_category="snf"),                            # outside the FPP scope
        line(member_id="b"),                                     # not attributed
        line(service_month=dt.date(2024, 2, 1)),                 # member not attributed in February
        line(payer="medicare"),                                  # another payer
    ], LINE)
    got = rows(shadow.shadow_claims(lines, am, roster, p), key=lambda r: r["hospital_id"])
    assert [(r["hospital_id"], r["claim_lines"], r["shadow_value_cents"], r["paid_cents"], r["pricing"]) for r in got] == [
        ("org-a", 1, 1000_00, 0, "allowed"), ("unmatched", 1, 50_00, 0, "allowed")]


def test_a_shadow_claim_goes_to_the_hospital_the_npi_billed_under_on_its_service_date():
    """NPI 1 billed under org-b until 14 March, under org-a from 15 March (both rows in FPP);
    NPI 2 left FPP at the end of January. Each line goes to the hospital of the row in force on its
    date; a line no row covers is 'unmatched' (it was read under the lowest id, whatever the date)."""
    p = program()
    mar, apr = dt.date(2024, 3, 1), dt.date(2024, 4, 1)
    am = att_months([("a", m, "child", "pr", "x") for m in (JAN, dt.date(2024, 2, 1), mar, apr)])
    roster = table([
        roster_row(organization_id="org-b", effective_end_date=dt.date(2024, 3, 14)),
        roster_row(effective_start_date=dt.date(2024, 3, 15)),
        roster_row(npi="2", organization_id="org-c", effective_end_date=dt.date(2024, 1, 31)),
    ], ROSTER)
    lines = table([
        claim_line(allowed_cents=1_00),                                           # org-b
        claim_line(service_month=mar, service_date=dt.date(2024, 3, 14), allowed_cents=2_00),  # org-b
        claim_line(service_month=mar, service_date=dt.date(2024, 3, 15), allowed_cents=4_00),  # org-a
        claim_line(service_month=apr, allowed_cents=8_00),                       # org-a
        claim_line(billing_npi="2", allowed_cents=16_00),                        # org-c
        claim_line(billing_npi="2", service_month=dt.date(2024, 2, 1), allowed_cents=32_00),  # unmatched
    ], LINE)
    got = rows(shadow.shadow_claims(lines, am, roster, p), key=lambda r: (r["hospital_id"], r["month"]))
    assert [(r["hospital_id"], r["month"].month, r["shadow_value_cents"]) for r in got] == [
        ("org-a", 3, 4_00), ("org-a", 4, 8_00), ("org-b", 1, 1_00), ("org-b", 3, 2_00), ("org-c", 1, 16_00),
        ("unmatched", 2, 32_00)]


def test_the_cached_claim_lines_keep_what_the_fpp_stages_read():
    """medicaid 2024: scope institutional/professional x inpatient/outpatient/ed/professional,
    payment model fpp, hospital shares from 2023. A line is kept when it is medicaid's and either
    of 2023 and a claim type in scope (any arrangement: the shares read allowed amounts of all of
    them) or of 2024 under any shadow arrangement (a possible FPP shadow claim, or another shadow
    claim the fixed-payment TCOC values: cpr, capitated, an fpp line outside the scope). The
    scope's service categories are tested by the readers (`fpp.in_scope`), not by the cache: what
    they read is the same."""
    import datetime as dt

    from allpayer.payments.fpp import in_scope
    from allpayer.payments.run import _read_by_fpp

    schema = {"id": "string", "payer": "string", "service_date": "date", "claim_type": "string",
              "service_category": "string", "payment_arrangement": "string"}
    d23, d24 = dt.date(2023, 5, 2), dt.date(2024, 5, 2)
    columns = ("id", "payer", "service_date", "claim_type", "service_category", "payment_arrangement")
    lines = table([dict(zip(columns, r)) for r in [
        ("hist-ffs", "medicaid", d23, "institutional", "inpatient", "ffs"),                 # kept: share history
        ("hist-null-arrangement", "medicaid", d23, "professional", "professional", None),   # kept: share history
        ("hist-out-of-scope", "medicaid", d23, "institutional", "snf", "fpp"),              # kept; readers drop it
        ("perf-fpp", "medicaid", d24, "institutional", "outpatient", "fpp"),                # kept: shadow claim
        ("perf-ffs", "medicaid", d24, "institutional", "outpatient", "ffs"),                # dropped: paid FFS
        ("perf-dme", "medicaid", d24, "dme", "dme", "fpp"),                                 # kept: other shadow
        ("perf-cpr", "medicaid", d24, "professional", "professional", "cpr"),               # kept: CPR shadow
        ("perf-capitated", "medicaid", d24, "professional", "professional", "capitated"),   # kept: other shadow
        ("hist-dme", "medicaid", d23, "dme", "dme", "ffs"),                                 # dropped: claim type
        ("other-payer", "mvp", d24, "institutional", "outpatient", "fpp"),                  # dropped: payer
        ("old-year", "medicaid", dt.date(2022, 5, 2), "institutional", "inpatient", "fpp"),  # dropped: 2022
    ]], schema)
    cached = lines.filter(_read_by_fpp(lines, [program()], 2024))
    kept = rows(cached.select("id"), key=lambda r: r["id"])
    assert [r["id"] for r in kept] == ["hist-ffs", "hist-null-arrangement", "hist-out-of-scope", "perf-capitated",
                                       "perf-cpr", "perf-dme", "perf-fpp"]
    read = rows(cached.filter(in_scope(cached, program())).select("id"), key=lambda r: r["id"])
    assert [r["id"] for r in read] == ["hist-ffs", "hist-null-arrangement", "perf-capitated", "perf-cpr", "perf-fpp"]


def test_fixed_payment_tcoc_counts_cpr_paid_and_the_shadow_claims_no_payment_replaces():
    """The fixed-payment actual counts every dollar the payer funds (domain.md R3.1, R4, R5).

    Medicaid 2024 terms, cell adult_parent: FPP $405.00 less the 5% withhold = $384.75 a month;
    CPR $23.00 + $2.00 care coordination = $25.00 a month to the CPR practice pc-1.
    Two attributed January months: a (at pc-1, a CPR practice) and b (at pr-h, not in CPR).

    FPP paid 2 x $384.75 = $769.50; CPR paid 1 x $25.00 = $25.00; FFS paid (tcoc_member_month)
    $50.00 + ($123.45 - $3.45 excluded) = $170.00. Shadow claims (paid 0) at allowed:
    FPP scope $1,000.00 (replaced by the FPP); cpr lines $80.00 + $40.00 (replaced by the CPR,
    whichever practice the member is attributed to); capitated $300.00 and an fpp line outside the
    FPP scope (dme) $20.00: $320.00 that no payment replaces, counted at allowed.
    A = 769.50 + 25.00 + 170.00 + 320.00 = $1,284.50. Before, the actual was FPP + FFS = $939.50:
    the CPR and the $320.00 of capitated and out-of-scope care were missing.
    """
    from allpayer.payments import cpr

    p = program()
    am = att_months([("a", JAN, "adult_parent", "pc-1", "x"), ("b", JAN, "adult_parent", "pr-h", "x")])
    fp = fpp.payer_payments(am, p, [JAN])
    roster = table([{"npi": "7", "payer": "medicaid", "payment_model": "cpr", "practice_id": "pc-1",
                     "participation": "participant", "effective_start_date": dt.date(2022, 1, 1)}],
                   {"npi": "string", "payer": "string", "payment_model": "string", "practice_id": "string",
                    "participation": "string", "effective_start_date": "date", "effective_end_date": "date"})
    cp = cpr.cpr_payments(am, roster, p, [JAN])

    def line(**kw):  # a CPR practice's professional line of $80.00 unless told otherwise
        return claim_line(**{"claim_type": "professional", "service_category": "professional",
                             "payment_arrangement": "cpr", "billing_npi": "7", "allowed_cents": 80_00, **kw})

    lines = table([
        line(claim_type="institutional", service_category="inpatient", payment_arrangement="fpp",
             allowed_cents=1_000_00),                                        # FPP shadow claim
        line(),                                                              # CPR, member at pc-1
        line(member_id="b", allowed_cents=40_00),                            # CPR, member attributed elsewhere
        line(payment_arrangement="capitated", allowed_cents=300_00),         # capitated outside the ACO
        line(claim_type="dme", service_category="dme", payment_arrangement="fpp", allowed_cents=20_00),  # not FPP scope
        line(payment_arrangement="ffs", allowed_cents=60_00, paid_cents=50_00),  # FFS: counted from tcoc_member_month
        line(member_id="c", allowed_cents=9_999_00),                         # not attributed
        line(payer="mvp", payment_arrangement="capitated", allowed_cents=9_999_00),  # another payer
    ], LINE)
    tmm = table([{"program_id": "vt-2024-medicaid", "performance_year": 2024, "member_id": "a", "month": JAN,
                  "paid_cents": 50_00, "excluded_payment_cents": 0},
                 {"program_id": "vt-2024-medicaid", "performance_year": 2024, "member_id": "b", "month": JAN,
                  "paid_cents": 123_45, "excluded_payment_cents": 3_45}],
                {"program_id": "string", "performance_year": "int32", "member_id": "string", "month": "date",
                 "paid_cents": "int64", "excluded_payment_cents": "int64"})
    (tc,) = rows(shadow.fixed_payment_tcoc(p, fp, tmm, am, 2024, lines=lines, cpr_payments=cp))
    assert tc["member_months"] == 2
    assert (tc["fpp_paid_cents"], tc["cpr_paid_cents"], tc["ffs_outside_scope_cents"],
            tc["shadow_outside_scope_cents"]) == (769_50, 25_00, 170_00, 320_00)
    assert tc["actual_tcoc_cents"] == 1_284_50
    assert (tc["fpp_shadow_value_cents"], tc["cpr_shadow_value_cents"]) == (1_000_00, 120_00)
    # the FFS basis reconciles: FFS paid + every shadow claim at allowed = 170 + 1,000 + 120 + 320
    assert tc["ffs_outside_scope_cents"] + tc["fpp_shadow_value_cents"] + tc["cpr_shadow_value_cents"] + \
        tc["shadow_outside_scope_cents"] == 1_610_00
    # without CPR in the terms the cpr lines are shadow claims no payment replaces: at allowed
    no_cpr = program(edit=lambda d: d["payments"].pop("cpr"))
    (tc,) = rows(shadow.fixed_payment_tcoc(no_cpr, fp, tmm, am, 2024, lines=lines))
    assert (tc["cpr_paid_cents"], tc["cpr_shadow_value_cents"], tc["shadow_outside_scope_cents"]) == (0, 0, 440_00)
    assert tc["actual_tcoc_cents"] == 769_50 + 170_00 + 440_00
