"""Employer report: one self-funded employer's own members only, small cells suppressed.

Contents (domain R11): attributed members and member months with opt-outs, cost (FFS basis)
against target by month and by category, utilization, quality and care-gap rates, the Value
Payment PMPM invoices and quarterly adjustments, and the employer's share of the settlement.
Members are those whose member month carries one of the employer's groups (`employer_group`).
Members who opted out of data sharing count in member months; their cost is the payer-supplied
total only (never itemized by category), and the report says TCOC is incomplete when they exist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

import ibis

from allpayer.reports import charts
from allpayer.reports.base import (latest_version, HIDDEN, Chart, Period, Report, ReportError, Table, as_period, count, has,
                                   high_cost_threshold, in_period, month_label, of_year, pct, pmpm_cents, require, rows,
                                   rows_by, usd, table)
from allpayer.reports.suppression import THRESHOLD, Constraint, is_small, suppress, suppress_columns

CATEGORIES = ("inpatient", "outpatient", "ed", "professional", "pharmacy", "other")
WELLNESS = (("awv", "Annual wellness visit (AWV)"), ("hedis_wcv", "Well-care visits ages 3-21 (WCV)"))


def employers(con) -> list[str]:
    eg = table(con, "employer_group")
    return [r["employer_id"] for r in rows(eg.select("employer_id").distinct().order_by("employer_id"))]


def joint_suppression(months: list[dict], invoices: list[dict], wellness: list[dict],
                      persons: int, claimants: int | None = None) -> set:
    """The counts of one employer report to hide, decided jointly across its tables.

    Keys: ``("mm", month)``, ``("opt", month)`` and their ``(.., "total")`` (members and cost by
    month); ``("inv", month)`` and ``("inv", "total")`` (invoiced member months); per wellness
    measure ``("wd", id)`` and ``("wn", id)`` (eligible, with a visit); ``("persons",)``; the
    high-cost claimants ``("hc",)`` when `claimants` is given.

    Counts of nested populations are tied by their difference, a count never printed but known
    from two printed ones: member months = opted-out + sharing ``("share", month)``; where a month's
    invoiced (attributed) member months are at most its member months, member months = invoiced +
    not invoiced ``("uninv", month)``; eligible = with a visit + without ``("wm", id)``. So a value
    hidden in one table is hidden, or kept from being derived, in the others, and no difference of
    two shown counts is a small count (persons = claimants + the rest ``("nonhc",)``). Hiding a
    never-printed difference costs nothing and leaves its two parts unknown together. The result
    also holds ``("invrow", month)`` for each invoice row whose member months are hidden.
    """
    values: dict = {("persons",): int(persons)}
    cons: list[Constraint] = []
    for col, key in (("member_months", "mm"), ("opt_out_mm", "opt")):
        for m in months:
            values[(key, m["month"])] = int(m[col] or 0)
        values[(key, "total")] = sum(int(m[col] or 0) for m in months)
        cons.append(((key, "total"), [(key, m["month"]) for m in months]))
    for m in months:
        values[("share", m["month"])] = values[("mm", m["month"])] - values[("opt", m["month"])]
        cons.append((("mm", m["month"]), [("opt", m["month"]), ("share", m["month"])]))
    for r in invoices:
        k, n = ("inv", r["month"]), int(r["member_months"] or 0)
        values[k] = n
        whole = values.get(("mm", r["month"]))
        if whole is not None and n <= whole:
            values[("uninv", r["month"])] = whole - n
            cons.append((("mm", r["month"]), [k, ("uninv", r["month"])]))
    if invoices:
        values[("inv", "total")] = sum(int(r["member_months"] or 0) for r in invoices)
        cons.append((("inv", "total"), [("inv", r["month"]) for r in invoices]))
    for w in wellness:
        i = w["measure_id"]
        values[("wd", i)], values[("wn", i)] = int(w["denominator"]), int(w["numerator"])
        values[("wm", i)] = int(w["denominator"]) - int(w["numerator"])
        cons.append((("wd", i), [("wn", i), ("wm", i)]))
    if claimants is not None:
        values[("hc",)], values[("nonhc",)] = int(claimants), int(persons) - int(claimants)
        cons.append((("persons",), [("hc",), ("nonhc",)]))
    hidden = suppress(values, cons)
    hidden |= {("invrow", r["month"]) for r in invoices if ("inv", r["month"]) in hidden}
    return hidden


def opted_out_suppression(opted: dict) -> set:
    """The opted-out members' cost to hide, decided over the year from `opted` (month -> the persons
    who opted out of data sharing that month): ``("optcost", "total")`` when the year's are from 1
    to 10 (the year's total is the cost of fewer than 11 people), and ``("optcost", month)`` for each
    month whose opted-out cost no report of a shorter period may show (`_of_period`). A month of 1
    to 10 such persons is hidden; where the year's total is shown, it less the shown months is the
    hidden months' cost, so while their persons together are from 1 to 10 the shown month with
    the fewest (but some) is hidden too. A quarter of 3 persons, then, never follows from the
    year's 15 less the other three quarters' 12."""
    everyone = set().union(*opted.values())
    held = {m for m, who in opted.items() if is_small(len(who))}
    if is_small(len(everyone)):
        return {("optcost", "total")} | {("optcost", m) for m in held}
    rest = sorted((m for m, who in opted.items() if who and m not in held), key=lambda m: (len(opted[m]), m))
    while rest and is_small(len(set().union(*(opted[m] for m in held)))):
        held.add(rest.pop(0))
    return {("optcost", m) for m in held}


def _valuation(con, year: int) -> dt.date | None:
    """The valuation month of `year`'s completion factors: that of the paid-through date of the run
    that wrote them (a later run, of another year, is paid through a later date)."""
    from allpayer.pipeline import valuation_date

    cf = of_year(table(con, "completion_factors"), year)
    r = table(con, "runs")
    got = rows(r.filter(r.paid_through.notnull() & r.run_id.isin(cf.select("run_id").distinct().run_id))
               .order_by(ibis.desc(r.seq)).limit(1).select("paid_through"))
    if not got:
        return None
    return valuation_date(got[0]["paid_through"]).replace(day=1)


def completed(con, year: int, cost_by: list[dict]) -> tuple[dict, dt.date | None, bool]:
    """Completed estimate of paid cost by month: paid x the payer's cumulative development factor at
    the month's lag to the valuation month (``completion_factors``), rounded half-up to a cent per
    payer and month. Returns ({month: cents}, valuation month, whether any month is still developing);
    ({}, None, False) without completion factors."""
    if not has(con, "completion_factors"):
        return {}, None, False
    vmonth = _valuation(con, year)
    if vmonth is None:
        return {}, None, False
    cf = of_year(table(con, "completion_factors"), year)
    cdf = {(r["payer"], int(r["lag"])): Decimal(str(r["cumulative_development_factor"]))
           for r in rows(cf.select("payer", "lag", "cumulative_development_factor"))}
    if not cdf:
        return {}, None, False
    max_lag = max(lag for _, lag in cdf)
    out: dict = {}
    developing = False
    for r in cost_by:
        m = r["month"]
        lag = max(0, min((vmonth.year - m.year) * 12 + vmonth.month - m.month, max_lag))
        f = cdf.get((r["payer"], lag), Decimal(1))
        developing |= f != 1
        est = int((Decimal(int(r["cost_cents"] or 0)) * f).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        out[m] = out.get(m, 0) + est
    return out, vmonth, developing


def employer_member_months(con, period: Period):
    """The period's `tcoc_member_month` rows with the employer of their group that month
    (`employer_id`: the group's ``employer_group`` row in force on the month's first day,
    `allpayer.core.programs.employer_of_group_months`); a month no row covers has no employer and
    is in no employer's report."""
    from allpayer.core.programs import employer_of_group_months

    mm = in_period(table(con, "tcoc_member_month"), period)
    e = employer_of_group_months(table(con, "employer_group"), mm.select("group_id", "month"))
    return mm.join(e, ["group_id", "month"])


def programs_alone(con, year: int, own: dict[str, int]) -> set[str]:
    """The programs of `own` (program -> the employer's member months in `year`) whose member months
    of the year are all the employer's: only there are the program's own figures (its quality
    rates, its Value Payment target and actual) the employer's, and the program's less the
    employer's never another's."""
    t = of_year(table(con, "tcoc_member_month"), year)
    everyone = {r["program_id"]: int(r["n"]) for r in rows(
        lambda: t.group_by("program_id").aggregate(n=t.count()), key=("program member months", year))}
    return {p for p, n in own.items() if n and everyone.get(p) == n}


def wellness_rows(con, year: int, org: str, sharing) -> list[dict]:
    """AWV and WCV for the employer's members who share data (`sharing`: employer_id, program_id,
    person_id): eligible (in the denominator, not excluded) and with a visit, counted per person
    over the programs the person is the employer's member in."""
    if not has(con, "quality_measure_results"):
        return []
    q = of_year(table(con, "quality_measure_results"), year)
    q = q.filter(q.measure_id.isin([i for i, _ in WELLNESS]))
    q = q.join(sharing, ["program_id", "person_id"])
    elig = q.in_denominator.fill_null(False) & ~q.excluded.fill_null(False)
    per = q.group_by(["employer_id", "measure_id", "person_id"]).aggregate(
        e=elig.max(), n=(elig & q.in_numerator.fill_null(False)).max())
    got = {r["measure_id"]: r for r in rows_by(per.group_by(["employer_id", "measure_id"]).aggregate(
        denominator=per.e.cast("int64").sum(), numerator=per.n.cast("int64").sum()), "employer_id", org)}
    return [{"measure_id": i, "label": label, "denominator": int(got[i]["denominator"] or 0),
             "numerator": int(got[i]["numerator"] or 0)} for i, label in WELLNESS if i in got]


@dataclass
class Disclosure:
    """What one employer's report for a period may show, decided once for every channel that shows
    an employer its figures: the report, and the API and dashboard (`allpayer.api.tenancy`).

    `monthly`: the employer's member months and cost per (month, program, payer), the category
    columns (``<category>_cents``) of members who share data only; `months`: member months and
    opted-out member months per month; `invoices`: invoiced member months and amounts per month;
    `hidden`: the keys `joint_suppression` hides (``("mm", month)``, ``("inv", "total")``,
    ``("invrow", month)``, ...) and those of the opted-out cost (`opted_out_suppression`), both
    decided over the year and applied to the period (`_of_period`). `categories` is the cost by
    category of members who share data, `opt_out_cost` the payer-supplied total of those who opted
    out, `opt_out_hidden` whether that total is hidden, and `hidden_categories` the category hidden
    with it (the year's smallest with any cost, in every period that hides the total), or the total
    less the rest would be the cost of fewer than 11 people. `alone` holds the
    programs whose members in the year are all the employer's (`programs_alone`): a program-wide
    figure is shown only for those. `show_totals` is whether the period's member months, and with
    them every cost total, are shown."""

    org: str
    period: Period
    monthly: list[dict]
    months: list[dict]
    persons: dict
    invoices: list[dict]
    wellness: list[dict]
    high_cost: dict | None
    hidden: set
    categories: dict[str, int]
    opt_out_cost: int
    opt_out_hidden: bool
    hidden_categories: set[str]
    alone: set[str] = field(default_factory=set)
    sharing: object = field(repr=False, default=None)  # Ibis: employer_id, program_id, person_id of members sharing data

    @property
    def programs(self) -> list[str]:
        return sorted({r["program_id"] for r in self.monthly})

    @property
    def show_totals(self) -> bool:
        return ("mm", "total") not in self.hidden

    @property
    def member_months(self) -> int:
        return sum(m["member_months"] for m in self.months)

    @property
    def cost_cents(self) -> int:
        return sum(m["cost_cents"] for m in self.months)

    def invoice_shown(self, month) -> bool:
        """Whether the report shows the invoiced member months (and amount) of `month` (a month it
        has no invoice row for is not shown)."""
        return any(r["month"] == month for r in self.invoices) and ("invrow", month) not in self.hidden

    @property
    def invoice_total_shown(self) -> bool:
        return ("inv", "total") not in self.hidden


def disclosure(con, org: str, period: Period | int) -> Disclosure:
    """The employer's counts for `period` and what of them its report shows (`Disclosure`): the one
    place the employer's small-cell decisions are made. Raises `ReportError` for an unknown
    employer or one without member months in the period.

    The months are decided once, over the year (`joint_suppression`), for the report of every
    period: a quarter, a month or a year to date shows a month's member months only where the
    year's report does (`_of_period`), and the opted-out members' cost and the category hidden with
    it likewise follow the year's decisions, so that no month hidden in one period's report follows
    from another's."""
    require(con, "employer_group", "tcoc_member_month")
    period = as_period(period)
    year = period.year
    mm = employer_member_months(con, period)
    in_year = mm if period.is_year else employer_member_months(con, Period(year))
    out = in_year.data_sharing_opt_out.fill_null(False)
    itemized = {f"{c}_cents": ibis.ifelse(out, 0, in_year[f"{c}_ffs_paid_cents"]).sum() for c in CATEGORIES}
    payer = in_year.payer if "payer" in in_year.columns else ibis.literal("")
    monthly_year = rows_by(in_year.group_by(["employer_id", "program_id", "month", payer.name("payer")]).aggregate(
        member_months=in_year.count(), opt_out_mm=out.cast("int64").sum(), cost_cents=in_year.ffs_paid_cents.sum(),
        opt_out_cost_cents=ibis.ifelse(out, in_year.ffs_paid_cents, 0).sum(), **itemized,
    ), "employer_id", org, ["month", "program_id", "payer"])
    monthly = [r for r in monthly_year if period.contains(r["month"])]
    opt = mm.data_sharing_opt_out.fill_null(False)
    if not monthly:
        if org not in employers(con):
            raise ReportError(f"unknown employer {org!r}; known: {', '.join(employers(con))}")
        raise ReportError(f"employer {org} has no member months in {period.label}")
    persons = rows_by(mm.group_by("employer_id").aggregate(
        n=mm.person_id.nunique(), opted=mm.person_id.nunique(where=opt)), "employer_id", org)[0]
    by_month: dict = {}
    for r in monthly_year:
        m = by_month.setdefault(r["month"], {"month": r["month"], "member_months": 0, "opt_out_mm": 0, "cost_cents": 0})
        m["member_months"] += int(r["member_months"])
        m["opt_out_mm"] += int(r["opt_out_mm"] or 0)
        m["cost_cents"] += int(r["cost_cents"] or 0)
    months_year = [by_month[k] for k in sorted(by_month)]
    own: dict = {}
    for r in monthly_year:
        own[r["program_id"]] = own.get(r["program_id"], 0) + int(r["member_months"])
    invoices_year = _invoice_rows(con, Period(year), org)
    sharing = mm.filter(~opt).select("employer_id", "program_id", "person_id").distinct()
    wellness = wellness_rows(con, year, org, sharing)
    high_cost = high_cost_rows(con, mm, year, org) if period.is_year else None
    opted: dict = {}
    for r in rows_by(in_year.filter(out).select("employer_id", "month", "person_id").distinct(), "employer_id", org):
        opted.setdefault(r["month"], set()).add(r["person_id"])
    hidden = _of_period(joint_suppression(months_year, invoices_year, wellness, persons["n"],
                                          None if high_cost is None else high_cost["claimants"])
                        | opted_out_suppression(opted), period)
    months = [m for m in months_year if period.contains(m["month"])]
    invoices = [r for r in invoices_year if period.contains(r["month"])]
    # cost by category (members sharing data) and the payer-supplied total of those who opted out
    cat = {c: sum(int(r[f"{c}_cents"] or 0) for r in monthly) for c in CATEGORIES}
    opt_cost = sum(int(r["opt_out_cost_cents"] or 0) for r in monthly)
    opt_hidden = ("optcost", "total") in hidden
    # with the opted-out total hidden, a category is hidden too, or the total less the categories
    # would give the cost of fewer than 11 people: the year's smallest with any cost, the same in
    # every period, or one shown in a period that hides another could be had by subtraction (the
    # year's less the other quarters'), and the hidden total with it. Not a zero category: "other"
    # is nearly always zero, so hiding it would leave the total less the rest as the opted-out cost
    # (zero is no complement, as in `suppress`).
    year_cat = {c: sum(int(r[f"{c}_cents"] or 0) for r in monthly_year) for c in CATEGORIES}
    paid = [c for c in year_cat if year_cat[c] > 0]
    complement = {min(paid, key=lambda c: (year_cat[c], c))} if opt_hidden and paid else set()
    return Disclosure(org=org, period=period, monthly=monthly, months=months, persons=persons, invoices=invoices,
                      wellness=wellness, high_cost=high_cost, hidden=hidden, categories=cat, opt_out_cost=opt_cost,
                      opt_out_hidden=opt_hidden, hidden_categories=complement,
                      alone=programs_alone(con, year, own), sharing=sharing)


def _of_period(hidden: set, period: Period) -> set:
    """The year's decisions (`joint_suppression` of the year's months, `opted_out_suppression`) as
    `period`'s report applies them: its months as in the year's report, and its totals
    (``(.., "total")``, the opted-out cost's among them) only where every month they add up is
    shown, so that a total never tells more than the year's report; its
    distinct persons go with its member months (in a month, nearly the same count). The year's
    report hides January's 5 member months and February's 12 with them: February's report, or the
    first quarter's total, would otherwise give February, and the year's total then January."""
    if period.is_year:
        return hidden
    out = {k for k in hidden if k[-1] != "total"}
    out |= {(key, "total") for key in ("mm", "opt", "inv", "optcost") if any((key, m) in hidden for m in period.months())}
    if ("mm", "total") in out:
        out.add(("persons",))
    return out


def build(con, org: str, period: Period | int, run_id: str) -> Report:
    require(con, "employer_group", "tcoc_member_month", "targets")
    period = as_period(period)
    year = period.year
    eg = table(con, "employer_group")
    name_rows = [r for r in rows(eg.select("employer_id", "employer_name").distinct().order_by(
        ["employer_id", "employer_name"])) if r["employer_id"] == org]
    if not name_rows:
        raise ReportError(f"unknown employer {org!r}; known: {', '.join(employers(con))}")
    name = name_rows[0]["employer_name"]
    shown = disclosure(con, org, period)
    monthly, persons, programs = shown.monthly, shown.persons, shown.programs

    # target: the program's target for the month, in proportion to the employer's member months
    tg = in_period(table(con, "targets"), period)
    tg = tg.group_by(["program_id", "month"]).aggregate(target_cents=tg.target_cents.sum(),
                                                        member_months=tg.member_months.sum())
    tmap = {(r["program_id"], r["month"]): r for r in rows(tg.order_by(["program_id", "month"]))}
    by_month = {m["month"]: {**m, "target_cents": 0} for m in shown.months}
    by_prog_month: dict = {}
    for r in monthly:  # target shares per (program, month), over the employer's member months of both payers
        k = (r["program_id"], r["month"])
        by_prog_month[k] = by_prog_month.get(k, 0) + int(r["member_months"])
    for (pid, month), n in by_prog_month.items():
        t = tmap.get((pid, month))
        if t and t["member_months"]:
            by_month[month]["target_cents"] += int((t["target_cents"] * n * 2 + t["member_months"])
                                                   // (2 * t["member_months"]))
    months = [by_month[k] for k in sorted(by_month)]
    done, vmonth, developing = completed(con, year, monthly)
    invoices, wellness, high_cost, hidden = shown.invoices, shown.wellness, shown.high_cost, shown.hidden

    tot_mm = sum(m["member_months"] for m in months)
    tot_cost = sum(m["cost_cents"] for m in months)
    tot_target = sum(m["target_cents"] for m in months)
    tot_opt_mm = sum(m["opt_out_mm"] for m in months)
    tot_done = sum(done.values()) if done else None

    rep = Report(kind="employer", org=org, year=year, run_id=run_id, period=period,
                 title=f"Employer report: {name} ({org}), {period.words}",
                 subtitle=f"Self-funded group members only; counts from 1 to {THRESHOLD - 1} are {HIDDEN}, "
                          f"and so are further cells where totals, in this table or another, would reveal them. "
                          f"Run {run_id}.")
    show_mm = shown.show_totals
    rep.totals = [
        ("Members (distinct persons)", HIDDEN if ("persons",) in hidden else count(persons["n"])),
        ("Member months", count(tot_mm) if show_mm else HIDDEN),
        ("TCOC paid (FFS basis)", usd(tot_cost) if show_mm else HIDDEN),
        ("TCOC target", usd(tot_target) if show_mm else HIDDEN),
    ]
    if tot_done is not None:
        rep.totals.append(("TCOC completed estimate (IBNR)", usd(tot_done) if show_mm else HIDDEN))

    mrows = []
    for m in months:
        h = ("mm", m["month"]) in hidden
        row = [month_label(m["month"]),
               HIDDEN if h else count(m["member_months"]),
               HIDDEN if ("opt", m["month"]) in hidden else count(m["opt_out_mm"]),
               HIDDEN if h else usd(m["cost_cents"])]
        if done:
            row.append(HIDDEN if h else usd(done.get(m["month"], m["cost_cents"])))
        row += [HIDDEN if h else usd(pmpm_cents(m["cost_cents"], m["member_months"])),
                HIDDEN if h else usd(pmpm_cents(m["target_cents"], m["member_months"]))]
        mrows.append(row)
    trow = ["Total", count(tot_mm) if show_mm else HIDDEN,
            HIDDEN if ("opt", "total") in hidden else count(tot_opt_mm),
            usd(tot_cost) if show_mm else HIDDEN]
    if done:
        trow.append(usd(tot_done) if show_mm else HIDDEN)
    trow += [usd(pmpm_cents(tot_cost, tot_mm)) if show_mm else HIDDEN,
             usd(pmpm_cents(tot_target, tot_mm)) if show_mm else HIDDEN]
    mrows.append(trow)
    cols = ["month", "member months", "member months opted out of data sharing", "TCOC paid (FFS basis)"]
    if done:
        cols.append("TCOC completed estimate")
    cols += ["PMPM actual", "PMPM target"]
    note = ("Target: the program's target for the month in proportion to this employer's member months (rounded "
            "half-up to a cent). Cost is as paid through the run's paid-through date. ")
    if done:
        note += (f"The completed estimate multiplies each month's paid cost by the payer's cumulative development "
                 f"factor at its lag to the valuation month {month_label(vmonth)} (completion_factors), rounded "
                 f"half-up to a cent per payer and month; PMPM is on the paid cost.")
    else:
        note += "No completion factors in this run: cost is not completed for claims still to come (IBNR)."
    rep.tables.append(Table("members_and_cost_by_month", "Members, cost and target by month", cols, mrows, note=note))
    if developing:
        rep.notes.append(f"TCOC is incomplete for claims incurred but not yet paid (IBNR): claims are paid through "
                         f"{month_label(vmonth)}, and recent months are still developing. The completed estimate "
                         f"({usd(tot_done) if show_mm else HIDDEN}) applies the run's completion factors.")
    labels = [month_label(m["month"]) for m in months]
    rep.charts.append(Chart("pmpm_vs_target", "PMPM vs target over time", charts.line_chart(
        "PMPM vs target over time", labels,
        {"actual PMPM ($)": [None if ("mm", m["month"]) in hidden else pmpm_cents(m["cost_cents"], m["member_months"]) / 100
                             for m in months],
         "target PMPM ($)": [None if ("mm", m["month"]) in hidden else pmpm_cents(m["target_cents"], m["member_months"]) / 100
                             for m in months]})))

    # cost by category (members sharing data) and the payer-supplied total of those who opted out
    cat, opt_cost, opt_hidden = shown.categories, shown.opt_out_cost, shown.opt_out_hidden
    crows = [[c, usd(v) if show_mm and c not in shown.hidden_categories else HIDDEN,
              usd(pmpm_cents(v, tot_mm)) if show_mm and c not in shown.hidden_categories else HIDDEN]
             for c, v in cat.items()]
    crows.append(["members who opted out of data sharing (payer-supplied total, not itemized)",
                  HIDDEN if opt_hidden or not show_mm else usd(opt_cost),
                  HIDDEN if opt_hidden or not show_mm else usd(pmpm_cents(opt_cost, tot_mm))])
    crows.append(["Total", usd(tot_cost) if show_mm else HIDDEN, usd(pmpm_cents(tot_cost, tot_mm)) if show_mm else HIDDEN])
    rep.tables.append(Table("cost_by_category", "Cost by category", ["category", "TCOC paid (FFS basis)", "PMPM"], crows,
                            note="The opted-out members' total is hidden when fewer than 11 members opted out in the year "
                                 "(in a shorter period, also when one of its months is hidden in the year's decisions), "
                                 "and then so is the year's smallest category with any cost, so that neither follows "
                                 "from the total."))
    if persons["opted"]:
        rep.notes.append("TCOC is incomplete: members who opted out of data sharing count in the member months, "
                         "but their cost enters only as the payer-supplied total and is not itemized by category "
                         "or used for care gaps and wellness rates.")
    if not period.is_year:
        rep.notes.append(f"Utilization, quality, wellness and care gaps are measured over the performance year "
                         f"{year}, not the period; the settlement share is shown in the report for {year}.")

    if period.is_year:
        _utilization(con, rep, year, programs, tot_mm, show_mm)
    if high_cost is not None:
        _high_cost(rep, high_cost, tot_cost, hidden, show_mm)
    _wellness(rep, wellness, hidden)
    _quality(con, rep, year, programs, org, shown.sharing, shown.alone)
    _value_payment(con, rep, period, org, programs, invoices, hidden, shown.alone)
    if period.is_year:
        _settlement(con, rep, year, org)
    rep.provenance = [("run_id", run_id), ("period", period.label), ("programs", ", ".join(programs)),
                      ("tables", "tcoc_member_month, targets, employer_group, utilization, value_payment_invoices, "
                                 "value_payment_adjustments, employer_statements, quality_rates, "
                                 "quality_measure_results, care_gaps, completion_factors, high_cost_claimants")]
    return rep


def high_cost_rows(con, mm, year: int, org: str) -> dict | None:
    """The employer's high-cost claimants of `year`: its members whose cost in the employer's
    member months of the year (FFS paid, every program) reached the run's high-cost threshold
    (`high_cost_threshold`). {threshold, claimants, cost}; None without a threshold."""
    threshold = high_cost_threshold(con, year)
    if threshold is None:
        return None
    per = mm.group_by(["employer_id", "person_id"]).aggregate(c=mm.ffs_paid_cents.sum())
    hc = per.filter(per.c >= threshold)
    got = rows_by(hc.group_by("employer_id").aggregate(n=hc.count(), cost=hc.c.sum()), "employer_id", org,
                  key=("high cost", year, threshold))
    n, cost = (int(got[0]["n"]), int(got[0]["cost"])) if got else (0, 0)
    return {"threshold": threshold, "claimants": n, "cost": cost}


def _high_cost(rep: Report, hc: dict, total_cost: int, hidden: set, show_mm: bool) -> None:
    """Members whose year cost reached the run's high-cost threshold, in aggregate; a count from 1
    to 10 is hidden with everything computed from it (and so is all of it when the employer's total
    cost is hidden, which the share would reveal)."""
    n, cost = hc["claimants"], hc["cost"]
    shown = show_mm and ("hc",) not in hidden

    def cell(value: str) -> str:
        return value if shown else HIDDEN

    rep.tables.append(Table(
        "high_cost_claimants", "High-cost claimants",
        ["threshold (cost in the year)", "members", "their cost (FFS paid)", "share of the employer's cost",
         "mean per claimant"],
        [[usd(hc["threshold"]), cell(count(n)), cell(usd(cost)),
          cell(pct(Decimal(cost) / Decimal(total_cost)) if total_cost else ""),
          cell(usd(pmpm_cents(cost, n)) if n else "")]],
        note="Members of this employer whose cost in the employer's member months of the performance year (FFS "
             "paid, before truncation, members who opted out of data sharing included as the payer-supplied total) "
             "reached the run's high-cost threshold (allpayer run --high-cost-threshold). No member is named."))


def _wellness(rep: Report, wellness: list[dict], hidden: set) -> None:
    if not wellness:
        return
    out = []
    for w in wellness:
        i = w["measure_id"]
        h = ("wd", i) in hidden or ("wn", i) in hidden  # a rate shows both counts
        out.append([w["label"], HIDDEN if ("wd", i) in hidden else count(w["denominator"]),
                    HIDDEN if ("wn", i) in hidden else count(w["numerator"]),
                    HIDDEN if h or not w["denominator"] else pct(Decimal(w["numerator"]) / Decimal(w["denominator"]))])
    rep.tables.append(Table("wellness", "Annual wellness and well-care visit rates (this employer's members)",
                            ["measure", "denominator", "numerator", "rate"], out,
                            note="Members of this employer who share data, eligible for the measure in the "
                                 "performance year (continuously enrolled, not in hospice); numerator: with a "
                                 "visit. AWV applies to Medicare members, WCV to ages 3-21."))


def _utilization(con, rep: Report, year: int, programs: list[str], employer_mm: int, show_mm: bool) -> None:
    """Admissions, ED visits and readmissions of the employer's programs, where their members are
    all the employer's: a count from 1 to 10 is hidden with its rate, and every rate is hidden
    where the report hides the member months (`show_mm`), which events x 12,000 over the rate
    would give back."""
    if not has(con, "utilization"):
        return
    u = table(con, "utilization")
    u = u.filter(u.year == year)
    per = [r for r in rows(u.group_by("program_id").aggregate(
        mm=u.member_months.sum(), admissions=u.admissions.sum(), ed=u.ed_visits.sum(), readm=u.readmissions.sum())
        .order_by("program_id")) if r["program_id"] in programs]
    if not per or all(r["mm"] is None for r in per):
        return
    g = {k: sum(int(r[k] or 0) for r in per) for k in ("mm", "admissions", "ed", "readm")}
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
                    HIDDEN if small or not show_mm else "" if per_k is None else f"{per_k // 100}.{per_k % 100:02d}"])
    rep.tables.append(Table("utilization", "Utilization per 1,000 members per year", ["measure", "events", "per 1,000"], out,
                            note="A rate is hidden with its count from 1 to 10, and every rate where the member "
                                 "months are hidden (the events over the rate would give them)."))


def quality_rows(con, year: int, programs: list[str], level: str = "program", level_ids=None) -> list[dict]:
    if not has(con, "quality_rates"):
        return []
    order = ["program_id", "measure_id", "level_id"]

    def q():
        t = table(con, "quality_rates")
        t = t.filter((t.level == level) & (t.performance_year == year))
        return t.select("program_id", "measure_id", "level_id", "denominator", "numerator", "rate", "note")

    got = rows(lambda: q().order_by(order), key=("quality", year, level)) if level_ids is None or len(level_ids) != 1 \
        else rows_by(q, "level_id", list(level_ids)[0], order, key=("quality by", year, level))
    ids = None if level_ids is None else set(level_ids)
    return [r for r in got if r["program_id"] in programs and (ids is None or r["level_id"] in ids)]


def rate_hidden(denominator, numerator) -> bool:
    d, n = int(denominator or 0), int(numerator or 0)
    return d < THRESHOLD or is_small(n) or is_small(d - n)


def rate_text(r: dict) -> str:
    """A `quality_rows` row's rate as shown: the percentage, or, where the measure has no rate, why
    (``not reportable: redacted data`` for a measure whose claims were withheld under 42 CFR Part 2)."""
    if r["rate"] is None:
        return r.get("note") or "no rate"
    return pct(r["rate"])


def _shared_note(rep: Report, what: str, shared: list[str]) -> None:
    """Says which of the employer's programs a program-wide figure is left out for (`shared`: those
    with other members than the employer's, where the program's figure less the employer's own
    would be theirs)."""
    if shared:
        rep.notes.append(f"{what}: not shown for program {', '.join(shared)}, which also covers members other "
                         f"than this employer's (the program's figures less this employer's would be theirs).")


def _quality(con, rep: Report, year: int, programs: list[str], org: str, sharing, alone: set[str]) -> None:
    """The program quality rates of the employer's programs whose members are all its own (`alone`);
    for a program with other members its rates would be theirs with the employer's, and less the
    employer's wellness counts their own, so they are left out with a note."""
    qr = quality_rows(con, year, programs)
    if not qr:
        rep.notes.append("Quality has not been measured for this run (no quality_rates table).")
    else:
        _shared_note(rep, "Quality measure rates", sorted({r["program_id"] for r in qr} - alone))
        qr = [r for r in qr if r["program_id"] in alone]
    if qr:
        out = []
        for r in qr:
            h = rate_hidden(r["denominator"], r["numerator"])
            out.append([r["measure_id"], HIDDEN if h else count(r["denominator"]),
                        HIDDEN if h else count(r["numerator"]), HIDDEN if h else rate_text(r)])
        rep.tables.append(Table("quality", "Quality measure rates (program)", ["measure", "denominator", "numerator", "rate"],
                                out, note="A rate is hidden when its denominator, numerator or the difference "
                                          "is a count from 1 to 10."))
    if has(con, "care_gaps"):
        g = of_year(table(con, "care_gaps"), year)
        g = g.join(sharing, ["program_id", "person_id"])
        gr = rows_by(g.group_by(["employer_id", "gap_type"]).aggregate(members=g.person_id.nunique()), "employer_id",
                     org, ["gap_type"])
        hidden, tot_hidden = suppress_columns(gr, ["members"])
        out = [[r["gap_type"], HIDDEN if (i, "members") in hidden else count(r["members"])] for i, r in enumerate(gr)]
        rep.tables.append(Table("care_gaps", "Members with an open care gap", ["gap", "members"], out,
                                note="A member with two gaps counts under each; there is no total row."))


def _invoice_rows(con, period: Period, org: str) -> list[dict]:
    if not has(con, "value_payment_invoices"):
        return []
    inv = in_period(table(con, "value_payment_invoices"), period)
    return rows_by(inv.group_by(["employer_id", "month", "quarter"]).aggregate(
        member_months=inv.member_months.sum(), pmpm_cents=inv.pmpm_cents.max(), amount_cents=inv.amount_cents.sum()),
        "employer_id", org, ["month"])


def _value_payment(con, rep: Report, period: Period, org: str, programs: list[str], inv: list[dict],
                   hidden: set, alone: set[str]) -> None:
    if not has(con, "value_payment_invoices"):
        rep.notes.append("No Value Payment invoices in this run (payments stage not run).")
        return
    out = []
    for r in inv:
        h = ("invrow", r["month"]) in hidden
        out.append([month_label(r["month"]), r["quarter"], HIDDEN if h else count(r["member_months"]),
                    usd(r["pmpm_cents"]), HIDDEN if h else usd(r["amount_cents"])])
    total = sum(int(r["amount_cents"]) for r in inv)
    show = ("inv", "total") not in hidden
    out.append(["Total", "", count(sum(int(r["member_months"]) for r in inv)) if show else HIDDEN, "",
                usd(total) if show else HIDDEN])
    rep.tables.append(Table("value_payment_invoices", "Value Payment PMPM invoices",
                            ["month", "quarter", "member months", "PMPM", "amount"], out))
    rep.totals.append(("Value Payment invoiced", usd(total) if show else HIDDEN))
    if has(con, "value_payment_adjustments"):
        a = of_year(table(con, "value_payment_adjustments"), period.year)
        quarters = set(period.quarters())
        ar = [r for r in rows(a.order_by(["program_id", "quarter"]))
              if r["program_id"] in programs and r["quarter"] in quarters]

        def program_wide(r: dict, value: str) -> str:  # the program's target, cost and score: its members' own
            return value if r["program_id"] in alone else HIDDEN

        rep.tables.append(Table("value_payment_adjustments", "Value Payment quarterly adjustments",
                                ["quarter", "program", "basis quarter", "target YTD", "actual YTD", "quality score",
                                 "factor", "PMPM"],
                                [[r["quarter"], r["program_id"], r["basis_quarter"] or "",
                                  program_wide(r, usd(r["target_ytd_cents"])), program_wide(r, usd(r["actual_ytd_cents"])),
                                  program_wide(r, "" if r["quality_score"] is None else str(r["quality_score"])),
                                  factor(r["factor"]), usd(r["pmpm_cents"])] for r in ar],
                                note="The factor scales the base PMPM from cost against target and the quality score "
                                     "of the basis quarter (see docs/payments.md). Target, actual and quality score "
                                     "are the program's: they are shown only where the program's members are all "
                                     "this employer's (the factor and PMPM are the same for every employer)."))
        _shared_note(rep, "The Value Payment target, actual and quality score",
                     sorted({r["program_id"] for r in ar} - alone))


def factor(v) -> str:
    from decimal import ROUND_HALF_UP, Decimal
    return "" if v is None else str(Decimal(str(v)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))


def _settlement(con, rep: Report, year: int, org: str) -> None:
    if not has(con, "employer_statements"):
        rep.notes.append("The year has not been settled yet (no employer_statements).")
        return
    es = of_year(table(con, "employer_statements"), year)
    mine = rows_by(es, "employer_id", org, ["program_id", "version", "run_id"])
    if not mine:
        return
    got = latest_version(mine)
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
