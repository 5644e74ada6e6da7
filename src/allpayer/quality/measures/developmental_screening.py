"""Developmental screening in the first three years of life (C-DEV, CMS Child Core Set).

Follows the public description of the CMS Child Core Set C-DEV measure, with the project's own
code list (not certified):

- Population: attributed children who turn 1, 2 or 3 in the measurement year (age 1-3 on
  31 December).
- Continuous enrollment: the 12 months before the birthday in the measurement year (from the day
  after the previous birthday through the birthday), with at most one gap of up to 45 days; the
  child must be enrolled on the birthday. Children who fail it are not in the denominator
  (``exclusion_reason`` is not used for them: they are left out of the initial population).
- Numerator: a developmental screening with a standardized tool (`developmental_screening`: CPT
  96110) in those 12 months (on or before the birthday).
- Exclusion: hospice in the measurement year.

A birthday on 29 February counts on 28 February in other years.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register
from allpayer.quality.measures._common import claim_result, common_exclusions, with_exclusions

RULE = Enrollment(max_gaps=1, max_gap_days=45, anchor="end")


def birthday_window(population: ir.Table, year: int) -> ir.Table:
    """`population` with ``birthday`` (in `year`) and ``window_start`` (the day after the
    birthday a year earlier)."""
    b = population.birth_date
    leap = (b.month() == 2) & (b.day() == 29)
    day = ibis.ifelse(leap, 28, b.day())
    birthday = ibis.date(ibis.literal(year), b.month(), day)
    prev = ibis.date(ibis.literal(year - 1), b.month(), day)
    return population.mutate(birthday=birthday, window_start=prev + ibis.interval(days=1))


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    pop = birthday_window(population, ctx.year)
    pop = ctx.enrolled(pop, "window_start", "birthday", RULE)
    # Stored: the exclusions, the screening window and the result each read the enrolled children.
    pop = ctx.store("cdev_enrolled", pop.filter(pop.enrolled).drop("enrolled"))
    excl = common_exclusions(ctx, pop, institutional=False, frailty=False)
    excl = excl.filter(excl.exclusion_reason == "hospice")
    base = with_exclusions(pop.select("person_id", "birthday", "window_start"), excl)
    s = ctx.lines_in("developmental_screening")
    s = s.select(_sp=s.person_id, screen_id=s.claim_id, screen_date=s.service_date, screen_code=s.hcpcs_code)
    m = base.join(s, (base.person_id == s._sp) & (s.screen_date >= base.window_start) & (s.screen_date <= base.birthday))
    w = ibis.window(group_by=m.person_id, order_by=[ibis.desc(m.screen_date), m.screen_id])
    m = m.mutate(_rn=ibis.row_number().over(w))
    m = m.filter(m._rn == 0).select("_sp", "screen_id", "screen_date", "screen_code")
    j = base.left_join(m, base.person_id == m._sp)
    has = j._sp.notnull()
    return claim_result(j, has, j.screen_id, j.screen_date, ibis.ifelse(has, j.screen_code, "no screening by " + j.birthday.cast("string")))


MEASURE = register(
    Measure(
        id="cdev",
        name="Developmental screening in the first three years of life",
        kind="member",
        compute=compute,
        ages=(1, 3),
        enrollment=RULE,
        enrollment_window="measure",
        valuesets=("developmental_screening", "hospice"),
        description=__doc__.split("\n\n", 1)[1],
        source="CMS Child Core Set, Developmental Screening in the First Three Years of Life (C-DEV), public description",
    )
)
