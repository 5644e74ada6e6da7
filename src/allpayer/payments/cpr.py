"""Comprehensive Payment Reform (domain.md R5): monthly fixed payments to independent primary care.

Practices are those the roster lists with ``payment_model: cpr`` for the program's payer. Per
program, month, practice and rate cell (rule ``cpr.monthly``)::

    amount_cents = attributed eligible MM x (CPR PMPM(cell, month) + care-coordination PMPM(month))

rounded half-up on that line. The payer funds the ACO with the same amount (rule
``cpr.payer_to_aco``), which passes it to the practice: the ACO keeps nothing of it.

Annual quality bonus (rule ``cpr.quality_bonus``), when the terms give ``quality_bonus_pool``::

    earned_cents = pool x program quality score       (half-up; 0 and a note when no score yet)

split over the CPR practices by their attributed member months of the year (largest remainder).
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.money import apply_rate, dollars_to_cents, largest_remainder
from allpayer.payments.common import PaymentsError, pmpm_cents, rate_table, rows_of, to_micro


def cpr_practices(roster: ir.Table, program) -> ir.Table:
    r = roster.filter((roster.payer == program.payer) & (roster.payment_model == "cpr") & roster.practice_id.notnull())
    return r.select("practice_id").distinct()


def cpr_rates(program, months: Sequence[dt.date]) -> ir.Table:
    c = program.payments.cpr
    if c.method != "fixed_pmpm":
        raise PaymentsError(
            f"{program.program_id}: CPR method {c.method!r} is not computed yet (only fixed_pmpm)"
        )
    rows = []
    for m in months:
        cc = to_micro(c.care_coordination_pmpm.at(m))
        for cell, value in c.pmpm_by_cell.items():
            rows.append({"cell_id": cell, "month": m, "pmpm_micro": to_micro(value.at(m)), "care_coordination_micro": cc})
        rows.append({"cell_id": "unassigned", "month": m, "pmpm_micro": 0, "care_coordination_micro": cc})
    return rate_table(rows, {"cell_id": "string", "month": "date", "pmpm_micro": "int64",
                             "care_coordination_micro": "int64"})


def cpr_payments(att_months: ir.Table, roster: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """``cpr_payments``: grain (program_id, month, practice_id, cell_id).

    Columns: payer, member_months, pmpm_micro, care_coordination_micro, amount_cents, rule.
    """
    a = att_months.filter(att_months.program_id == program.program_id)
    a = a.semi_join(cpr_practices(roster, program), "practice_id")
    g = a.group_by("program_id", "month", "practice_id", "cell_id").aggregate(member_months=a.count().cast("int64"))
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
