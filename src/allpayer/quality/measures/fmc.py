"""Follow-up after ED visit for people with multiple high-risk chronic conditions (HEDIS FMC), 7 days.

Follows the public description of HEDIS MY2024 FMC with the project's own code lists (not
certified). Events, not members: one row per ED visit.

- Events: ED visits from 1 January to 24 December of the measurement year of attributed members
  aged 18 or older on the visit date who had two or more different chronic conditions before the
  visit: a diagnosis (any position, any claim) of the condition from 1 January of the year before
  the measurement year to the day before the visit. Conditions (value sets `fmc_chronic_*`):
  COPD and asthma, Alzheimer's disease and related dementia, chronic kidney disease, depression,
  heart failure, acute myocardial infarction, atrial fibrillation, stroke and transient ischemic
  attack.
- Continuous enrollment: 365 days before the visit through 7 days after, at most one gap of up to
  45 days, enrolled on the last day (the HEDIS rule allows the gap only in the 365 days before;
  here it is checked over the whole window).
- Excluded: hospice or death in the year; an inpatient admission (acute or nonacute) on the visit
  date or within 7 days after.
- De-duplication: after the exclusions, one ED visit per 8-day window.
- Numerator: a follow-up on the visit date or within 7 days after: an outpatient, telehealth,
  transitional care management, care management, behavioral-health or intensive outpatient
  visit, any diagnosis.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from allpayer.quality.events import diagnoses, ed_follow_up, event_claims, visit_code_flag
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, code_lookup, register

ENROLLMENT = Enrollment(max_gaps=1, max_gap_days=45, anchor="end")
CONDITIONS = (
    "fmc_chronic_copd_asthma", "fmc_chronic_dementia", "fmc_chronic_ckd", "fmc_chronic_depression",
    "fmc_chronic_heart_failure", "fmc_chronic_ami", "fmc_chronic_atrial_fibrillation", "fmc_chronic_stroke_tia",
)
FOLLOW_UP_SETS = ("followup_outpatient_visit", "followup_telehealth", "followup_transitional_care",
                  "followup_care_management", "followup_bh_visit", "followup_partial_hosp_iop")
MIN_CONDITIONS = 2


def with_conditions(ctx: MeasureContext, events: ir.Table) -> ir.Table:
    """ED visits (``person_id, visit_date``) of members with `MIN_CONDITIONS` or more different
    chronic conditions diagnosed from 1 January of the year before the measurement year to the
    day before the visit; adds ``conditions`` (how many)."""
    d = diagnoses(ctx)
    d = d.filter((d.service_date >= dt.date(ctx.year - 1, 1, 1)) & (d.service_date <= ctx.period_end))
    look = code_lookup(ctx.diagnosis_codes(), "code", {"_cat": lambda c: ibis.cases(
        *[(ctx.matcher(vs, ("icd10cm",))(c), vs) for vs in CONDITIONS], else_=ibis.null("string"))})
    look = look.filter(look._cat.notnull()).select(_lk_code="code", _cat="_cat")
    d = d.join(look, d.code == look._lk_code)
    d = d.select(_p=d.person_id, _d=d.service_date, _cat=d._cat).distinct()
    keys = events.select(_ep=events.person_id, _ev=events.visit_date).distinct()
    j = keys.join(d, [keys._ep == d._p, d._d < keys._ev])
    n = j.group_by("_ep", "_ev").aggregate(conditions=j._cat.nunique().cast("int64"))
    n = n.filter(n.conditions >= MIN_CONDITIONS)
    out = events.join(n, [events.person_id == n._ep, events.visit_date == n._ev])
    return out.drop("_ep", "_ev")


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    claims = event_claims(ctx, "fmc", {"visit": visit_code_flag(ctx, FOLLOW_UP_SETS)})
    return ed_follow_up(
        ctx, population, claims,
        qualifies=lambda c: ibis.literal(True),
        follow_up=lambda c: c.visit,
        days=7, last_day=(12, 24), min_age=18, admission_days=7, dedup_days=8,
        enrollment=ENROLLMENT, enrollment_before_days=365,
        restrict=lambda ev: with_conditions(ctx, ev), name="hedis_fmc",
    )


MEASURE = register(Measure(
    id="hedis_fmc",
    name="Follow-up after ED visit for people with multiple high-risk chronic conditions, 7 days (HEDIS FMC)",
    kind="event",
    compute=compute,
    enrollment=ENROLLMENT,
    enrollment_window="measure",
    valuesets=(*CONDITIONS, *FOLLOW_UP_SETS, "hospice"),
    description="ED visits of members with two or more chronic conditions followed by a visit within 7 days",
    source="HEDIS MY2024 Follow-Up After Emergency Department Visit for People With Multiple High-Risk Chronic "
           "Conditions (public summary)",
))
