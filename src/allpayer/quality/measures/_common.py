"""Exclusions and small helpers shared by the member measures.

The HEDIS MY2024 common exclusions, as applied here (value sets in
``reference/data/valuesets/common_exclusions.csv``):

- ``hospice``: a hospice claim (service category ``hospice``: bill type 81x/82x) or a hospice code
  (`hospice` value set) in the measurement year;
- ``palliative_care``: a palliative-care code (`palliative_care`: ICD-10-CM Z51.5, HCPCS G9054,
  M1017) in the measurement year;
- ``long_term_institutional`` (66 and older on 31 December): a claim with a nursing-facility or
  intermediate-care place of service (`long_term_institutional`: POS 32, 33, 54) in the
  measurement year. The input contract carries no institutional special-needs-plan flag, so I-SNP
  enrollment is identified only through these claims;
- ``frailty_advanced_illness`` (66 and older): frailty (`frailty` codes on at least two different
  dates in the measurement year) and advanced illness (`advanced_illness` diagnoses on at least two
  different dates, or on one inpatient stay, in the measurement year or the year before);
- ``frailty_81plus`` (81 and older): frailty alone.

The first reason in that order is reported; its evidence is the claim that showed it.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import MeasureContext

COMMON_VALUESETS = ("hospice", "palliative_care", "long_term_institutional", "frailty", "advanced_illness")

REASONS = ("hospice", "palliative_care", "long_term_institutional", "frailty_advanced_illness", "frailty_81plus")


def dated_lines(ctx: MeasureContext, valueset: str, start: dt.date, end: dt.date) -> ir.Table:
    """``person_id, claim_id, service_date, service_category`` of claim lines in a value set
    between two dates (inclusive)."""
    t = ctx.lines_in(valueset)
    t = t.filter((t.service_date >= start) & (t.service_date <= end))
    return t.select("person_id", "claim_id", "service_date", "service_category")


def _first(t: ir.Table, reason: str, priority: int) -> ir.Table:
    w = ibis.window(group_by=t.person_id, order_by=[t.service_date, t.claim_id])
    t = t.mutate(_rn=ibis.row_number().over(w))
    t = t.filter(t._rn == 0)
    return t.select(
        person_id=t.person_id,
        exclusion_reason=ibis.literal(reason),
        _priority=ibis.literal(priority),
        exclusion_id=t.claim_id,
        exclusion_date=t.service_date,
    )


def _on_dates(t: ir.Table, at_least: int) -> ir.Table:
    """People with lines on at least `at_least` different dates (the first such line kept)."""
    n = t.group_by("person_id").aggregate(_dates=t.service_date.nunique())
    ok = n.filter(n._dates >= at_least).select(_p=n.person_id)
    return t.join(ok, t.person_id == ok._p).drop("_p")


def common_exclusions(ctx: MeasureContext, population: ir.Table, *, institutional: bool = True,
                      frailty: bool = True) -> ir.Table:
    """One row per excluded member of `population`: ``person_id, exclusion_reason,
    exclusion_id, exclusion_date`` (see the module docstring)."""
    y0, y1 = ctx.period_start, ctx.period_end
    ages = population.select(_p=population.person_id, _age=population.age)
    parts = []
    hosp = ctx.claims.filter((ctx.claims.service_category == "hospice")
                             & (ctx.claims.service_date >= y0) & (ctx.claims.service_date <= y1))
    hosp = ibis.union(hosp.select("person_id", "claim_id", "service_date", "service_category"),
                      dated_lines(ctx, "hospice", y0, y1), distinct=False)
    parts.append(_first(hosp, "hospice", 1))
    parts.append(_first(dated_lines(ctx, "palliative_care", y0, y1), "palliative_care", 2))

    def aged(t: ir.Table, min_age: int) -> ir.Table:
        j = t.join(ages, t.person_id == ages._p)
        return j.filter(j._age >= min_age).drop("_p", "_age")

    if institutional:
        parts.append(_first(aged(dated_lines(ctx, "long_term_institutional", y0, y1), 66), "long_term_institutional", 3))
    if frailty:
        frail = _on_dates(dated_lines(ctx, "frailty", y0, y1), 2)
        adv_all = dated_lines(ctx, "advanced_illness", dt.date(ctx.year - 1, 1, 1), y1)
        adv = ibis.union(_on_dates(adv_all, 2), adv_all.filter(adv_all.service_category == "inpatient"), distinct=False)
        adv_people = adv.select(_a=adv.person_id).distinct()
        fa = frail.join(adv_people, frail.person_id == adv_people._a).drop("_a")
        parts.append(_first(aged(fa, 66), "frailty_advanced_illness", 4))
        parts.append(_first(aged(frail, 81), "frailty_81plus", 5))
    u = ibis.union(*parts, distinct=False)
    pop = population.select(_pp=population.person_id)
    u = u.join(pop, u.person_id == pop._pp).drop("_pp")
    w = ibis.window(group_by=u.person_id, order_by=[u._priority, u.exclusion_date, u.exclusion_id])
    u = u.mutate(_rn=ibis.row_number().over(w))
    return u.filter(u._rn == 0).drop("_rn", "_priority")


def with_exclusions(base: ir.Table, excl: ir.Table) -> ir.Table:
    """`base` (one row per person) left-joined with `excl`: adds ``excluded`` and
    ``exclusion_reason`` (and ``exclusion_id``/``exclusion_date``)."""
    e = excl.rename(_ep="person_id")
    j = base.left_join(e, base.person_id == e._ep)
    return j.select(*base.columns, excluded=j._ep.notnull(), exclusion_reason=j.exclusion_reason,
                    exclusion_id=j.exclusion_id, exclusion_date=j.exclusion_date)
