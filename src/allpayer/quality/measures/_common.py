"""Exclusions and small helpers shared by the member measures.

The HEDIS MY2024 common exclusions, as applied here (value sets in
``reference/data/valuesets/common_exclusions.csv``):

- ``hospice``: a hospice claim (service category ``hospice``: bill type 81x/82x) or a hospice code
  (`hospice` value set) in the measurement year;
- ``died``: a death date in the measurement year on the member's enrollment spans (the program
  payer's eligibility);
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

REASONS = ("hospice", "died", "palliative_care", "long_term_institutional", "frailty_advanced_illness",
           "frailty_81plus")


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


def exclusion_evidence(ctx: MeasureContext) -> ir.Table:
    """Every member's first evidence of each common exclusion in the measurement year, whatever
    the age: ``person_id, exclusion_reason, min_age, priority, exclusion_id, exclusion_date``
    (computed once per payer: it reads only the claims)."""

    def build() -> ir.Table:
        y0, y1 = ctx.period_start, ctx.period_end
        c = ctx.claims
        hosp = c.filter((c.service_category == "hospice") & (c.service_date >= y0) & (c.service_date <= y1))
        hosp = ibis.union(hosp.select("person_id", "claim_id", "service_date", "service_category"),
                          dated_lines(ctx, "hospice", y0, y1), distinct=False)
        frail = _on_dates(dated_lines(ctx, "frailty", y0, y1), 2)
        adv_all = dated_lines(ctx, "advanced_illness", dt.date(ctx.year - 1, 1, 1), y1)
        adv = ibis.union(_on_dates(adv_all, 2), adv_all.filter(adv_all.service_category == "inpatient"), distinct=False)
        adv_people = adv.select(_a=adv.person_id).distinct()
        fa = frail.join(adv_people, frail.person_id == adv_people._a).drop("_a")
        parts = [
            _first(hosp, "hospice", 1).mutate(min_age=ibis.literal(0)),
            _first(dated_lines(ctx, "palliative_care", y0, y1), "palliative_care", 3).mutate(min_age=ibis.literal(0)),
            _first(dated_lines(ctx, "long_term_institutional", y0, y1), "long_term_institutional", 4)
            .mutate(min_age=ibis.literal(66)),
            _first(fa, "frailty_advanced_illness", 5).mutate(min_age=ibis.literal(66)),
            _first(frail, "frailty_81plus", 6).mutate(min_age=ibis.literal(81)),
        ]
        u = ibis.union(*parts, distinct=False)
        return u.select("person_id", "exclusion_reason", "min_age", priority=u._priority,
                        exclusion_id=u.exclusion_id, exclusion_date=u.exclusion_date)

    return ctx._kept("common_exclusions", build, scope="payer")


def deaths(ctx: MeasureContext) -> ir.Table:
    """Members with a death date in the measurement year on the program's enrollment spans, in the
    shape of `exclusion_evidence` (reason ``died``; evidence: the member id and the death date).
    Read per program: the spans are the program's."""
    e = ctx.eligibility
    if "death_date" not in e.columns:
        return exclusion_evidence(ctx).limit(0)
    d = e.filter((e.death_date >= ctx.period_start) & (e.death_date <= ctx.period_end))
    w = ibis.window(group_by=d.person_id, order_by=[d.death_date, d.member_id])
    d = d.mutate(_rn=ibis.row_number().over(w))
    d = d.filter(d._rn == 0)
    return d.select(person_id=d.person_id, exclusion_reason=ibis.literal("died"), min_age=ibis.literal(0),
                    priority=ibis.literal(2), exclusion_id=d.member_id, exclusion_date=d.death_date)


def common_exclusions(ctx: MeasureContext, population: ir.Table, *, institutional: bool = True,
                      frailty: bool = True, died: bool = True) -> ir.Table:
    """One row per excluded member of `population` (which needs ``person_id`` and ``age``):
    ``person_id, exclusion_reason, exclusion_id, exclusion_date`` (see the module docstring)."""
    ev = exclusion_evidence(ctx)
    reasons = ["hospice", "palliative_care"]
    if institutional:
        reasons.append("long_term_institutional")
    if frailty:
        reasons += ["frailty_advanced_illness", "frailty_81plus"]
    ev = ev.filter(ev.exclusion_reason.isin(reasons))
    if died:
        ev = ibis.union(ev, deaths(ctx).cast(ev.schema()), distinct=False)
    ages = population.select(_p=population.person_id, _age=population.age)
    u = ev.join(ages, ev.person_id == ages._p)
    u = u.filter(u._age >= u.min_age)
    w = ibis.window(group_by=u.person_id, order_by=[u.priority, u.exclusion_date, u.exclusion_id])
    u = u.mutate(_rn=ibis.row_number().over(w))
    return u.filter(u._rn == 0).select("person_id", "exclusion_reason", "exclusion_id", "exclusion_date")


def with_exclusions(base: ir.Table, excl: ir.Table) -> ir.Table:
    """`base` (one row per person) left-joined with `excl`: adds ``excluded`` and
    ``exclusion_reason`` (and ``exclusion_id``/``exclusion_date``)."""
    e = excl.rename(_ep="person_id")
    j = base.left_join(e, base.person_id == e._ep)
    return j.select(*base.columns, excluded=j._ep.notnull(), exclusion_reason=j.exclusion_reason,
                    exclusion_id=j.exclusion_id, exclusion_date=j.exclusion_date)


def exclusion_source(j: ir.Table) -> ir.StringValue:
    """Where an exclusion's evidence comes from: ``eligibility`` for a death, else ``medical_claim``."""
    return ibis.ifelse(j.exclusion_reason == "died", "eligibility", "medical_claim")


def claim_result(j: ir.Table, has: ir.BooleanValue, evidence_id: ir.Value, evidence_date: ir.Value,
                 value: ir.Value) -> ir.Table:
    """The result columns of a measure whose numerator is met by a claim: `j` is the population
    with its exclusions (:func:`with_exclusions`) left-joined to the deciding claim; `has` says a
    claim was found; `evidence_id`, `evidence_date` name it; `value` is the evidence value shown
    for members who are not excluded."""
    return j.select(
        person_id=j.person_id,
        in_denominator=ibis.literal(True),
        excluded=j.excluded,
        exclusion_reason=j.exclusion_reason,
        in_numerator=has,
        evidence_source=ibis.ifelse(j.excluded, exclusion_source(j), ibis.ifelse(has, "medical_claim", "none")),
        evidence_id=ibis.ifelse(j.excluded, j.exclusion_id, evidence_id),
        evidence_date=ibis.ifelse(j.excluded, j.exclusion_date, evidence_date),
        evidence_value=ibis.ifelse(j.excluded, ibis.null("string"), value),
    )
