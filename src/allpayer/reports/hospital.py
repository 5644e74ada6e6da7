"""Hospital report: monthly FPP against shadow claims, fixed payment performance by program, the
HSA's attributed panel and cost against target, and the hospital's share of the settlement
within its maximum risk limit."""

from __future__ import annotations

from allpayer.reports import charts
from allpayer.reports.base import (latest_version, Chart, Period, Report, ReportError, Table, as_period, count, has, in_period,
                                   month_label, of_year, pct, require, rows, rows_by, usd, table)
from allpayer.reports.panel import add_panel_and_cost, add_payments


def hospitals(con, year: int) -> list[str]:
    f = of_year(table(con, "fpp_hospital_payments"), year)
    return [r["hospital_id"] for r in rows(f.select("hospital_id").distinct().order_by("hospital_id"))]


def build(con, org: str, period: Period | int, run_id: str) -> Report:
    require(con, "fpp_hospital_payments", "shadow_claims", "fixed_payment_performance")
    period = as_period(period)
    year = period.year
    known = hospitals(con, year)
    if org not in known:
        raise ReportError(f"unknown hospital {org!r} in {year}; known: {', '.join(known)}")
    rep = Report(kind="hospital", org=org, year=year, run_id=run_id, period=period,
                 title=f"Hospital report: {org}, {period.words}",
                 subtitle=f"Fixed prospective payments, shadow claims, fixed payment performance and settlement. "
                          f"Run {run_id}.")
    pay = add_payments(con, rep, period, practice_id=None, hospital_id=org)
    sc = in_period(table(con, "shadow_claims"), period)
    shadow = {r["month"]: int(r["v"] or 0) for r in rows_by(sc.group_by(["hospital_id", "month"]).aggregate(
        v=sc.shadow_value_cents.sum()), "hospital_id", org)}
    fp = in_period(table(con, "fpp_hospital_payments"), period)
    fpp = {r["month"]: int(r["v"] or 0) for r in rows_by(fp.group_by(["hospital_id", "month"]).aggregate(
        v=fp.amount_cents.sum()), "hospital_id", org)}
    months = sorted(set(shadow) | set(fpp))
    rep.charts.insert(0, Chart("fpp_vs_shadow", "FPP vs shadow claims by month", charts.line_chart(
        "FPP vs shadow claims by month", [month_label(m) for m in months],
        {"FPP paid ($)": [fpp.get(m, 0) / 100 for m in months],
         "shadow claims ($)": [shadow.get(m, 0) / 100 for m in months]})))
    if not period.is_year:
        _period_performance(rep, fpp, shadow, year)
        hsa = _hsa(con, year, org)
        if hsa:
            tot = add_panel_and_cost(con, rep, period, "hsa", hsa, f"health service area {hsa}")
            rep.totals += [("HSA attributed member months", count(tot["member_months"])),
                           ("HSA TCOC paid (FFS basis)", usd(tot["cost"])), ("HSA TCOC target", usd(tot["target"]))]
        rep.provenance = [("run_id", run_id), ("period", period.label), ("health service area", hsa or ""),
                          ("tables", "fpp_hospital_payments, shadow_claims, attribution, tcoc_member_month, targets")]
        return rep
    perf = of_year(table(con, "fixed_payment_performance"), year)
    pr = rows_by(perf, "hospital_id", org, ["program_id"])
    out = [[r["program_id"], str(r["months"]), usd(r["fpp_paid_cents"]), usd(r["shadow_value_cents"]),
            usd(r["performance_cents"]), pct(r["drift"]), "yes" if r["rebase_flag"] else "no"] for r in pr]
    t_fpp = sum(int(r["fpp_paid_cents"]) for r in pr)
    t_sh = sum(int(r["shadow_value_cents"]) for r in pr)
    t_perf = sum(int(r["performance_cents"]) for r in pr)
    out.append(["Total", "", usd(t_fpp), usd(t_sh), usd(t_perf), "", ""])
    rep.tables.append(Table("fixed_payment_performance", "Fixed payment performance (FPP paid less shadow claims)",
                            ["program", "months", "FPP paid", "shadow claims value", "performance", "drift", "rebase flag"],
                            out))
    rep.totals = [("FPP paid", usd(t_fpp)), ("Shadow claims value", usd(t_sh)),
                  ("Fixed payment performance", usd(t_perf))]
    _settlement(con, rep, year, org)
    hsa = _hsa(con, year, org)
    if hsa:
        tot = add_panel_and_cost(con, rep, period, "hsa", hsa, f"health service area {hsa}")
        rep.totals += [("HSA attributed member months", count(tot["member_months"])),
                       ("HSA TCOC paid (FFS basis)", usd(tot["cost"])), ("HSA TCOC target", usd(tot["target"]))]
    rep.provenance = [("run_id", run_id), ("health service area", hsa or ""),
                      ("tables", "fpp_hospital_payments, shadow_claims, fixed_payment_performance, distribution, "
                                 "attribution, tcoc_member_month, targets")]
    return rep


def _period_performance(rep: Report, fpp: dict, shadow: dict, year: int) -> None:
    """Within a year: FPP paid less shadow claims value of the period's months (the annual fixed
    payment performance, its drift and rebase flag, and the settlement are in the year's report)."""
    t_fpp, t_sh = sum(fpp.values()), sum(shadow.values())
    rep.tables.append(Table("fixed_payment_performance", "FPP paid and shadow claims value in the period",
                            ["month", "FPP paid", "shadow claims value", "FPP less shadow"],
                            [[month_label(m), usd(fpp.get(m, 0)), usd(shadow.get(m, 0)),
                              usd(fpp.get(m, 0) - shadow.get(m, 0))] for m in sorted(set(fpp) | set(shadow))]
                            + [["Total", usd(t_fpp), usd(t_sh), usd(t_fpp - t_sh)]]))
    rep.totals = [("FPP paid", usd(t_fpp)), ("Shadow claims value", usd(t_sh)),
                  ("FPP paid less shadow claims", usd(t_fpp - t_sh))]
    rep.notes.append(f"Fixed payment performance by program (drift, rebase flag) and the share of settlement are "
                     f"annual: see the report for {year}.")


def _hsa(con, year: int, org: str) -> str | None:
    if not has(con, "distribution"):
        return None
    d = of_year(table(con, "distribution"), year)
    got = rows_by(d.filter(d.hsa.notnull()).group_by("participant_id").aggregate(hsa=d.hsa.min()), "participant_id",
                  org)
    return got[0]["hsa"] if got else None


def _settlement(con, rep: Report, year: int, org: str) -> None:
    if not has(con, "distribution"):
        rep.notes.append("The year has not been settled yet (no distribution table).")
        return
    d = of_year(table(con, "distribution"), year)
    mine = rows_by(d, "participant_id", org, ["program_id", "version", "run_id"])
    if not mine:
        rep.notes.append("This hospital has no row in the settlement distribution.")
        return
    got = latest_version(mine)
    out = [[r["program_id"], r["version"], str(r["share"]), usd(r["allocated_cents"]), usd(r["limit_cents"]),
            usd(r["final_cents"]), "yes" if r["at_limit"] else "no", usd(r["combined_cents"])] for r in got]
    final = sum(int(r["final_cents"] or 0) for r in got)
    out.append(["Total", "", "", "", "", usd(final), "", usd(sum(int(r["combined_cents"] or 0) for r in got))])
    rep.tables.append(Table("settlement_share", "Share of settlement within the maximum risk limit",
                            ["program", "version", "share", "allocated", "limit", "final", "at limit", "combined"], out,
                            note="final = the allocated share held within the limit (what is above the limit is "
                                 "reallocated); combined = final + fixed payment performance, for the programs "
                                 "whose terms add it (settlement.distribution.include_fixed_payment_performance)."))
    rep.totals.append(("Settlement share (final)", usd(final)))
