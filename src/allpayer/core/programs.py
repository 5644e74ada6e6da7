"""Program membership: which member months belong to which payer program.

A program's terms select eligibility rows with their `population` block (the program's payer,
its plans and, for self-funded programs, its employer groups, optionally only while the employer
has opted in to the ACO) within the program's effective period. The result keeps the grain of
`eligibility_months` with the program added: (program_id, member_id, month).
"""

from __future__ import annotations

from typing import Sequence

import ibis
import ibis.expr.types as ir

from allpayer.terms import ProgramTerms

SELECTOR_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "program_payer": "string",
        "program_plan": "string",
        "program_group_id": "string",
        "product": "string",
        "program_kind": "string",
        "performance_year": "int32",
        "effective_start": "date",
        "effective_end": "date",
        "require_employer_opt_in": "boolean",
    }
)


def program_selectors(programs: Sequence[ProgramTerms]) -> ir.Table:
    """One row per (program, plan, group) a program selects; a NULL group means any group."""
    rows = []
    for p in programs:
        groups = p.population.group_ids or [None]
        for plan in p.population.plans:
            for group in groups:
                rows.append(
                    {
                        "program_id": p.program_id,
                        "program_payer": p.payer,
                        "program_plan": plan,
                        "program_group_id": group,
                        "product": p.product,
                        "program_kind": p.kind,
                        "performance_year": p.performance_year,
                        "effective_start": p.effective.start,
                        "effective_end": p.effective.end,
                        "require_employer_opt_in": bool(p.population.require_employer_opt_in),
                    }
                )
    if not rows:
        rows_by_col = {name: [] for name in SELECTOR_SCHEMA.names}
        return ibis.memtable(rows_by_col, schema=SELECTOR_SCHEMA)
    return ibis.memtable({k: [r[k] for r in rows] for k in SELECTOR_SCHEMA.names}, schema=SELECTOR_SCHEMA)


def employer_opt_in_months(employer_group: ir.Table, months: ir.Table) -> ir.Table:
    """(group_id, month) pairs in which the employer had opted its members in to the ACO."""
    g = employer_group.filter(employer_group.aco_opt_in)
    j = g.join(
        months,
        [
            g.effective_start_date <= months.month_end,
            g.effective_end_date.fill_null(ibis.date(9999, 12, 31)) >= months.month,
        ],
    )
    return j.select(opt_group_id=j.group_id, opt_month=j.month).distinct()


def employer_of_group_months(employer_group: ir.Table, group_months: ir.Table) -> ir.Table:
    """(group_id, month, employer_id) for each distinct (group_id, month) of `group_months` (month:
    a month's first day): the employer of the group's row in force on the month's first day, the
    latest-starting one where rows overlap (then the lowest employer id, a total order). A month
    no row covers has no row."""
    eg = employer_group
    e = eg.select(_g_group_id="group_id", employer_id="employer_id", _g_start="effective_start_date",
                  _g_end=eg.effective_end_date.fill_null(ibis.date(9999, 12, 31)))
    k = group_months.filter(group_months.group_id.notnull()).select("group_id", "month").distinct()
    c = k.join(e, [k.group_id == e._g_group_id, e._g_start <= k.month, e._g_end >= k.month])
    w = ibis.window(group_by=[c.group_id, c.month], order_by=[ibis.desc(c._g_start), c.employer_id])
    c = c.mutate(_rn=ibis.row_number().over(w))
    return c.filter(c._rn == 0).select("group_id", "month", "employer_id")


def program_months(
    eligibility_months: ir.Table,
    programs: Sequence[ProgramTerms],
    employer_group: ir.Table | None = None,
) -> ir.Table:
    """Tag member months with the programs that select them (a month may be in no program).

    A member month belongs to at most one program per payer and plan by construction of the
    terms (two programs selecting the same plan and group in the same year are a terms error
    detected here): the result has grain (program_id, member_id, month).
    """
    sel = program_selectors(programs)
    m = eligibility_months
    group_match = sel.program_group_id.isnull() | (sel.program_group_id == m.group_id)
    j = m.join(
        sel,
        [
            m.payer == sel.program_payer,
            m.plan == sel.program_plan,
            group_match,
            m.month >= sel.effective_start,
            m.month <= sel.effective_end,
        ],
    )
    if employer_group is not None and any(p.population.require_employer_opt_in for p in programs):
        from allpayer.core.member_months import months_table

        start = min(p.effective.start for p in programs)
        end = max(p.effective.end for p in programs)
        opt = employer_opt_in_months(employer_group, months_table(start, end))
        j = j.left_join(opt, [j.group_id == opt.opt_group_id, j.month == opt.opt_month])
        j = j.filter(~j.require_employer_opt_in | j.opt_month.notnull()).drop("opt_group_id", "opt_month")
    return j.drop("program_payer", "program_plan", "program_group_id", "effective_start", "effective_end",
                  "require_employer_opt_in")
