"""Comprehensive Payment Reform (domain.md R5): monthly fixed payments to independent primary care.

Practices are those the roster lists with ``payment_model: cpr`` for the program's payer, in the
months their CPR roster rows are in effect (:func:`cpr_months`). Per program, month, practice
and rate cell (rule ``cpr.monthly``)::

    amount_cents = attributed eligible MM x (CPR PMPM(cell, month) + care-coordination PMPM(month))

rounded half-up on that line. The payer funds the ACO with the same amount (rule
``cpr.payer_to_aco``), which passes it to the practice: the ACO keeps nothing of it.

The CPR PMPM of a cell is written in the terms (``method: fixed_pmpm``) or derived from each
practice's history (``method: historical_ffs``, domain.md R5), per practice and rate cell::

    history PMPM(practice, cell) = history FFS(practice, cell) / history MM(practice, cell)
    CPR PMPM(practice, cell)     = history PMPM x (1 + trend) x (1 + enhancement)

- the practice's people: the persons attributed to it in the performance year (their first
  attributed month; ties by practice id);
- history MM: those persons' eligible months with the program's payer in ``history_years``
  (default: the year before the performance year), each in the rate cell of that month;
- history FFS: what the payer paid fee-for-service (``paid_amount``, ``payment_arrangement``
  ffs, professional claim lines netted) for those persons in those months to the practice
  itself (billing NPI on the roster under the practice with ``payment_model: cpr``): the
  primary care services the CPR payment replaces.

Both PMPMs are held in millionths of a dollar, rounded half-up once each (history PMPM, then
the trended and enhanced PMPM). A practice and cell with no history months get PMPM 0 and
say so (``basis``).

Annual quality bonus (rule ``cpr.quality_bonus``), when the terms give ``quality_bonus_pool``::

    earned_cents = pool x program quality score       (half-up; 0 and a note when no score yet)

split over the CPR practices by their attributed member months of the year (largest remainder).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.money import apply_rate, dollars_to_cents, largest_remainder
from allpayer.payments.common import PaymentsError, covered_months, pmpm_cents, rate_table, rows_of, to_micro


def cpr_practices(roster: ir.Table, program) -> ir.Table:
    r = roster.filter((roster.payer == program.payer) & (roster.payment_model == "cpr") & roster.practice_id.notnull())
    return r.select("practice_id").distinct()


def cpr_months(roster: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """(practice_id, month): the months of `months` in which the roster lists the practice under
    ``payment_model: cpr`` for the payer: a CPR row covers the month's first day
    and one covers its last day, as a practice's participation in attribution. A practice that
    joins or leaves CPR during the year is paid CPR only in its CPR months."""
    r = roster.filter((roster.payment_model == "cpr") & roster.practice_id.notnull())
    return covered_months(r, program.payer, months)


def cpr_rates(program, months: Sequence[dt.date]) -> ir.Table:
    """``fixed_pmpm``: (cell_id, month, pmpm_micro, care_coordination_micro) from the terms."""
    c = program.payments.cpr
    if c.method != "fixed_pmpm":
        raise PaymentsError(f"{program.program_id}: cpr_rates is for method fixed_pmpm (got {c.method!r})")
    rows = []
    for m in months:
        cc = to_micro(c.care_coordination_pmpm.at(m))
        for cell, value in c.pmpm_by_cell.items():
            rows.append({"cell_id": cell, "month": m, "pmpm_micro": to_micro(value.at(m)), "care_coordination_micro": cc})
        rows.append({"cell_id": "unassigned", "month": m, "pmpm_micro": 0, "care_coordination_micro": cc})
    return rate_table(rows, {"cell_id": "string", "month": "date", "pmpm_micro": "int64",
                             "care_coordination_micro": "int64"})


def history_years(program) -> list[int]:
    c = program.payments.cpr
    years = getattr(c, "history_years", None)
    return [int(y) for y in years] if years else [program.performance_year - 1]


def _round_micro(x: Fraction) -> int:
    """A non-negative exact amount in millionths of a dollar, rounded half-up to an integer."""
    return int((Decimal(x.numerator) / Decimal(x.denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)) \
        if x.denominator != 1 else int(x)


def historical_history(lines: ir.Table, eligibility: ir.Table, att_months: ir.Table, roster: ir.Table,
                       program) -> ir.Table:
    """(practice_id, cell_id, history_member_months, history_ffs_cents) of ``historical_ffs``
    (see the module docstring). `lines`: net medical claim lines (``medical_claim_lines``)."""
    from allpayer.core.member_months import eligibility_months
    from allpayer.core.targets import cell_id_expr

    years = history_years(program)
    practices = cpr_practices(roster, program)
    a = att_months.filter(att_months.program_id == program.program_id).semi_join(practices, "practice_id")
    w = ibis.window(group_by=a.person_id, order_by=[a.month, a.practice_id])
    people = a.mutate(_rn=ibis.row_number().over(w)).filter(lambda t: t._rn == 0).select("person_id", "practice_id")
    e = eligibility.filter(eligibility.payer == program.payer)
    hm = eligibility_months(e, dt.date(min(years), 1, 1), dt.date(max(years), 12, 31))
    hm = hm.filter(hm.month.year().isin(years))
    hm = hm.mutate(cell_id=cell_id_expr(hm, program.target.rate_cells).fill_null("unassigned"))
    w2 = ibis.window(group_by=[hm.person_id, hm.month], order_by=[hm.plan, hm.member_id])
    hm = hm.mutate(_rn=ibis.row_number().over(w2)).filter(lambda t: t._rn == 0).select("person_id", "month", "cell_id")
    hm = hm.join(people, "person_id")
    mm = hm.group_by("practice_id", "cell_id").aggregate(history_member_months=hm.count().cast("int64"))
    npis = roster.filter((roster.payer == program.payer) & (roster.payment_model == "cpr") & roster.practice_id.notnull())
    npis = npis.select(_npi="npi", _practice="practice_id").distinct()
    l = lines.filter((lines.payer == program.payer) & (lines.payment_arrangement == "ffs")
                     & (lines.claim_type == "professional") & lines.service_date.year().isin(years))
    l = l.select("person_id", "service_month", "billing_npi", "paid_cents")
    l = l.join(npis, l.billing_npi == npis._npi)
    hm2 = hm.select(_person="person_id", _month="month", _cell="cell_id", _att_practice="practice_id")
    l = l.join(hm2, [l.person_id == hm2._person, l.service_month == hm2._month, l._practice == hm2._att_practice])
    ffs = l.group_by(practice_id=l._practice, cell_id=l._cell).aggregate(history_ffs_cents=l.paid_cents.sum().cast("int64"))
    ffs = ffs.rename(_f_practice="practice_id", _f_cell="cell_id")
    mm = mm.rename(_m_practice="practice_id", _m_cell="cell_id")
    combos = a.select("practice_id", "cell_id").distinct()  # every practice and cell paid this year
    j = combos.left_join(mm, [combos.practice_id == mm._m_practice, combos.cell_id == mm._m_cell])
    j = j.left_join(ffs, [j.practice_id == ffs._f_practice, j.cell_id == ffs._f_cell])
    return j.select("practice_id", "cell_id",
                    history_member_months=j.history_member_months.fill_null(0).cast("int64"),
                    history_ffs_cents=j.history_ffs_cents.fill_null(0).cast("int64"))


def historical_rates(con, history: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """``historical_ffs``: (practice_id, cell_id, month, pmpm_micro, care_coordination_micro,
    history_member_months, history_ffs_cents, history_pmpm_micro, basis), one row per practice,
    cell and month, for every practice and cell with attributed months (the rest of the
    arithmetic runs in Python over these few rows)."""
    c = program.payments.cpr
    trend, enh = Fraction(c.trend.value), Fraction(c.enhancement.value)
    rows = []
    for r in rows_of(con, history.order_by(["practice_id", "cell_id"])):
        mm, ffs = int(r["history_member_months"]), int(r["history_ffs_cents"])
        if mm:
            hist = _round_micro(Fraction(ffs * 10_000, mm))
            pmpm = _round_micro(hist * (1 + trend) * (1 + enh))
            basis = (f"{ffs} cents / {mm} history MM = {hist} micro-dollars PMPM x (1 + {c.trend.value}) "
                     f"x (1 + {c.enhancement.value})")
        else:
            hist, pmpm, basis = 0, 0, "no history member months: PMPM 0"
        for m in months:
            rows.append({"practice_id": r["practice_id"], "cell_id": r["cell_id"], "month": m, "pmpm_micro": pmpm,
                         "care_coordination_micro": to_micro(c.care_coordination_pmpm.at(m)),
                         "history_member_months": mm, "history_ffs_cents": ffs, "history_pmpm_micro": hist,
                         "basis": basis})
    return rate_table(rows, HISTORY_RATE_SCHEMA)


HISTORY_RATE_SCHEMA = {"practice_id": "string", "cell_id": "string", "month": "date", "pmpm_micro": "int64",
                       "care_coordination_micro": "int64", "history_member_months": "int64",
                       "history_ffs_cents": "int64", "history_pmpm_micro": "int64", "basis": "string"}


def cpr_payments(att_months: ir.Table, roster: ir.Table, program, months: Sequence[dt.date], *,
                 rates: ir.Table | None = None) -> ir.Table:
    """``cpr_payments``: grain (program_id, month, practice_id, cell_id).

    Columns: payer, member_months, pmpm_micro, care_coordination_micro, amount_cents, rule.
    `rates`: for ``historical_ffs``, :func:`historical_rates` (by practice, cell and month).
    """
    a = att_months.filter(att_months.program_id == program.program_id)
    a = a.semi_join(cpr_months(roster, program, months), ["practice_id", "month"])
    g = a.group_by("program_id", "month", "practice_id", "cell_id").aggregate(member_months=a.count().cast("int64"))
    if program.payments.cpr.method == "historical_ffs":
        if rates is None:
            raise PaymentsError(f"{program.program_id}: CPR method historical_ffs needs the history rates")
        r = rates.select("practice_id", "cell_id", "month", "pmpm_micro", "care_coordination_micro")
        j = g.join(r, ["practice_id", "cell_id", "month"])
    else:
        j = g.join(cpr_rates(program, months), ["cell_id", "month"])
    return j.select(
        program_id=j.program_id, month=j.month, practice_id=j.practice_id, cell_id=j.cell_id,
        payer=ibis.literal(program.payer), member_months=j.member_months, pmpm_micro=j.pmpm_micro,
        care_coordination_micro=j.care_coordination_micro,
        amount_cents=pmpm_cents(j.member_months, j.pmpm_micro + j.care_coordination_micro),
        rule=ibis.literal("cpr.monthly"),
    )


def quality_bonus(con, cpr: ir.Table, program, year: int, quality_score) -> tuple[list[dict], str]:
    """The annual CPR quality bonus per practice, and a note saying how it was set."""
    c = program.payments.cpr
    if c.quality_bonus_pool is None:
        return [], "no quality_bonus_pool in the terms"
    pool = dollars_to_cents(c.quality_bonus_pool.at(dt.date(year, 12, 31)))
    if quality_score is None:
        return [], "quality score not yet measured: no CPR quality bonus"
    earned = apply_rate(pool, quality_score)
    p = cpr.filter(cpr.program_id == program.program_id)
    mm = rows_of(con, p.group_by("practice_id").aggregate(mm=p.member_months.sum()).order_by("practice_id"))
    mm = [r for r in mm if r["mm"]]
    if not mm:
        return [], "no CPR member months"
    parts = largest_remainder(earned, [r["mm"] for r in mm])
    return ([{"program_id": program.program_id, "performance_year": year, "practice_id": r["practice_id"],
              "member_months": int(r["mm"]), "pool_cents": pool, "quality_score": str(quality_score),
              "earned_cents": earned, "amount_cents": amt, "rule": "cpr.quality_bonus"}
             for r, amt in zip(mm, parts)],
            f"pool {pool} cents x quality score {quality_score} = {earned} cents, split by attributed MM")
