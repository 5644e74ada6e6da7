"""Payer settlement statement: every line of the payer's settlement for the year, with the run
ids, terms version and paid-through date needed to reproduce it, and cost against target by month."""

from __future__ import annotations

import json
from decimal import Decimal

import ibis

from allpayer.reports import charts
from allpayer.reports.base import (Chart, Period, Report, ReportError, Table, as_period, count, high_cost_threshold,
                                   month_label, of_year, pct, pmpm_cents, require, rows, table, usd)


def payers(con, year: int) -> list[str]:
    s = of_year(table(con, "settlement_statements"), year)
    return [r["payer"] for r in rows(s.select("payer").distinct().order_by("payer"))]


def build(con, org: str, period: Period | int, run_id: str) -> Report:
    period = as_period(period)
    period.year_only("a payer settlement statement")
    year = period.year
    require(con, "settlement_statements", "settlement_lines")
    st = of_year(table(con, "settlement_statements"), year)
    st = st.filter(st.payer == org)
    latest = rows(st.order_by(ibis.desc("run_id")).limit(1).select("version"))
    if not latest:
        raise ReportError(f"no settlement for payer {org!r} in {year}; settled payers: {', '.join(payers(con, year))}")
    version = latest[0]["version"]
    stmts = rows(st.filter(st.version == version).order_by("program_id"))
    rep = Report(kind="payer", org=org, year=year, run_id=run_id,
                 title=f"Settlement statement: {org}, performance year {year} ({version})",
                 subtitle=f"Every line of the settlement, as published by run {stmts[0]['run_id']}.")
    ln = of_year(table(con, "settlement_lines"), year)
    total_net = 0
    for s in stmts:
        pid = s["program_id"]
        lines = rows(ln.filter((ln.program_id == pid) & (ln.version == version)).order_by("line_no"))
        rep.tables.append(Table(f"lines:{pid}", f"{pid}: settlement lines",
                                ["line", "id", "label", "amount", "rate", "term", "note"],
                                [[str(r["line_no"]), r["line_id"], r["label"], usd(r["amount_cents"]),
                                  "" if r["rate"] is None else str(r["rate"]), r["term"] or "", r["note"] or ""]
                                 for r in lines]))
        rep.totals += [(f"{pid} net settlement", usd(s["net_cents"])), (f"{pid} combined", usd(s["combined_cents"]))]
        total_net += int(s["net_cents"] or 0)
        rep.provenance += [(f"{pid} settlement run", s["run_id"]), (f"{pid} core run", s["core_run_id"] or ""),
                           (f"{pid} terms version", s["terms_version"] or ""),
                           (f"{pid} paid through", str(s["paid_through"] or ""))]
    rep.tables.insert(0, Table("statements", "Statement summary",
                               ["program", "member months", "target", "actual", "gross", "shared", "net",
                                "fixed payment performance", "combined", "quality"],
                               [[s["program_id"], count(s["member_months"]), usd(s["target_cents"]),
                                 usd(s["actual_cents"]), usd(s["gross_cents"]), usd(s["shared_cents"]),
                                 usd(s["net_cents"]), usd(s["fixed_payment_performance_cents"]),
                                 usd(s["combined_cents"]), s["quality_note"] or str(s["quality_score"] or "")]
                                for s in stmts]))
    rep.totals.insert(0, ("Net settlement, all programs", usd(total_net)))
    _pmpm_chart(con, rep, year, [s["program_id"] for s in stmts])
    _high_cost(con, rep, year, [s["program_id"] for s in stmts])
    runs = table(con, "runs")
    ids = sorted({s["run_id"] for s in stmts} | {s["core_run_id"] for s in stmts if s["core_run_id"]})
    for r in rows(runs.filter(runs.run_id.isin(ids)).order_by("seq")):
        rep.provenance.append((f"run {r['run_id']}", f"kind {r['kind']}, code {r['code_version']}, "
                                                      f"paid through {r['paid_through']}"))
    rep.notes.append(f"Reproduce: allpayer settle --db FILE --year {year} --version {version} on the snapshot whose "
                     f"core run is listed below gives these lines; allpayer runs show RUN_ID lists the inputs' hashes "
                     f"and terms versions.")
    return rep


def _pmpm_chart(con, rep: Report, year: int, programs: list[str]) -> None:
    mm = of_year(table(con, "tcoc_member_month"), year)
    mm = mm.filter(mm.program_id.isin(programs))
    cost = {r["month"]: r for r in rows(mm.group_by("month").aggregate(c=mm.ffs_paid_cents.sum(), n=mm.count()))}
    tg = of_year(table(con, "targets"), year)
    tg = tg.filter(tg.program_id.isin(programs))
    tgt = {r["month"]: r for r in rows(tg.group_by("month").aggregate(t=tg.target_cents.sum(), n=tg.member_months.sum()))}
    months = sorted(cost)
    out = []
    for m in months:
        c, t = cost[m], tgt.get(m, {"t": 0, "n": 0})
        out.append([month_label(m), count(c["n"]), usd(c["c"]), usd(pmpm_cents(c["c"], c["n"])), usd(t["t"]),
                    usd(pmpm_cents(t["t"] or 0, t["n"] or 0))])
    rep.tables.insert(1, Table("pmpm_by_month", "Cost and target by month",
                               ["month", "member months", "TCOC paid (FFS basis)", "PMPM actual", "target", "PMPM target"],
                               out))
    rep.charts.append(Chart("pmpm_vs_target", "PMPM vs target over time", charts.line_chart(
        "PMPM vs target over time", [month_label(m) for m in months],
        {"actual PMPM ($)": [(pmpm_cents(cost[m]["c"], cost[m]["n"]) or 0) / 100 for m in months],
         "target PMPM ($)": [(pmpm_cents(tgt[m]["t"] or 0, tgt[m]["n"] or 0) or 0) / 100 if m in tgt else None
                             for m in months]})))


def _high_cost(con, rep: Report, year: int, programs: list[str]) -> None:
    """Each program's high-cost claimants of the year (``high_cost_claimants``), in aggregate: how
    many members reached the run's threshold, their cost and its share of the program's cost."""
    threshold = high_cost_threshold(con, year)
    if threshold is None:
        return
    hc = of_year(table(con, "high_cost_claimants"), year, "year")
    hc = hc.filter(hc.program_id.isin(programs))
    got = {r["program_id"]: r for r in rows(hc.group_by("program_id").aggregate(
        n=hc.count(), cost=hc.cost_cents.sum(), program_cost=hc.program_cost_cents.max(),
        top=hc.cost_cents.max()).order_by("program_id"))}
    out = []
    for pid in programs:
        r = got.get(pid)
        if r is None:
            out.append([pid, usd(threshold), "0", usd(0), pct(0), "", ""])
            continue
        share = Decimal(int(r["cost"])) / Decimal(int(r["program_cost"])) if r["program_cost"] else None
        out.append([pid, usd(threshold), count(r["n"]), usd(r["cost"]), pct(share),
                     usd(pmpm_cents(int(r["cost"]), int(r["n"]))), usd(r["top"])])
    rep.tables.append(Table("high_cost_claimants", "High-cost claimants",
                            ["program", "threshold", "claimants", "their cost", "share of the program's cost",
                             "mean per claimant", "costliest claimant"], out,
                            note="Members whose cost in the performance year (FFS paid, before truncation) reached "
                                 "the run's threshold (allpayer run --high-cost-threshold); the members themselves "
                                 "are in the high_cost_claimants table and the API's /api/v1/tcoc/high-cost-claimants. "
                                 "The mean is rounded half-up to a cent."))
