"""Child and adolescent well-care visits, ages 3-21 (HEDIS WCV).

Follows the public description of HEDIS MY2024 WCV, with the project's own code lists (not
certified): attributed members 3-21 on 31 December, continuously enrolled over the year (one gap
of up to 45 days, enrolled on 31 December); numerator: at least one well-care visit
(`well_care_visit`: preventive-medicine CPT codes, EPSDT and gynecological-exam HCPCS, routine
examination ICD-10-CM Z codes) in the measurement year. The HEDIS requirement that the visit be
with a primary care practitioner or OB/GYN is not checked (the claims do not carry the
specialty). Exclusions: hospice or death in the measurement year.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import Measure, MeasureContext, register
from allpayer.quality.measures._common import claim_result, common_exclusions, with_exclusions


def first_visit(ctx: MeasureContext, valueset: str, start, end) -> ir.Table:
    """Each person's first claim line in `valueset` between two dates: ``_vp, visit_id,
    visit_date, visit_code``."""
    v = ctx.lines_in(valueset)
    v = v.filter((v.service_date >= start) & (v.service_date <= end))
    w = ibis.window(group_by=v.person_id, order_by=[v.service_date, v.claim_id, v.claim_line_number])
    v = v.mutate(_rn=ibis.row_number().over(w))
    v = v.filter(v._rn == 0)
    return v.select(_vp=v.person_id, visit_id=v.claim_id, visit_date=v.service_date,
                    visit_code=v.hcpcs_code.fill_null(v.diagnosis_code_1))


def visit_measure(ctx: MeasureContext, population: ir.Table, valueset: str, *, hospice_only: bool = True,
                  died: bool = False) -> ir.Table:
    """Members of `population` with a `valueset` visit in the year (numerator); hospice excluded
    (and, with `died`, death in the year)."""
    excl = common_exclusions(ctx, population, institutional=False, frailty=False, died=died)
    if hospice_only:
        excl = excl.filter(excl.exclusion_reason.isin(["hospice", "died"]))
    base = with_exclusions(population.select("person_id"), excl)
    v = first_visit(ctx, valueset, ctx.period_start, ctx.period_end)
    j = base.left_join(v, base.person_id == v._vp)
    has = j._vp.notnull()
    return claim_result(j, has, j.visit_id, j.visit_date, j.visit_code)


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    return visit_measure(ctx, population, "well_care_visit", died=True)


MEASURE = register(
    Measure(
        id="hedis_wcv",
        name="Child and adolescent well-care visits, ages 3-21",
        kind="member",
        compute=compute,
        ages=(3, 21),
        valuesets=("well_care_visit", "hospice"),
        description=__doc__.split("\n\n", 1)[1],
        source="HEDIS MY2024 Child and Adolescent Well-Care Visits (WCV), public description",
    )
)
