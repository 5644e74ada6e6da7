"""CPR method historical_ffs: each practice's PMPM from its own FFS history (domain.md R5),
checked by hand on a small population."""

from __future__ import annotations

import datetime as dt

from allpayer.payments import cpr

from .helpers import CON, JAN, att_months, program, rows, table

D = dt.date


def hist_program():
    def edit(d):
        d["payments"]["cpr"] = {"method": "historical_ffs", "trend": {"value": "0.04", "basis": "INF"},
                                "enhancement": {"value": "0.10", "basis": "INF"},
                                "history_years": [2023], "care_coordination_pmpm": {"value": "2.00", "basis": "INF"}}
    return program(edit=edit)


ON = {"participation": "participant", "effective_start_date": D(2022, 1, 1)}
ROSTER = table([
    {"npi": "1", "payer": "medicaid", "payment_model": "cpr", "practice_id": "ind-1", **ON},
    {"npi": "4", "payer": "medicaid", "payment_model": "cpr", "practice_id": "ind-2", **ON},
    {"npi": "2", "payer": "medicaid", "payment_model": "ffs", "practice_id": "hosp-1", **ON},
], {"npi": "string", "payer": "string", "payment_model": "string", "practice_id": "string", "participation": "string",
    "effective_start_date": "date", "effective_end_date": "date"})

ELIG_SCHEMA = {"person_id": "string", "member_id": "string", "payer": "string", "payer_type": "string",
               "plan": "string", "group_id": "string", "enrollment_start_date": "date", "enrollment_end_date": "date",
               "death_date": "date", "gender": "string", "birth_date": "date", "aid_category": "string",
               "medicare_status_code": "string", "dual_status_code": "string", "data_sharing_opt_out": "boolean"}


def eligibility():
    def e(person, start, end, aid, payer="medicaid"):
        return {"person_id": person, "member_id": person, "payer": payer, "payer_type": "medicaid", "plan": "vmng",
                "enrollment_start_date": start, "enrollment_end_date": end, "gender": "female",
                "birth_date": D(1980, 1, 1), "aid_category": aid}
    return table([
        e("p-a", D(2023, 1, 1), D(2023, 6, 30), "child"),           # 6 history months
        e("p-b", D(2022, 1, 1), D(2024, 12, 31), "child"),          # 12 history months (2023 only)
        e("p-c", D(2023, 1, 1), D(2023, 3, 31), "aged_blind_disabled"),  # 3
        e("p-z", D(2023, 1, 1), D(2023, 12, 31), "child"),          # not attributed in 2024
    ], ELIG_SCHEMA)


LINE_SCHEMA = {"payer": "string", "service_date": "date", "service_month": "date", "claim_type": "string",
               "payment_arrangement": "string", "person_id": "string", "billing_npi": "string", "paid_cents": "int64"}


def lines():
    def ln(person, day, npi, cents, ctype="professional", arr="ffs", payer="medicaid"):
        return {"payer": payer, "service_date": day, "service_month": day.replace(day=1), "claim_type": ctype,
                "payment_arrangement": arr, "person_id": person, "billing_npi": npi, "paid_cents": cents}
    return table([
        ln("p-a", D(2023, 2, 10), "1", 150_00),   # counts: ind-1, child
        ln("p-a", D(2023, 8, 10), "1", 99_00),    # not eligible in August: no history month
        ln("p-b", D(2023, 3, 5), "1", 90_00),     # counts: ind-1, child
        ln("p-b", D(2023, 4, 5), "2", 500_00),    # hospital, not a CPR practice
        ln("p-b", D(2023, 5, 5), "4", 40_00),     # another CPR practice than the attributed one
        ln("p-b", D(2022, 12, 5), "1", 70_00),    # not a history year
        ln("p-b", D(2023, 6, 5), "1", 60_00, ctype="institutional"),
        ln("p-b", D(2023, 7, 5), "1", 0, arr="cpr"),
        ln("p-c", D(2023, 2, 1), "4", 300_00),    # counts: ind-2, aged_blind_disabled
        ln("p-z", D(2023, 2, 1), "1", 80_00),     # not attributed in 2024
        ln("p-a", D(2023, 2, 11), "1", 100_00, payer="medicare"),
    ], LINE_SCHEMA)


ATT = att_months([("a", JAN, "child", "ind-1", "x"), ("b", JAN, "child", "ind-1", "x"),
                  ("c", JAN, "aged_blind_disabled", "ind-2", "x"), ("d", JAN, "aged_blind_disabled", "ind-1", "x")])


def test_history_pmpm_trend_and_enhancement_by_hand():
    p = hist_program()
    hist = cpr.historical_history(lines(), eligibility(), ATT, ROSTER, p)
    got = {(r["practice_id"], r["cell_id"]): (r["history_member_months"], r["history_ffs_cents"])
           for r in rows(hist)}
    assert got == {("ind-1", "child"): (18, 240_00), ("ind-2", "aged_blind_disabled"): (3, 300_00),
                   ("ind-1", "aged_blind_disabled"): (0, 0)}
    rates = {(r["practice_id"], r["cell_id"]): r for r in rows(cpr.historical_rates(CON, hist, p, [JAN]))}
    # ind-1 child: $240.00 / 18 = $13.333333 (13,333,333 micro, half up); x 1.04 x 1.10 = 15,253,332.95 -> 15,253,333
    assert rates[("ind-1", "child")]["history_pmpm_micro"] == 13_333_333
    assert rates[("ind-1", "child")]["pmpm_micro"] == 15_253_333
    # ind-2 aged_blind_disabled: $300.00 / 3 = $100.00; x 1.144 = $114.40
    assert rates[("ind-2", "aged_blind_disabled")]["pmpm_micro"] == 114_400_000
    assert rates[("ind-1", "aged_blind_disabled")]["pmpm_micro"] == 0
    assert rates[("ind-1", "aged_blind_disabled")]["basis"] == "no history member months: PMPM 0"


def test_monthly_cpr_payment_from_history():
    p = hist_program()
    rates = cpr.historical_rates(CON, cpr.historical_history(lines(), eligibility(), ATT, ROSTER, p), p, [JAN])
    got = {(r["practice_id"], r["cell_id"]): (r["member_months"], r["amount_cents"])
           for r in rows(cpr.cpr_payments(ATT, ROSTER, p, [JAN], rates=rates))}
    assert got == {
        ("ind-1", "child"): (2, 34_51),                 # 2 x ($15.253333 + $2.00) = $34.506666 -> $34.51
        ("ind-2", "aged_blind_disabled"): (1, 116_40),  # $114.40 + $2.00
        ("ind-1", "aged_blind_disabled"): (1, 2_00),    # no history: care coordination only
    }
