"""Follow-up after ED visit for mental illness (HEDIS FUM), 30 and 7 days.

Follows the public description of HEDIS MY2024 FUM, with the project's own code lists (not
certified). Events, not members: one result row per ED visit.

- Events: ED visits (facility and professional claims of one person on one date are one visit)
  from 1 January to 1 December of the measurement year with a principal diagnosis of mental
  illness (`mental_illness_dx`) or intentional self-harm (`self_harm_dx`), of attributed members
  aged 6 or older on the visit date.
- Continuous enrollment: the visit date through 30 days after, no gap (both rates).
- Excluded: hospice or death in the year; an acute or nonacute inpatient admission on the visit
  date or within the 30 days after (whatever its diagnosis).
- De-duplication: after the exclusions, one ED visit per 31-day window counts (the first; the
  next one counted is at least 31 days later).
- Numerator: an outpatient, telehealth, behavioral-health, partial-hospitalization or intensive
  outpatient visit (`followup_*` sets) on the visit date or within 30 (7) days after, whose
  principal diagnosis is a mental illness, or intentional self-harm with a mental illness among
  its diagnoses.
"""

from __future__ import annotations

from allpayer.quality.events import ed_follow_up, event_claims, visit_code_flag
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register

ENROLLMENT = Enrollment(max_gaps=0, max_gap_days=0, anchor=None)
FOLLOW_UP_SETS = ("followup_outpatient_visit", "followup_telehealth", "followup_bh_visit", "followup_partial_hosp_iop")
VALUESETS = ("mental_illness_dx", "self_harm_dx", "hospice", *FOLLOW_UP_SETS)


def _compute(days: int):
    def compute(ctx: MeasureContext, population):
        claims = event_claims(ctx, "fum", {"visit": visit_code_flag(ctx, FOLLOW_UP_SETS)},
                              mi_principal=("mental_illness_dx", True), mi_any=("mental_illness_dx", False),
                              sh_principal=("self_harm_dx", True))
        return ed_follow_up(
            ctx, population, claims,
            qualifies=lambda c: c.mi_principal | c.sh_principal,
            follow_up=lambda c: c.visit & (c.mi_principal | (c.sh_principal & c.mi_any)),
            days=days, last_day=(12, 1), min_age=6, admission_days=30, dedup_days=31,
            enrollment=ENROLLMENT, enrollment_after_days=30, name=f"hedis_fum_{days}d",
        )
    return compute


for _days in (30, 7):
    register(Measure(
        id=f"hedis_fum_{_days}d",
        name=f"Follow-up after ED visit for mental illness, {_days} days (HEDIS FUM)",
        kind="event",
        compute=_compute(_days),
        enrollment=ENROLLMENT,
        enrollment_window="measure",
        valuesets=VALUESETS,
        description=f"ED visits for mental illness or self-harm followed by a mental-health visit within {_days} days",
        source="HEDIS MY2024 Follow-Up After Emergency Department Visit for Mental Illness (public summary)",
    ))
