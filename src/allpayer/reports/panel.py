"""Shared parts of the provider reports: the attributed panel by month, its cost against target,
and monthly payments by type."""

from __future__ import annotations

import datetime as dt

import ibis

from allpayer.reports import charts
from allpayer.reports.base import (Chart, Period, Report, Table, as_period, count, has, in_period, month_label,
                                   pmpm_cents, rows, rows_by, sums_by, usd, table)


def program_target_pmpm(con, period: Period | int) -> dict[tuple[str, dt.date], tuple[int, int]]:
    """(program, month) -> (target cents, member months) of the whole program."""
    period = as_period(period)

    def q():
        tg = in_period(table(con, "targets"), period)
        return tg.group_by(["program_id", "month"]).aggregate(t=tg.target_cents.sum(), mm=tg.member_months.sum())

    got = rows(q, key=("program_target_pmpm", period))
    return {(r["program_id"], r["month"]): (int(r["t"] or 0), int(r["mm"] or 0)) for r in got}


def panel(con, period: Period | int, column: str, value: str | None = None):
    """The attributed, eligible member months whose `column` (practice_id, hsa) is `value` (every
    value when None)."""
    a = in_period(table(con, "attribution"), as_period(period))
    a = a.filter(a.attributed & a.eligible & a[column].notnull())
    return a if value is None else a.filter(a[column] == value)


PANEL_COLUMNS = ("practice_id", "hsa")
"""The organization columns of the attribution table a panel is taken by (`panel`)."""


def add_panel_and_cost(con, rep: Report, period: Period | int, column: str, value: str, what: str) -> dict:
    """Panel by month and program, cost (FFS basis) against target; returns the totals."""
    period = as_period(period)
    # each query is built for every value of `column` at once (in a batch: built and run once)
    def by_q():
        # the attribution table has one row per program, member and month, so a group of one
        # program and month counts each member once: a count of rows, not of distinct members
        p = panel(con, period, column)
        return p.group_by([column, "program_id", "month"]).aggregate(members=p.count())

    def persons_q():
        p = panel(con, period, column)
        return p.group_by(column).aggregate(n=p.person_id.nunique())

    def cost_q():
        # by practice and HSA at once: the practice and the hospital reports share one query
        a = in_period(table(con, "attribution"), period)
        p = a.filter(a.attributed & a.eligible & (a.practice_id.notnull() | a.hsa.notnull()))
        mm = in_period(table(con, "tcoc_member_month"), period)
        keys = ["program_id", "member_id", "month"]
        j = mm.join(p.select(*PANEL_COLUMNS, *keys), keys)
        return j.group_by([*PANEL_COLUMNS, "program_id", "month"]).aggregate(cost=j.ffs_paid_cents.sum(), mm=j.count())

    by = rows_by(by_q, column, value, ["month", "program_id"], key=("panel", period, column))
    got = rows_by(persons_q, column, value, key=("panel persons", period, column))
    persons = (got[0]["n"] if got else 0) or 0
    cost = sums_by(cost_q, column, value, ["program_id", "month"], ["cost", "mm"], key=("panel cost", period))
    tmap = program_target_pmpm(con, period)
    programs = sorted({r["program_id"] for r in by})
    months = sorted({r["month"] for r in by})
    out, tot_mm, tot_cost, tot_target = [], 0, 0, 0
    series = {pid: [] for pid in programs}
    cell = {(r["program_id"], r["month"]): int(r["members"]) for r in by}
    for m in months:
        for pid in programs:
            series[pid].append(cell.get((pid, m), 0))
    for r in by:
        key = (r["program_id"], r["month"])
        c = cost.get(key, {"cost": 0, "mm": 0})
        mmn = int(r["members"])
        t_cents, t_mm = tmap.get(key, (0, 0))
        # target: the program's average target PMPM for the month x this panel's member months
        target = int((t_cents * mmn * 2 + t_mm) // (2 * t_mm)) if t_mm else 0
        tot_mm, tot_cost, tot_target = tot_mm + mmn, tot_cost + int(c["cost"] or 0), tot_target + target
        out.append([month_label(r["month"]), r["program_id"], count(mmn), usd(c["cost"] or 0),
                    usd(pmpm_cents(c["cost"] or 0, mmn)), usd(pmpm_cents(target, mmn)), usd(target)])
    out.append(["Total", "", count(tot_mm), usd(tot_cost), usd(pmpm_cents(tot_cost, tot_mm)),
                usd(pmpm_cents(tot_target, tot_mm)), usd(tot_target)])
    rep.tables.append(Table("panel_cost", f"Attributed panel, cost and target by month ({what})",
                            ["month", "program", "members", "TCOC paid (FFS basis)", "PMPM actual", "PMPM target",
                             "target"], out,
                            note="Target: the program's average target PMPM for the month times this panel's member "
                                 "months, rounded half-up to a cent."))
    labels = [month_label(m) for m in months]
    rep.charts.append(Chart("attribution", "Attribution over time", charts.line_chart(
        "Attribution over time", labels, {pid: v for pid, v in series.items()})))
    by_month_cost = {}
    for r in by:
        key = (r["program_id"], r["month"])
        c = cost.get(key, {"cost": 0})
        t_cents, t_mm = tmap.get(key, (0, 0))
        mmn = int(r["members"])
        target = int((t_cents * mmn * 2 + t_mm) // (2 * t_mm)) if t_mm else 0
        acc = by_month_cost.setdefault(r["month"], [0, 0, 0])
        acc[0] += int(c["cost"] or 0)
        acc[1] += target
        acc[2] += mmn
    rep.charts.append(Chart("pmpm_vs_target", "PMPM vs target over time", charts.line_chart(
        "PMPM vs target over time", labels,
        {"actual PMPM ($)": [pmpm_cents(by_month_cost[m][0], by_month_cost[m][2]) / 100 for m in months],
         "target PMPM ($)": [pmpm_cents(by_month_cost[m][1], by_month_cost[m][2]) / 100 for m in months]})))
    return {"persons": persons, "member_months": tot_mm, "cost": tot_cost, "target": tot_target, "programs": programs}


def add_payments(con, rep: Report, period: Period | int, practice_id: str | None, hospital_id: str | None) -> dict:
    """Monthly FPP (hospital), CPR and PHM (practice) payments, the Value Payment pass-through
    to either, the practice's after-year bonuses, and a chart of payments by type: the amounts
    the ledger posts to the organization's accounts, line by line. The after-year items (PHM
    ladder, CPR quality bonus, pay-for-improvement; posted for the year) are shown in December."""
    parts: dict[str, dict[dt.date, int]] = {}
    period = as_period(period)
    december = dt.date(period.year, 12, 1)

    def collect(label, name, column, value, rule=None, amount="amount_cents"):
        if value is None or not has(con, name):
            return
        def q():
            t = table(con, name)
            if "month" not in t.columns:  # a yearly table
                t = t.mutate(month=ibis.literal(december))
            t = in_period(t, period)
            if rule is not None:
                t = t.filter(t.rule == rule)
            return t.group_by([column, "month"]).aggregate(a=t[amount].sum())

        got = rows_by(q, column, value, key=("payments", name, period, column, rule))
        for r in got:
            by_month = parts.setdefault(label, {})
            by_month[r["month"]] = by_month.get(r["month"], 0) + int(r["a"] or 0)

    collect("FPP", "fpp_hospital_payments", "hospital_id", hospital_id)
    collect("CPR", "cpr_payments", "practice_id", practice_id)
    collect("PHM", "phm_payments", "practice_id", practice_id)
    # the employers' Value Payment passed on to the practice (pools phm, cpr) or the hospital (fpp)
    for account, org in (("practice", practice_id), ("hospital", hospital_id)):
        collect("VP pass-through", "value_payment_pass_through", "payee", org and f"{account}:{org}",
                rule="vp.pass_through")
    collect("CPR quality bonus", "cpr_quality_bonus", "practice_id", practice_id)
    collect("pay-for-improvement", "pay_for_improvement", "practice_id", practice_id, amount="bonus_cents")
    months = sorted({m for v in parts.values() for m in v})
    kinds = list(parts)
    out = []
    for m in months:
        vals = [parts[k].get(m, 0) for k in kinds]
        out.append([month_label(m), *[usd(v) for v in vals], usd(sum(vals))])
    totals = {k: sum(v.values()) for k, v in parts.items()}
    out.append(["Total", *[usd(totals[k]) for k in kinds], usd(sum(totals.values()))])
    rep.tables.append(Table("payments", "Payments by month and type", ["month", *kinds, "total"], out,
                            note="FPP: fixed prospective payment to the hospital; CPR: comprehensive payment reform "
                                 "PMPM; PHM: population health management PMPM (the ladder payment is in December); "
                                 "VP pass-through: the self-funded employers' Value Payment PMPM passed on; the CPR "
                                 "quality bonus and pay-for-improvement, paid for the year, are in December."))
    if kinds:
        rep.charts.append(Chart("payments_by_type", "Payments by type", charts.bar_chart(
            "Payments by type", [month_label(m) for m in months],
            {k: [parts[k].get(m, 0) / 100 for m in months] for k in kinds})))
    return totals
