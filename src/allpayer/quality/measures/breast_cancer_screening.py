"""Breast cancer screening (HEDIS BCS-E).

Follows the public description of HEDIS MY2024 BCS-E, with the project's own code lists (not
certified): attributed women 52-74 on 31 December, continuously enrolled from 1 October two years
before the measurement year through 31 December of it: no gap from 1 October to 31 December two
years before, at most one gap of up to 45 days in each of the two years, enrolled on 31 December;
numerator: a mammogram (`mammography`) from 1 October two years before the measurement year
through 31 December of the measurement year. Exclusions: bilateral mastectomy
(`bilateral_mastectomy`, any date up to 31 December), hospice, death in the measurement year,
palliative care, 66+ in
long-term institutional care, 66+ with frailty and advanced illness.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register
from allpayer.quality.measures._common import claim_result, COMMON_VALUESETS, common_exclusions, dated_lines, with_exclusions


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    excl = common_exclusions(ctx, population)
    excl = excl.filter(excl.exclusion_reason != "frailty_81plus")
    mast = dated_lines(ctx, "bilateral_mastectomy", dt.date(1900, 1, 1), ctx.period_end)
    w = ibis.window(group_by=mast.person_id, order_by=[mast.service_date, mast.claim_id])
    mast = mast.mutate(_rn=ibis.row_number().over(w))
    mast = mast.filter(mast._rn == 0)
    mast = mast.select(person_id=mast.person_id, exclusion_reason=ibis.literal("bilateral_mastectomy"),
                       exclusion_id=mast.claim_id, exclusion_date=mast.service_date)
    pop_ids = population.select(_pp=population.person_id)
    mast = mast.join(pop_ids, mast.person_id == pop_ids._pp).drop("_pp")
    allx = ibis.union(excl, mast.anti_join(excl, "person_id"), distinct=False)
    base = with_exclusions(population.select("person_id"), allx)
    start = dt.date(ctx.year - 2, 10, 1)
    v = dated_lines(ctx, "mammography", start, ctx.period_end)
    w = ibis.window(group_by=v.person_id, order_by=[ibis.desc(v.service_date), v.claim_id])
    v = v.mutate(_rn=ibis.row_number().over(w))
    v = v.filter(v._rn == 0).select(_vp=v.person_id, visit_id=v.claim_id, visit_date=v.service_date)
    j = base.left_join(v, base.person_id == v._vp)
    has = j._vp.notnull()
    return claim_result(j, has, j.visit_id, j.visit_date, ibis.ifelse(~has, ibis.null("string"), "mammogram"))


MEASURE = register(
    Measure(
        id="hedis_bcs_e",
        name="Breast cancer screening (BCS-E)",
        kind="member",
        compute=compute,
        ages=(52, 74),
        gender="female",
        enrollment=Enrollment(max_gaps=1, max_gap_days=45, anchor="end", years=2, per_year=True, lead_in_months=3),
        valuesets=("mammography", "bilateral_mastectomy", *COMMON_VALUESETS),
        lookback_months=27,
        history_valuesets=("bilateral_mastectomy",),
        description=__doc__.split("\n\n", 1)[1],
        source="HEDIS MY2024 Breast Cancer Screening (BCS-E), public description",
    )
)
