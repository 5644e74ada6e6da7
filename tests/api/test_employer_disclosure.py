"""An employer reads through the API exactly what its report shows: every figure of every endpoint
open to it equals the report's shown figure, or is withheld where the report hides it, so that no
combination of the two gives a small count, a hidden cell, or the cost of members who opted out of
data sharing by category. The ACO and payer roles keep the full detail."""

from __future__ import annotations

import pytest

from allpayer.reports.base import HIDDEN
from allpayer.reports.employer import CATEGORIES
from allpayer.reports.suppression import is_small
from tests.api.employer_view import YEAR, cents, employer_readers, month_key, number

OPT_OUT_LINE = "members who opted out of data sharing (payer-supplied total, not itemized)"


@pytest.fixture(scope="module")
def readers(world):
    return employer_readers(world)


def _get(client, key: str, url: str, **params) -> dict:
    r = client.get(url, headers={"X-API-Key": key}, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _items(client, key: str, url: str) -> list[dict]:
    body = _get(client, key, url, limit=1000)
    assert body["next"] is None
    return body["items"]


def test_the_world_has_the_cases_that_leaked(world, readers):
    """The world's employers include one with an opted-out member who has cost, and one whose
    report hides an invoiced month of 11 or more member months (a small difference from the month's
    member months): the two cases the API once served."""
    opted = world.sql(
        "SELECT DISTINCT g.employer_id FROM tcoc_member_month m JOIN employer_group g USING (group_id) "
        "WHERE m.data_sharing_opt_out AND m.ffs_paid_cents > 0 AND m.performance_year = ?", (YEAR,))
    assert {e for (e,) in opted} & set(readers)
    big_hidden = [(emp, row) for emp, rd in readers.items() for (section, row, column), v in rd.report.items()
                  if section == "value_payment_invoices" and column == "member months" and row != "Total"
                  and v == HIDDEN and world.sql("SELECT sum(member_months) FROM value_payment_invoices WHERE "
                                                "employer_id = ? AND strftime(month, '%Y-%m') = ?", (emp, row))[0][0] >= 11]
    assert big_hidden


def test_employer_tcoc_is_its_reports_cost_by_category(world, client, readers):
    """The employer's ``tcoc_summary`` row carries its report's figures: member months, TCOC and
    the cost by category of members who share data (never the table's raw categories, which hold
    the opted-out members' cost: less the report's categories, they gave each opted-out category
    cost), the opted-out total apart, hidden where the report hides it; every other amount is
    withheld."""
    rows = {}
    for emp, rd in readers.items():
        items = _items(client, rd.key, "/api/v1/tcoc")
        assert [i["employer_id"] for i in items] == [emp], emp
        rows[emp] = row = items[0]
        # the categories are those of members who share data, worked out here from the member months
        sharing = world.sql(
            "SELECT " + ", ".join(f"sum({c}_ffs_paid_cents) FILTER (WHERE NOT coalesce(data_sharing_opt_out, false))"
                                  for c in CATEGORIES) +
            " FROM tcoc_member_month m JOIN (SELECT DISTINCT group_id, employer_id FROM employer_group) g USING (group_id)"
            " WHERE g.employer_id = ? AND m.performance_year = ?", (emp, YEAR))[0]
        for c, want in zip(CATEGORIES, sharing):
            assert row[f"{c}_ffs_paid_cents"] in (None, int(want or 0)), (emp, c)
            assert row[f"{c}_ffs_paid_cents"] == cents(rd.report[("cost_by_category", c, "TCOC paid (FFS basis)")]), (emp, c)
    for emp, row in rows.items():
        rep = readers[emp].report
        assert row["member_months"] == number(rep[("totals", "Member months", "value")])
        assert row["ffs_paid_cents"] == cents(rep[("totals", "TCOC paid (FFS basis)", "value")])
        assert row.get("opt_out_ffs_paid_cents") == cents(rep[("cost_by_category", OPT_OUT_LINE, "TCOC paid (FFS basis)")])
        for k, v in row.items():
            if k.startswith(("allowed", "paid_", "shadow", "excluded")) or "_allowed_" in k or k == "claim_lines":
                assert v is None, (emp, k)
        # no total less what is shown gives the opted-out members' cost of one category
        shown = [row[f"{c}_ffs_paid_cents"] for c in CATEGORIES if row[f"{c}_ffs_paid_cents"] is not None]
        if row["opt_out_ffs_paid_cents"] is None and row["ffs_paid_cents"] is not None:
            assert len(shown) < len(CATEGORIES), "the total less the categories would be the opted-out cost"


def test_employer_overview_is_its_reports_totals(client, readers):
    for emp, rd in readers.items():
        items = _get(client, rd.key, "/api/v1/overview")["items"]
        assert sum(i["member_months"] or 0 for i in items) == (number(rd.report[("totals", "Member months", "value")]) or 0)
        assert sum(i["tcoc_cents"] or 0 for i in items) == (cents(rd.report[("totals", "TCOC paid (FFS basis)", "value")]) or 0)


def _report_invoices(rd) -> dict[str, tuple[int | None, int | None]]:
    """Month label ('2024-01', and 'Total') -> the report's (invoiced member months, amount)."""
    out = {}
    for (section, row, column), v in rd.report.items():
        if section == "value_payment_invoices" and column in ("member months", "amount"):
            mm, amount = out.get(row, (None, None))
            out[row] = (number(v), amount) if column == "member months" else (mm, cents(v))
    return out


def test_employer_invoices_show_what_the_report_shows(client, readers):
    """`/payments/invoices` and `/employers/{id}/summary`: a month's invoiced member months, amount
    and working are shown exactly where the report shows them, with the report's values."""
    for emp, rd in readers.items():
        report = _report_invoices(rd)
        served = {}
        for i in _items(client, rd.key, "/api/v1/payments/invoices"):
            served.setdefault(month_key(i["month"]), []).append(i)
            assert (i["member_months"], i["amount_cents"]) == report[month_key(i["month"])], (emp, i["month"])
            assert i.get("suppressed") == (i["member_months"] is None)
            if i["member_months"] is None:
                assert i["working"] is None
        summary = _get(client, rd.key, f"/api/v1/employers/{emp}/summary")
        assert {month_key(r["month"]) for r in summary["items"]} == set(served) == set(report) - {"Total"}
        for r in summary["items"]:
            month = month_key(r["month"])
            (inv,) = served[month]  # one program a month in the world
            assert (r["member_months"], r["amount_cents"]) == (inv["member_months"], inv["amount_cents"]) \
                == report[month], (emp, month)
        (total,) = summary["totals"]
        assert (total["member_months"], total["amount_cents"]) == report["Total"]
        assert total["suppressed"] == (report["Total"][0] is None)


def test_employer_ledger_months_show_what_the_report_shows(client, readers):
    """A month's balance of the employer's ledger account is that month's invoice (amount over the
    PMPM = invoiced member months): withheld where the report hides the invoice, else the report's
    amount."""
    for emp, rd in readers.items():
        report = _report_invoices(rd)
        items = _get(client, rd.key, "/api/v1/ledger/balances")["items"]
        months = {b["period"]: b for b in items if len(b["period"]) == 7}
        assert set(months) == set(report) - {"Total"}, emp
        for month, b in months.items():
            shown = None if b["balance_cents"] is None else abs(b["balance_cents"])
            assert shown == report[month][1], (emp, month)
            assert b["suppressed"] == (shown is None) and b["credit_cents"] in (None, shown), (emp, month)


def test_no_small_count_follows_from_what_an_employer_reads(client, readers):
    """Every count an employer can read, from its report and the API together: none is from 1 to
    10, no month's member months less its invoiced (or opted-out) member months is, and no hidden
    months add up to one under a shown total."""
    for emp, rd in readers.items():
        rep = rd.report
        mm = {row: number(v) for (s, row, c), v in rep.items() if s == "members_and_cost_by_month" and c == "member months"}
        opt = {row: number(v) for (s, row, c), v in rep.items()
               if s == "members_and_cost_by_month" and c == "member months opted out of data sharing"}
        inv = {month_key(i["month"]): i["member_months"] for i in _items(client, rd.key, "/api/v1/payments/invoices")}
        summary = _get(client, rd.key, f"/api/v1/employers/{emp}/summary")
        inv_total = summary["totals"][0]["member_months"]
        tcoc = _items(client, rd.key, "/api/v1/tcoc")
        counts = [*mm.values(), *opt.values(), *inv.values(), inv_total, *(r["member_months"] for r in tcoc)]
        assert not [n for n in counts if n is not None and is_small(n)], emp
        for month, n in inv.items():
            whole = mm.get(month)
            if n is not None and whole is not None and n <= whole:
                assert not is_small(whole - n), (emp, month, whole, n)
        for month, n in opt.items():
            if n is not None and mm.get(month) is not None:
                assert not is_small(mm[month] - n), (emp, month)
        if inv_total is not None:
            assert not is_small(inv_total - sum(n for n in inv.values() if n is not None)), emp
        if tcoc and tcoc[0]["member_months"] is not None and mm.get("Total") is not None:
            assert tcoc[0]["member_months"] == mm["Total"]


def test_aco_and_payer_keep_the_full_detail(world, as_role):
    """The ACO and the payer read the table as stored: raw categories and invoiced member months."""
    emp = sorted(readers_ids(world))[0]
    raw = world.sql("SELECT inpatient_ffs_paid_cents, allowed_cents FROM tcoc_summary WHERE employer_id = ?", (emp,))
    payer = world.sql("SELECT payer FROM tcoc_summary WHERE employer_id = ?", (emp,))[0][0]
    for role in ("aco_admin", "payer"):
        if role == "payer" and world.users["payer"]["org_id"] != payer:
            continue
        items = [i for i in as_role(role, "/api/v1/tcoc", params={"limit": 1000}).json()["items"] if i["employer_id"] == emp]
        assert [(i["inpatient_ffs_paid_cents"], i["allowed_cents"]) for i in items] == raw
        invoices = as_role(role, "/api/v1/payments/invoices", params={"employer_id": emp, "limit": 1000}).json()["items"]
        want = world.sql("SELECT member_months FROM value_payment_invoices WHERE employer_id = ? ORDER BY program_id, month",
                         (emp,))
        assert [i["member_months"] for i in invoices] == [m for (m,) in want]
        assert all("suppressed" not in i for i in invoices)


def readers_ids(world) -> set[str]:
    return {e for (e,) in world.sql("SELECT DISTINCT employer_id FROM tcoc_summary WHERE employer_id IS NOT NULL")}
