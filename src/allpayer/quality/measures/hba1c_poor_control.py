"""Diabetes: HbA1c poor control (> 9.0%), an inverse measure (lower is better).

Follows the public description of HEDIS MY2024 Glycemic Status Assessment for Patients with
Diabetes (GSD), indicator "> 9.0%", with the project's own code lists (not certified):

- Population: attributed members 18-75 on 31 December, continuously enrolled over the year (one
  gap of up to 45 days, enrolled on 31 December).
- Denominator: diabetes (`diabetes_dx`) on claims on at least two different dates, or on one
  inpatient claim, in the measurement year or the year before.
- Exclusions: hospice, death in the measurement year, palliative care, 66+ in long-term
  institutional care, 66+ with frailty and advanced illness, 81+ with frailty (`_common`).
- Numerator (poor control): the most recent glycemic status in the measurement year is above
  9.0%, or there is none. A status is an HbA1c or GMI lab result (`hba1c_lab`, from the lab feed
  or supplemental data) or a CPT II code on a claim (3044F < 7%, 3051F/3052F 7-9%, 3046F > 9%).
  When several are recorded on the most recent date, the lowest counts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import Measure, MeasureContext, register
from allpayer.quality.measures._common import COMMON_VALUESETS, common_exclusions, exclusion_source, with_exclusions

THRESHOLD = Decimal("9.0")
CPT2_SETS = {  # value set -> (value used to order same-day results, poor control?, shown value)
    "hba1c_below_7_cpt2": ("6.9", False, "<7.0 (CPT II)"),
    "hba1c_7_to_9_cpt2": ("8.0", False, "7.0-9.0 (CPT II)"),
    "hba1c_above_9_cpt2": ("9.1", True, ">9.0 (CPT II)"),
}


def diagnosed(ctx: MeasureContext, valueset: str) -> ir.Table:
    """People with a diagnosis in `valueset` on two different dates, or on an inpatient claim, in
    the measurement year or the year before: ``person_id, dx_claim_id, dx_date`` (the first)."""
    d = ctx.dx_in(valueset)
    d = d.filter((d.service_date >= dt.date(ctx.year - 1, 1, 1)) & (d.service_date <= ctx.period_end))
    per = d.group_by("person_id").aggregate(
        _dates=d.service_date.nunique(),
        _inpatient=(d.service_category == "inpatient").any(),
        dx_date=d.service_date.min(),
        dx_claim_id=d.claim_id.min(),
    )
    per = per.filter((per._dates >= 2) | per._inpatient)
    return per.select("person_id", "dx_claim_id", "dx_date")


def glycemic_results(ctx: MeasureContext) -> ir.Table:
    """Every glycemic status of the measurement year: ``person_id, status_date, sort_value,
    poor, source, status_id, shown``."""
    labs = ctx.in_period(ctx.labs_in("hba1c_lab"), "result_date")
    units_ok = labs.units.isnull() | (labs.units.strip() == "%")
    labs = labs.filter(units_ok)
    parts = [
        labs.select(
            person_id=labs.person_id,
            status_date=labs.result_date,
            sort_value=labs.value.cast("decimal(18, 4)"),
            poor=labs.value > THRESHOLD,
            source=labs.source,
            status_id=labs.lab_result_id,
            shown=labs.result_text,
        )
    ]
    for vs, (order, poor, shown) in CPT2_SETS.items():
        c = ctx.in_period(ctx.lines_in(vs), "service_date")
        parts.append(
            c.select(
                person_id=c.person_id,
                status_date=c.service_date,
                sort_value=ibis.literal(Decimal(order), "decimal(18, 4)"),
                poor=ibis.literal(poor),
                source=ibis.literal("medical_claim"),
                status_id=c.claim_id,
                shown=ibis.literal(shown),
            )
        )
    return ibis.union(*parts, distinct=False)


def latest_status(results: ir.Table) -> ir.Table:
    """The most recent status per person (the lowest on that date; then by id, a total order)."""
    w = ibis.window(group_by=results.person_id,
                    order_by=[ibis.desc(results.status_date), results.sort_value, results.status_id])
    r = results.mutate(_rn=ibis.row_number().over(w))
    return r.filter(r._rn == 0).drop("_rn")


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    dia = diagnosed(ctx, "diabetes_dx")
    den = ctx.store("hba1c_den", population.semi_join(dia, "person_id"))
    base = ctx.store("hba1c_base", with_exclusions(den.select("person_id"), common_exclusions(ctx, den)))
    last = ctx.store("hba1c_last", latest_status(glycemic_results(ctx)), scope="payer").rename(_lp="person_id")
    j = base.left_join(last, base.person_id == last._lp)
    has = j._lp.notnull()
    return j.select(
        person_id=j.person_id,
        in_denominator=ibis.literal(True),
        excluded=j.excluded,
        exclusion_reason=j.exclusion_reason,
        in_numerator=~has | j.poor,
        evidence_source=ibis.ifelse(j.excluded, exclusion_source(j), ibis.ifelse(has, j.source, "none")),
        evidence_id=ibis.ifelse(j.excluded, j.exclusion_id, j.status_id),
        evidence_date=ibis.ifelse(j.excluded, j.exclusion_date, j.status_date),
        evidence_value=ibis.ifelse(j.excluded, ibis.null("string"), ibis.ifelse(has, j.shown, "no result in the year")),
    )


MEASURE = register(
    Measure(
        id="hba1c_poor_control",
        name="Diabetes: HbA1c poor control (> 9.0%)",
        kind="member",
        compute=compute,
        inverse=True,
        ages=(18, 75),
        valuesets=("diabetes_dx", "hba1c_lab", *CPT2_SETS, *COMMON_VALUESETS),
        description=__doc__.split("\n\n", 1)[1],
        source="HEDIS MY2024 Glycemic Status Assessment for Patients with Diabetes (GSD), public description",
    )
)
