"""Program membership: which member months belong to which payer program.

A program's terms select eligibility rows with their `population` block (the program's payer,
its plans and, for self-funded programs, its employer groups, optionally only while the employer
has opted in to the ACO) in the months of the program's effective period (a period that starts or
ends within a month has that month). A member month is one person in one program in one month
(domain.md §1): a person selected under two of the program's plans in one month (a plan change
within the month) has one row, the one of the plan first in sort order (then payer), and its
``plans_in_month`` names the plans it held (:func:`one_row_per_program_month`). Within one plan
the eligibility months already hold one row per person and month (a reissued member id, a change
of employer group: the span in force on the month's first covered day,
``allpayer.core.member_months.eligibility_months``), so two programs of one payer and plan told
apart by employer group never share a person's month. Grain: (program_id, person_id, month), and
so (program_id, member_id, month).
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
        "first_month": "date",
        "last_month": "date",
        "require_employer_opt_in": "boolean",
    }
)


def program_selectors(programs: Sequence[ProgramTerms]) -> ir.Table:
    """One row per (program, plan, group) a program selects; a NULL group means any group.
    ``first_month`` and ``last_month``: the first days of the months of the effective start and end."""
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
                        "first_month": p.effective.start.replace(day=1),
                        "last_month": p.effective.end.replace(day=1),
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


PLANS_IN_MONTH = "plans_in_month"
"""The column naming the plans a program member month stands for when the member held several of
the program's plans in the month: ``|plan|plan|`` in sort order, NULL when it held one."""


def one_row_per_program_month(rows: ir.Table, ordered: bool = True) -> ir.Table:
    """`rows` (a program's selected eligibility months, with program_id; at most one row per
    program, person, payer, plan and month) made one row per (program_id, person_id, month).

    A person held under two of a program's plans in one month (it changed plan within the month,
    or held both, under one member id or two) has one member month, with the attributes (member
    id, plan, group, rate cell) of the row of the plan first in sort order, then of the payer: a
    total order, as the rows are unique on those keys. ``plans_in_month`` (:data:`PLANS_IN_MONTH`)
    lists the plans of that payer the person held in the month, e.g. ``|qhp|qhp_silver|``, so
    that the claims of every one of them count in that member month
    (``allpayer.core.tcoc.program_lines``); it is NULL when the person held one. `ordered=False`:
    the caller vouches that the rows are unique by program, person and month already (programs of
    one plan), and they are kept as they are.
    """
    if not ordered:
        return rows.mutate(**{PLANS_IN_MONTH: ibis.null("string")})
    key = [rows.program_id, rows.person_id, rows.month]
    first = ibis.window(group_by=key, order_by=[rows.plan, rows.payer])
    same_payer = ibis.window(group_by=[*key, rows.payer])
    plans = rows.plan.collect().over(same_payer).sort()
    rows = rows.mutate(
        _rn=ibis.row_number().over(first),
        _plans=ibis.ifelse(plans.length() > 1, "|" + plans.join("|") + "|", ibis.null("string")),
    )
    rows = rows.filter(rows._rn == 0)
    return rows.mutate(**{PLANS_IN_MONTH: rows._plans}).drop("_rn", "_plans")


def program_months(
    eligibility_months: ir.Table,
    programs: Sequence[ProgramTerms],
    employer_group: ir.Table | None = None,
) -> ir.Table:
    """Tag member months with the programs that select them (a month may be in no program).

    A month counts in a program when it is one of the months of the program's effective period
    (a period starting on 15 March has March, as its targets do). Two programs selecting the same
    plan and group in the same year are a terms error. A member selected under several of a
    program's plans in one month has one member month (:func:`one_row_per_program_month`): the
    result has grain (program_id, person_id, month) (and so (program_id, member_id, month)), the
    columns of `eligibility_months`, the program's tags and ``plans_in_month``.
    """
    def one_plan(p: ProgramTerms) -> bool:
        return len(set(p.population.plans)) == 1

    # Only a program of several plans can select a person's month twice (the eligibility months
    # are unique by person, payer, plan and month, and a row has one group): its rows alone are
    # ordered. The two branches share no intermediate result.
    branches = [(b, ordered) for b, ordered in (([p for p in programs if one_plan(p)], False),
                                                ([p for p in programs if not one_plan(p)], True)) if b]
    parts = [one_row_per_program_month(_selected_program_months(eligibility_months, b, employer_group), ordered)
             for b, ordered in branches or [([], False)]]
    return ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]


def _selected_program_months(
    eligibility_months: ir.Table,
    programs: Sequence[ProgramTerms],
    employer_group: ir.Table | None,
) -> ir.Table:
    """The rows of `eligibility_months` that each of `programs` selects, with its tags."""
    sel = program_selectors(programs)
    m = eligibility_months
    group_match = sel.program_group_id.isnull() | (sel.program_group_id == m.group_id)
    j = m.join(
        sel,
        [
            m.payer == sel.program_payer,
            m.plan == sel.program_plan,
            group_match,
            m.month >= sel.first_month,
            m.month <= sel.last_month,
        ],
    )
    if employer_group is not None and any(p.population.require_employer_opt_in for p in programs):
        from allpayer.core.member_months import months_table

        start = min(p.effective.start for p in programs)
        end = max(p.effective.end for p in programs)
        opt = employer_opt_in_months(employer_group, months_table(start, end))
        j = j.left_join(opt, [j.group_id == opt.opt_group_id, j.month == opt.opt_month])
        j = j.filter(~j.require_employer_opt_in | j.opt_month.notnull()).drop("opt_group_id", "opt_month")
    return j.drop("program_payer", "program_plan", "program_group_id", "first_month", "last_month",
                  "require_employer_opt_in")
