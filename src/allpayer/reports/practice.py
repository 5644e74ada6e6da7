"""Practice scorecard: attributed panel, cost vs target, quality vs benchmark, monthly CPR, PHM and
Value Payment pass-through (and FPP where the practice is a hospital) payments as the ledger
posts them, attribution adds and drops with reasons, and the practice's disputed attributions. A
provider report: its own patients are named by member id (for outreach); it is not suppressed."""

from __future__ import annotations

from allpayer.reports import charts, disputes
from allpayer.reports.base import (Chart, Period, Report, ReportError, Table, as_period, count, has, in_period, of_year,
                                   require, rows, rows_by, usd, table)
from allpayer.reports.employer import quality_rows, rate_text
from allpayer.reports.panel import add_panel_and_cost, add_payments


def practices(con, year: int) -> list[str]:
    a = of_year(table(con, "attribution"), year)
    a = a.filter(a.attributed & a.practice_id.notnull())
    return [r["practice_id"] for r in rows(a.select("practice_id").distinct().order_by("practice_id"))]


def build(con, org: str, period: Period | int, run_id: str, store=None) -> Report:
    require(con, "attribution", "tcoc_member_month", "targets")
    period = as_period(period)
    year = period.year
    def names():
        a = of_year(table(con, "attribution"), year)
        return a.filter(a.practice_id.notnull()).group_by("practice_id").aggregate(practice_name=a.practice_name.max())

    named = rows_by(names, "practice_id", org, key=("practice names", year))
    if not named:
        raise ReportError(f"unknown practice {org!r} in {year}")
    rep = Report(kind="practice", org=org, year=year, run_id=run_id, period=period,
                 title=f"Practice scorecard: {named[0]['practice_name'] or org} ({org}), {period.words}",
                 subtitle=f"Attributed panel, cost, quality, payments and attribution changes. Run {run_id}.")
    tot = add_panel_and_cost(con, rep, period, "practice_id", org, "this practice")
    pay = add_payments(con, rep, period, practice_id=org, hospital_id=org)
    rep.totals = [("Attributed members (distinct persons)", count(tot["persons"])),
                  ("Attributed member months", count(tot["member_months"])),
                  ("TCOC paid (FFS basis)", usd(tot["cost"])), ("TCOC target", usd(tot["target"])),
                  *[(f"{k} payments", usd(v)) for k, v in pay.items()],
                  ("Total payments", usd(sum(pay.values())))]
    _quality(con, rep, year, tot["programs"], org)
    if not period.is_year:
        rep.notes.append(f"Quality and care gaps are measured over the performance year {year}, not the period.")
    _changes(con, rep, period, org)
    if has(con, "care_gaps"):
        def gaps():
            g = of_year(table(con, "care_gaps"), year)
            return g.group_by(["practice_id", "gap_type"]).aggregate(members=g.person_id.nunique())

        gr = rows_by(gaps, "practice_id", org, ["gap_type"], key=("practice gaps", year))
        rep.tables.append(Table("care_gaps", "Care gaps in the panel (open)", ["gap", "members"],
                                [[r["gap_type"], count(r["members"])] for r in gr],
                                note="The named list for outreach is the care_gaps table (allpayer export care_gaps)."))
    if store is not None:
        ds = disputes.for_practice(store, org)
        rep.tables.append(Table("attribution_disputes", "Disputed attributions",
                                ["dispute", "program", "member", "month", "reason", "status", "flagged at"],
                                [[d["dispute_id"], d["program_id"], d["member_id"], d["month"], d["reason"], d["status"],
                                  d["flagged_at"]] for d in ds]))
    rep.notes.append("To dispute an attribution: allpayer dispute --db FILE --program ID --member ID --month YYYY-MM "
                     f"--practice {org} --reason TEXT (recorded in the store's attribution_disputes table).")
    rep.provenance = [("run_id", run_id), ("programs", ", ".join(tot["programs"])),
                      ("tables", "attribution, attribution_changes, tcoc_member_month, targets, cpr_payments, "
                                 "phm_payments, value_payment_pass_through, cpr_quality_bonus, pay_for_improvement, "
                                 "fpp_hospital_payments, quality_rates")]
    return rep


def _quality(con, rep: Report, year: int, programs: list[str], org: str) -> None:
    mine = quality_rows(con, year, programs, level="practice", level_ids=[org])
    if not mine:
        rep.notes.append("Quality has not been measured for this practice in this run.")
        return
    bench = {(r["program_id"], r["measure_id"]): r for r in quality_rows(con, year, programs, level="program")}
    out, labels, mine_v, bench_v = [], [], [], []
    for r in mine:
        b = bench.get((r["program_id"], r["measure_id"]))
        out.append([r["measure_id"], r["program_id"], count(r["denominator"]), count(r["numerator"]), rate_text(r),
                    rate_text(b) if b else ""])
        labels.append(r["measure_id"])
        mine_v.append(float(r["rate"]) * 100 if r["rate"] is not None else None)
        bench_v.append(float(b["rate"]) * 100 if b and b["rate"] is not None else None)
    rep.tables.append(Table("quality", "Quality vs benchmark", ["measure", "program", "denominator", "numerator",
                                                                "practice rate", "program rate (benchmark)"], out))
    rep.charts.append(Chart("quality_vs_benchmark", "Quality vs benchmark", charts.bar_chart(
        "Quality vs benchmark", labels, {"practice (%)": mine_v, "program (%)": bench_v})))


def _changes(con, rep: Report, period: Period, org: str) -> None:
    if not has(con, "attribution_changes"):
        return
    cols = ["month", "program_id", "member_id", "change", "reason", "from_practice_id", "to_practice_id", "step"]
    order = ["month", "program_id", "member_id", "change", "from_practice_id", "to_practice_id"]

    def changes(side):
        c = in_period(table(con, "attribution_changes"), period)
        return c.filter(c[side].notnull()).select(*cols)

    # a change into the practice and one out of it, each split by practice (once for all in a batch)
    into = rows_by(lambda: changes("to_practice_id"), "to_practice_id", org, order, key=("changes in", period))
    out_of = rows_by(lambda: changes("from_practice_id"), "from_practice_id", org, order, key=("changes out", period))
    got = sorted(into + [r for r in out_of if r["to_practice_id"] != org],
                 key=lambda r: tuple("" if r[k] is None else str(r[k]) for k in order))
    out = [[r["month"].strftime("%Y-%m"), r["program_id"], r["member_id"], r["change"], r["reason"] or "",
            r["from_practice_id"] or "", r["to_practice_id"] or "", r["step"] or ""] for r in got]
    adds = sum(1 for r in got if r["to_practice_id"] == org)
    drops = sum(1 for r in got if r["from_practice_id"] == org)
    rep.tables.append(Table("attribution_changes", "Attribution adds and drops",
                            ["month", "program", "member", "change", "reason", "from practice", "to practice", "step"],
                            out, note=f"{adds} added to this practice, {drops} left it."))
