"""Employer report: one self-funded employer's own members only, small cells suppressed.

Contents (domain R11): attributed members and member months with opt-outs, cost (FFS basis)
against target by month and by category, utilization, quality and care-gap rates, the Value
Payment PMPM invoices and quarterly adjustments, and the employer's share of the settlement.
Members are those whose member month carries one of the employer's groups (`employer_group`).
Members who opted out of data sharing count in member months; their cost is the payer-supplied
total only (never itemized by category), and the report says TCOC is incomplete when they exist.
"""

from __future__ import annotations

import ibis

from allpayer.reports import charts
from allpayer.reports.base import (HIDDEN, Chart, Report, ReportError, Table, count, has, month_label,
                                   of_year, pct, pmpm_cents, require, rows, usd)
from allpayer.reports.suppression import THRESHOLD, is_small, suppress_columns

CATEGORIES = ("inpatient", "outpatient", "ed", "professional", "pharmacy", "other")


def employers(con) -> list[str]:
    eg = con.table("employer_group")
    return [r["employer_id"] for r in rows(eg.select("employer_id").distinct().order_by("employer_id"))]


def build(con, org: str, year: int, run_id: str) -> Report:
    require(con, "employer_group", "tcoc_member_month", "targets")
    eg = con.table("employer_group")
    groups = eg.filter(eg.employer_id == org).select("group_id").distinct()
    name_rows = rows(eg.filter(eg.employer_id == org).select("employer_name").distinct())
    if not name_rows:
        raise ReportError(f"unknown employer {org!r}; known: {', '.join(employers(con))}")
    name = name_rows[0]["employer_name"]
    mm = of_year(con.table("tcoc_member_month"), year)
    mm = mm.semi_join(groups, "group_id")
    opt = mm.data_sharing_opt_out.fill_null(False)
    itemized = {f"{c}_cents": ibis.ifelse(opt, 0, mm[f"{c}_ffs_paid_cents"]).sum() for c in CATEGORIES}
    monthly = rows(mm.group_by(["program_id", "month"]).aggregate(
        member_months=mm.count(), opt_out_mm=opt.cast("int64").sum(), cost_cents=mm.ffs_paid_cents.sum(),
        opt_out_cost_cents=ibis.ifelse(opt, mm.ffs_paid_cents, 0).sum(), **itemized,
    ).order_by(["month", "program_id"]))
    if not monthly:
        raise ReportError(f"employer {org} has no member months in {year}")
    programs = sorted({r["program_id"] for r in monthly})
    persons = rows(mm.aggregate(n=mm.person_id.nunique(), opted=mm.person_id.nunique(where=opt)))[0]

    # target: the program's target for the month, in proportion to the employer's member months
    tg = of_year(con.table("targets"), year)
    tg = tg.filter(tg.program_id.isin(programs)).group_by(["program_id", "month"]).aggregate(
        target_cents=tg.target_cents.sum(), member_months=tg.member_months.sum())
    tmap = {(r["program_id"], r["month"]): r for r in rows(tg)}
    by_month: dict = {}
    for r in monthly:
        t = tmap.get((r["program_id"], r["month"]))
        share = 0
        if t and t["member_months"]:
            share = int((t["target_cents"] * r["member_months"] * 2 + t["member_months"]) // (2 * t["member_months"]))
        m = by_month.setdefault(r["month"], {"month": r["month"], "member_months": 0, "opt_out_mm": 0,
                                             "cost_cents": 0, "target_cents": 0})
        m["member_months"] += int(r["member_months"])
        m["opt_out_mm"] += int(r["opt_out_mm"] or 0)
        m["cost_cents"] += int(r["cost_cents"] or 0)
        m["target_cents"] += share
    months = [by_month[k] for k in sorted(by_month)]
    hidden, hidden_tot = suppress_columns(months, ["member_months", "opt_out_mm"])
    tot_mm = sum(m["member_months"] for m in months)
    tot_cost = sum(m["cost_cents"] for m in months)
    tot_target = sum(m["target_cents"] for m in months)
    tot_opt_mm = sum(m["opt_out_mm"] for m in months)

    rep = Report(kind="employer", org=org, year=year, run_id=run_id,
                 title=f"Employer report: {name} ({org}), {year}",
                 subtitle=f"Self-funded group members only; counts from 1 to {THRESHOLD - 1} are {HIDDEN}, "
                          f"and so are further cells where totals would reveal them. Run {run_id}.")
    show_mm = "member_months" not in hidden_tot
    rep.totals = [
        ("Members (distinct persons)", HIDDEN if is_small(persons["n"]) else count(persons["n"])),
        ("Member months", count(tot_mm) if show_mm else HIDDEN),
        ("TCOC paid (FFS basis)", usd(tot_cost) if show_mm else HIDDEN),
        ("TCOC target", usd(tot_target) if show_mm else HIDDEN),
    ]

    mrows = []
    for i, m in enumerate(months):
        h = (i, "member_months") in hidden
        mrows.append([
            month_label(m["month"]),
            HIDDEN if h else count(m["member_months"]),
            HIDDEN if (i, "opt_out_mm") in hidden else count(m["opt_out_mm"]),
            HIDDEN if h else usd(m["cost_cents"]),
            HIDDEN if h else usd(pmpm_cents(m["cost_cents"], m["member_months"])),
            HIDDEN if h else usd(pmpm_cents(m["target_cents"], m["member_months"])),
        ])
    mrows.append(["Total",
                  count(tot_mm) if show_mm else HIDDEN,
                  HIDDEN if "opt_out_mm" in hidden_tot else count(tot_opt_mm),
                  usd(tot_cost) if show_mm else HIDDEN,
                  usd(pmpm_cents(tot_cost, tot_mm)) if show_mm else HIDDEN,
                  usd(pmpm_cents(tot_target, tot_mm)) if show_mm else HIDDEN])
    rep.tables.append(Table("members_and_cost_by_month", "Members, cost and target by month",
                            ["month", "member months", "member months opted out of data sharing",
                             "TCOC paid (FFS basis)", "PMPM actual", "PMPM target"], mrows,
                            note="Target: the program's target for the month in proportion to this employer's "
                                 "member months (rounded half-up to a cent). Cost is YTD as paid through the run's "
                                 "paid-through date, not completed for claims still to come (IBNR)."))
    labels = [month_label(m["month"]) for m in months]
    rep.charts.append(Chart("pmpm_vs_target", "PMPM vs target over time", charts.line_chart(
        "PMPM vs target over time", labels,
        {"actual PMPM ($)": [None if (i, "member_months") in hidden else pmpm_cents(m["cost_cents"], m["member_months"]) / 100
                             for i, m in enumerate(months)],
         "target PMPM ($)": [None if (i, "member_months") in hidden else pmpm_cents(m["target_cents"], m["member_months"]) / 100
                             for i, m in enumerate(months)]})))

    # cost by category (members sharing data) and the payer-supplied total of those who opted out
    cat = {c: sum(int(r[f"{c}_cents"] or 0) for r in monthly) for c in CATEGORIES}
    opt_cost = sum(int(r["opt_out_cost_cents"] or 0) for r in monthly)
    opt_hidden = is_small(persons["opted"])
    # with the opted-out total hidden, the smallest category is hidden too, or the total less the
    # categories would give the cost of fewer than 11 people
    complement = min(cat, key=lambda c: (cat[c], c)) if opt_hidden and opt_cost else None
    crows = [[c, usd(v) if show_mm and c != complement else HIDDEN,
              usd(pmpm_cents(v, tot_mm)) if show_mm and c != complement else HIDDEN] for c, v in cat.items()]
    crows.append(["members who opted out of data sharing (payer-supplied total, not itemized)",
                  HIDDEN if opt_hidden or not show_mm else usd(opt_cost),
                  HIDDEN if opt_hidden or not show_mm else usd(pmpm_cents(opt_cost, tot_mm))])
    crows.append(["Total", usd(tot_cost) if show_mm else HIDDEN, usd(pmpm_cents(tot_cost, tot_mm)) if show_mm else HIDDEN])
    rep.tables.append(Table("cost_by_category", "Cost by category", ["category", "TCOC paid (FFS basis)", "PMPM"], crows,
                            note="The opted-out members' total is hidden when fewer than 11 members opted out, and "
                                 "then so is the smallest category, so that neither follows from the total."))
    if persons["opted"]:
        rep.notes.append("TCOC is incomplete: members who opted out of data sharing count in the member months, "
                         "but their cost enters only as the payer-supplied total and is not itemized by category "
                         "or used for care gaps.")

    _utilization(con, rep, year, programs, tot_mm)
    _quality(con, rep, year, programs, mm)
    _value_payment(con, rep, year, org, programs)
    _settlement(con, rep, year, org)
    rep.provenance = [("run_id", run_id), ("programs", ", ".join(programs)),
                      ("tables", "tcoc_member_month, targets, employer_group, utilization, value_payment_invoices, "
                                 "value_payment_adjustments, employer_statements, quality_rates, care_gaps")]
    return rep


def _utilization(con, rep: Report, year: int, programs: list[str], employer_mm: int) -> None:
    if not has(con, "utilization"):
        return
    u = con.table("utilization")
    u = u.filter(u.program_id.isin(programs) & (u.year == year))
    got = rows(u.aggregate(mm=u.member_months.sum(), admissions=u.admissions.sum(), ed=u.ed_visits.sum(),
                           readm=u.readmissions.sum()))
    if not got or got[0]["mm"] is None:
        return
    g = got[0]
    if int(g["mm"]) != employer_mm:
        rep.notes.append("Utilization is shown only for programs whose members are all this employer's; "
                         "these programs also cover other employers, so it is left out.")
        return
    out = []
    for label, key in (("inpatient admissions", "admissions"), ("ED visits", "ed"), ("readmissions", "readm")):
        n = int(g[key] or 0)
        small = is_small(n)
        per_k = pmpm_cents(n * 12 * 1000 * 100, employer_mm)  # events x 12 x 1,000 / member months, in hundredths
        out.append([label, HIDDEN if small else count(n),
                    HIDDEN if small else "" if per_k is None else f"{per_k // 100}.{per_k % 100:02d}"])
    rep.tables.append(Table("utilization", "Utilization per 1,000 members per year", ["measure", "events", "per 1,000"], out))


def quality_rows(con, year: int, programs: list[str], level: str = "program", level_ids=None) -> list[dict]:
    if not has(con, "quality_rates"):
        return []
    q = con.table("quality_rates")
    q = q.filter(q.program_id.isin(programs) & (q.level == level) & (q.performance_year == year))
    if level_ids is not None:
        q = q.filter(q.level_id.isin(list(level_ids)))
    return rows(q.select("program_id", "measure_id", "level_id", "denominator", "numerator", "rate")
                .order_by(["program_id", "measure_id", "level_id"]))


def rate_hidden(denominator, numerator) -> bool:
    d, n = int(denominator or 0), int(numerator or 0)
    return d < THRESHOLD or is_small(n) or is_small(d - n)


def _quality(con, rep: Report, year: int, programs: list[str], mm) -> None:
    qr = quality_rows(con, year, programs)
    if not qr:
        rep.notes.append("Quality has not been measured for this run (no quality_rates table).")
    else:
        out = []
        for r in qr:
            h = rate_hidden(r["denominator"], r["numerator"])
            out.append([r["measure_id"], HIDDEN if h else count(r["denominator"]),
                        HIDDEN if h else count(r["numerator"]), HIDDEN if h else pct(r["rate"])])
        rep.tables.append(Table("quality", "Quality measure rates (program)", ["measure", "denominator", "numerator", "rate"],
                                out, note="A rate is hidden when its denominator, numerator or the difference "
                                          "is a count from 1 to 10."))
    if has(con, "care_gaps"):
        g = of_year(con.table("care_gaps"), year)
        g = g.filter(g.program_id.isin(programs)).semi_join(mm.select("person_id").distinct(), "person_id")
        gr = rows(g.group_by("gap_type").aggregate(members=g.person_id.nunique()).order_by("gap_type"))
        hidden, tot_hidden = suppress_columns(gr, ["members"])
        out = [[r["gap_type"], HIDDEN if (i, "members") in hidden else count(r["members"])] for i, r in enumerate(gr)]
        rep.tables.append(Table("care_gaps", "Members with an open care gap", ["gap", "members"], out,
                                note="A member with two gaps counts under each; there is no total row."))


def _value_payment(con, rep: Report, year: int, org: str, programs: list[str]) -> None:
    if not has(con, "value_payment_invoices"):
        rep.notes.append("No Value Payment invoices in this run (payments stage not run).")
        return
    inv = of_year(con.table("value_payment_invoices"), year)
    inv = rows(inv.filter(inv.employer_id == org).group_by(["month", "quarter"]).aggregate(
        member_months=inv.member_months.sum(), pmpm_cents=inv.pmpm_cents.max(), amount_cents=inv.amount_cents.sum())
        .order_by("month"))
    hidden, tot_hidden = suppress_columns(inv, ["member_months"])
    out = []
    for i, r in enumerate(inv):
        h = (i, "member_months") in hidden
        out.append([month_label(r["month"]), r["quarter"], HIDDEN if h else count(r["member_months"]),
                    usd(r["pmpm_cents"]), HIDDEN if h else usd(r["amount_cents"])])
    total = sum(int(r["amount_cents"]) for r in inv)
    show = "member_months" not in tot_hidden
    out.append(["Total", "", count(sum(int(r["member_months"]) for r in inv)) if show else HIDDEN, "",
                usd(total) if show else HIDDEN])
    rep.tables.append(Table("value_payment_invoices", "Value Payment PMPM invoices",
                            ["month", "quarter", "member months", "PMPM", "amount"], out))
    rep.totals.append(("Value Payment invoiced", usd(total) if show else HIDDEN))
    if has(con, "value_payment_adjustments"):
        a = of_year(con.table("value_payment_adjustments"), year)
        ar = rows(a.filter(a.program_id.isin(programs)).order_by(["program_id", "quarter"]))
        rep.tables.append(Table("value_payment_adjustments", "Value Payment quarterly adjustments",
                                ["quarter", "program", "basis quarter", "target YTD", "actual YTD", "quality score",
                                 "factor", "PMPM"],
                                [[r["quarter"], r["program_id"], r["basis_quarter"] or "", usd(r["target_ytd_cents"]),
                                  usd(r["actual_ytd_cents"]), "" if r["quality_score"] is None else str(r["quality_score"]),
                                  factor(r["factor"]), usd(r["pmpm_cents"])] for r in ar],
                                note="The factor scales the base PMPM from cost against target and the quality score "
                                     "of the basis quarter (see docs/payments.md)."))


def factor(v) -> str:
    from decimal import ROUND_HALF_UP, Decimal
    return "" if v is None else str(Decimal(str(v)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def _settlement(con, rep: Report, year: int, org: str) -> None:
    if not has(con, "employer_statements"):
        rep.notes.append("The year has not been settled yet (no employer_statements).")
        return
    es = of_year(con.table("employer_statements"), year)
    es = es.filter(es.employer_id == org)
    latest = rows(es.order_by(ibis.desc("run_id")).limit(1).select("version"))
    if not latest:
        return
    got = rows(es.filter(es.version == latest[0]["version"]).order_by("program_id"))
    out = []
    share = 0
    for r in got:
        small = is_small(r["members"]) or bool(r["suppressed"])
        out.append([r["program_id"], r["version"], HIDDEN if small else count(r["members"]),
                    HIDDEN if small else usd(r["target_cents"]), HIDDEN if small else usd(r["actual_cents"]),
                    HIDDEN if small or r["gross_cents"] is None else usd(r["gross_cents"]), usd(r["aco_share_cents"])])
        share += int(r["aco_share_cents"] or 0)
    rep.tables.append(Table("settlement_share", "Year-end settlement share",
                            ["program", "version", "members", "target", "actual", "gross result", "ACO share"], out,
                            note="The ACO share is this employer's part of the program's net settlement."))
    rep.totals.append(("Settlement share", usd(share)))
