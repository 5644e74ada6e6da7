"""Fixed prospective payments: payer to ACO by rate cell less withhold, ACO to hospitals."""

from __future__ import annotations

import datetime as dt

from allpayer.payments import fpp

from .helpers import CON, FEB, JAN, att_months, program, rows, table


def test_payer_to_aco_is_member_months_times_cell_pmpm_less_withhold():
    p = program()  # shipped VMNG 2024: child $160.00, aged_blind_disabled $965.00, withhold 5%
    am = att_months([("a", JAN, "child", "pr", "h"), ("b", JAN, "child", "pr", "h"), ("c", JAN, "child", "pr", "h"),
                     ("d", JAN, "aged_blind_disabled", "pr", "h"), ("e", JAN, "aged_blind_disabled", "pr", "h"),
                     ("a", FEB, "child", "pr", "h"), ("z", FEB, "unassigned", "pr", "h")])
    got = rows(fpp.payer_payments(am, p, [JAN, FEB]), key=lambda r: (r["month"], r["cell_id"]))
    cut = [(r["month"], r["cell_id"], r["member_months"], r["gross_cents"], r["withhold_cents"], r["net_cents"]) for r in got]
    assert cut == [
        # 2 x $965.00 = $1,930.00; 5% withhold $96.50; net $1,833.50
        (JAN, "aged_blind_disabled", 2, 193000, 9650, 183350),
        # 3 x $160.00 = $480.00; 5% withhold $24.00; net $456.00
        (JAN, "child", 3, 48000, 2400, 45600),
        (FEB, "child", 1, 16000, 800, 15200),
        # a member month in no rate cell is shown, at PMPM 0
        (FEB, "unassigned", 1, 0, 0, 0),
    ]
    assert {r["payer"] for r in got} == {"medicaid"} and {r["rule"] for r in got} == {"fpp.payer_to_aco"}


def test_withhold_is_rounded_half_up_on_its_line():
    def edit(d):
        d["payments"]["fpp"]["pmpm_by_cell"]["child"] = "84.90"

    p = program(edit=edit)
    got = rows(fpp.payer_payments(att_months([("a", JAN, "child", "pr", "h")]), p, [JAN]))
    # $84.90 x 5% = 424.5 cents -> 425 half-up (half-even would give 424)
    assert (got[0]["gross_cents"], got[0]["withhold_cents"], got[0]["net_cents"]) == (8490, 425, 8065)


def test_dated_pmpm_applies_from_its_month():
    def edit(d):
        d["payments"]["fpp"]["pmpm_by_cell"]["child"] = [
            {"from": "2024-01-01", "value": "85.00"}, {"from": "2024-02-01", "value": "90.00"}]

    p = program(edit=edit)
    am = att_months([("a", JAN, "child", "pr", "h"), ("a", FEB, "child", "pr", "h")])
    got = rows(fpp.payer_payments(am, p, [JAN, FEB]), key=lambda r: r["month"])
    assert [r["gross_cents"] for r in got] == [8500, 9000]


ROSTER = {"npi": "string", "payer": "string", "payment_model": "string", "organization_id": "string",
          "hsa": "string", "practice_id": "string"}
DATED_ROSTER = {**ROSTER, "participation": "string", "effective_start_date": "date", "effective_end_date": "date"}
ON = {"participation": "participant", "effective_start_date": dt.date(2022, 1, 1)}
LINES = {"payer": "string", "service_date": "date", "claim_type": "string", "service_category": "string",
         "person_id": "string", "billing_npi": "string", "allowed_cents": "int64"}
ATTR = {"program_id": "string", "person_id": "string", "attributed": "boolean"}


def _historical_split(p, lines, roster, *, feb_net_cents: int) -> list[dict]:
    """`fpp.hospital_payments` of $100.00 net FPP in January and `feb_net_cents` in February, for
    p-a attributed to the Medicaid program."""
    attribution = table([{"program_id": "vt-2024-medicaid", "person_id": "p-a", "attributed": True}], ATTR)
    payer = table([{"program_id": "vt-2024-medicaid", "month": JAN, "net_cents": 100_00},
                   {"program_id": "vt-2024-medicaid", "month": FEB, "net_cents": feb_net_cents}],
                  {"program_id": "string", "month": "date", "net_cents": "int64"})
    return rows(fpp.hospital_payments(CON, payer, p, lines=lines, roster=roster, attribution=attribution),
                key=lambda r: (r["month"], r["hospital_id"]))


def test_historical_share_splits_the_net_payment_exactly():
    p = program()  # history year 2023; scope institutional/professional x inpatient/outpatient/ed/professional
    roster = table([
        {"npi": "1", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-a", "hsa": "x", **ON},
        {"npi": "2", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-b", "hsa": "y", **ON},
        {"npi": "3", "payer": "medicaid", "payment_model": "ffs", "organization_id": "org-c", "hsa": "y", **ON},
    ], DATED_ROSTER)
    d23 = dt.date(2023, 5, 1)
    lines = table([
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "inpatient",
         "person_id": "p-a", "billing_npi": "1", "allowed_cents": 200_00},
        {"payer": "medicaid", "service_date": d23, "claim_type": "professional", "service_category": "professional",
         "person_id": "p-a", "billing_npi": "2", "allowed_cents": 100_00},
        # not counted: a non-FPP provider, a service outside the scope, another year, another person
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "inpatient",
         "person_id": "p-a", "billing_npi": "3", "allowed_cents": 999_00},
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "snf",
         "person_id": "p-a", "billing_npi": "1", "allowed_cents": 999_00},
        {"payer": "medicaid", "service_date": dt.date(2022, 5, 1), "claim_type": "institutional",
         "service_category": "inpatient", "person_id": "p-a", "billing_npi": "2", "allowed_cents": 999_00},
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "inpatient",
         "person_id": "p-nobody", "billing_npi": "2", "allowed_cents": 999_00},
    ], LINES)
    got = _historical_split(p, lines, roster, feb_net_cents=1)
    # weights $200 : $100 -> $66.666.. and $33.333..: floors 6666 + 3333, the spare cent to org-a
    assert [(r["month"], r["hospital_id"], r["share"], r["amount_cents"]) for r in got] == [
        (JAN, "org-a", "20000/30000", 6667), (JAN, "org-b", "10000/30000", 3333),
        (FEB, "org-a", "20000/30000", 1), (FEB, "org-b", "10000/30000", 0),
    ]


def test_historical_share_pays_only_the_hospitals_in_fpp_that_month():
    """docs/payments.md (R3.3, historical_ffs_share): the month's net FPP is split over the
    hospitals the roster lists under the FPP payment models; a roster row holds over its
    effective period. org-b leaves FPP after 2024-01-31 (FFS from February): January's $100.00
    is split $200 : $100 history (6667 / 3333 cents); February's $90.00 goes to org-a alone."""
    p = program()
    roster = table([
        {"npi": "1", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-a", "hsa": "x", **ON},
        {"npi": "2", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-b", "hsa": "y", **ON,
         "effective_end_date": dt.date(2024, 1, 31)},
        {"npi": "2", "payer": "medicaid", "payment_model": "ffs", "organization_id": "org-b", "hsa": "y", **ON,
         "effective_start_date": FEB},
    ], DATED_ROSTER)
    d23 = dt.date(2023, 5, 1)
    lines = table([
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "inpatient",
         "person_id": "p-a", "billing_npi": "1", "allowed_cents": 200_00},
        {"payer": "medicaid", "service_date": d23, "claim_type": "institutional", "service_category": "inpatient",
         "person_id": "p-a", "billing_npi": "2", "allowed_cents": 100_00},
    ], LINES)
    got = _historical_split(p, lines, roster, feb_net_cents=90_00)
    assert [(r["month"], r["hospital_id"], r["amount_cents"]) for r in got] == [
        (JAN, "org-a", 6667), (JAN, "org-b", 3333), (FEB, "org-a", 90_00)]


def test_per_hospital_pmpm_pays_the_hospital_for_its_hsa_members():
    def edit(d):
        d["payments"]["fpp"]["hospital_allocation"] = {"method": "per_hospital_pmpm",
                                                      "pmpm_by_hospital": {"org-a": "100.00", "org-b": "40.00"}}

    p = program(edit=edit)
    roster = table([
        {"npi": "1", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-a", "hsa": "x"},
        {"npi": "2", "payer": "medicaid", "payment_model": "fpp", "organization_id": "org-b", "hsa": "y"},
    ], ROSTER)
    am = att_months([("a", JAN, "child", "pr", "x"), ("b", JAN, "child", "pr", "x"), ("c", JAN, "child", "pr", "y"),
                     ("d", JAN, "child", "pr", "z")])
    payer = fpp.payer_payments(am, p, [JAN])
    got = rows(fpp.hospital_payments(CON, payer, p, roster=roster, att_months=am), key=lambda r: r["hospital_id"])
    # org-a: 2 MM in HSA x x $100 = $200; org-b: 1 MM in HSA y x $40 = $40; HSA z has no FPP hospital
    assert [(r["hospital_id"], r["member_months"], r["amount_cents"]) for r in got] == [("org-a", 2, 200_00), ("org-b", 1, 40_00)]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=20, deadline=None)
@given(
    weights=st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=5),
    totals=st.lists(st.integers(min_value=0, max_value=10**11), min_size=1, max_size=3),
)
def test_hospitals_receive_exactly_the_net_fpp_each_month(weights, totals):
    """What the ACO pays the hospitals plus what it keeps (0 under historical shares, unless no
    hospital has history) equals what the payer paid, per program and month, to the cent."""
    p = program()
    roster = table([{"npi": str(i), "payer": "medicaid", "payment_model": "fpp", "organization_id": f"org-{i}", "hsa": "x",
                     **ON} for i in range(len(weights))], DATED_ROSTER)
    lines = table([{"payer": "medicaid", "service_date": dt.date(2023, 3, 1), "claim_type": "institutional",
                    "service_category": "inpatient", "person_id": "p-a", "billing_npi": str(i), "allowed_cents": w}
                   for i, w in enumerate(weights)], LINES)
    attribution = table([{"program_id": "vt-2024-medicaid", "person_id": "p-a", "attributed": True}], ATTR)
    months = [dt.date(2024, m + 1, 1) for m in range(len(totals))]
    payer = table([{"program_id": "vt-2024-medicaid", "month": m, "net_cents": t} for m, t in zip(months, totals)],
                  {"program_id": "string", "month": "date", "net_cents": "int64"})
    got = rows(fpp.hospital_payments(CON, payer, p, lines=lines, roster=roster, attribution=attribution))
    for m, t in zip(months, totals):
        paid = [r["amount_cents"] for r in got if r["month"] == m]
        kept = t - sum(paid)
        assert kept == (t if sum(weights) == 0 else 0)
        assert all(a >= 0 for a in paid)
