"""Follow-up after hospitalization for mental illness (HEDIS FUH), 7 and 30 days.

Follows the public description of HEDIS MY2024 FUH with the project's own code lists (not
certified). Events, not members: one row per discharge.

- Events: acute inpatient discharges (bill type 11x; interim bills of one admission are one stay,
  and direct transfers, a new admission on or the day after a discharge, are merged into one
  episode discharged at its last discharge) from 1 January to 1 December of the measurement year
  whose principal diagnosis (of the episode's last stay) is a mental illness (`mental_illness_dx`)
  or intentional self-harm (`self_harm_dx`), of attributed members aged 6 or older on the
  discharge date.
- Continuous enrollment: the discharge date through 30 days after, no gap (both rates).
- Excluded (in this order): hospice or death in the year; a readmission to acute inpatient care
  for mental illness within 30 days after the discharge (the later discharge is the event
  instead, when it falls in the period); a readmission to acute inpatient care for anything else
  within 30 days; an admission to nonacute inpatient care (bill types 18x, 21x, 28x, 86x) on the
  discharge date or within 30 days after.
- Numerator: a follow-up visit within 7 (30) days after the discharge, not on the discharge date:
  an outpatient, telehealth, transitional care management, behavioral-health, partial
  hospitalization or intensive outpatient visit whose principal diagnosis is a mental illness or
  intentional self-harm. (HEDIS also counts any visit with a mental-health provider; the roster's
  specialty is not used here.)
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from allpayer.quality.events import (
    ACUTE_INPATIENT_FACILITY_TYPES,
    NONACUTE_INPATIENT_FACILITY_TYPES,
    Outcome,
    days_after,
    decide,
    enrolled_around,
    enrollment_window_text,
    event_claims,
    first_stay_between,
    first_visit_between,
    in_population,
    inpatient_stays,
    merge_transfers,
    visit_code_flag,
    visits,
    with_person_exclusions,
)
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register

ENROLLMENT = Enrollment(max_gaps=0, max_gap_days=0, anchor=None)
FOLLOW_UP_SETS = ("followup_outpatient_visit", "followup_telehealth", "followup_transitional_care",
                  "followup_bh_visit", "followup_partial_hosp_iop")
WINDOW = 30


def mental_health_stays(ctx: MeasureContext, claims: ir.Table) -> ir.Table:
    """Acute episodes (direct transfers merged) with ``mental_health``: the principal diagnosis of
    the episode's last stay is a mental illness or intentional self-harm."""
    acute = merge_transfers(inpatient_stays(claims, ACUTE_INPATIENT_FACILITY_TYPES))
    mi = ctx.matcher("mental_illness_dx", ("icd10cm",))
    sh = ctx.matcher("self_harm_dx", ("icd10cm",))
    dx = acute.principal_dx.fill_null("")
    return acute.mutate(mental_health=mi(dx) | sh(dx))


def _compute(days: int):
    def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
        claims = event_claims(ctx, "fuh", {"visit": visit_code_flag(ctx, FOLLOW_UP_SETS)},
                              mi_principal=("mental_illness_dx", True), sh_principal=("self_harm_dx", True))
        claims = claims.mutate(_fu=claims.visit & (claims.mi_principal | claims.sh_principal))
        # Stored at the steps that later steps read more than once (each window join reads its
        # events twice), so that no statement repeats the pipeline before it.
        episodes = ctx.store(f"hedis_fuh_{days}d_episodes", mental_health_stays(ctx, claims))
        idx = episodes.filter(episodes.mental_health & (episodes.discharge_date >= ctx.period_start)
                              & (episodes.discharge_date <= ibis.date(ctx.year, 12, 1)))
        idx = in_population(idx, population, "discharge_date", 6, ctx=ctx)
        idx = idx.mutate(event_id=idx.discharge_date.cast("string").concat(":", idx.claim_id))
        idx = ctx.store(f"hedis_fuh_{days}d_discharges", idx)
        idx = first_stay_between(idx, episodes, date_col="discharge_date", lo=1, hi=WINDOW, key=["event_id"],
                                 prefix="readm", carry=["mental_health"])
        nonacute = inpatient_stays(claims, NONACUTE_INPATIENT_FACILITY_TYPES)
        idx = first_stay_between(idx, nonacute, date_col="discharge_date", lo=0, hi=WINDOW, key=["event_id"],
                                 prefix="nonacute")
        idx = enrolled_around(idx, ctx, ENROLLMENT, date_col="discharge_date", before_days=0, after_days=WINDOW)
        idx = with_person_exclusions(idx, ctx)
        idx = ctx.store(f"hedis_fuh_{days}d_index", idx.mutate(_window=enrollment_window_text(idx)))
        fu = visits(claims, claims._fu)
        idx = first_visit_between(idx, fu, date_col="discharge_date", lo=1, hi=days, key=["event_id"], prefix="fu")
        claim = "medical_claim"

        def on_day(d):
            return days_after(d, idx.discharge_date).cast("string")

        outcomes = [
            Outcome(~idx.enrolled, in_denominator=False, excluded=False, reason="not_continuously_enrolled",
                    source="eligibility", evidence_id=None, evidence_date=None,
                    value=idx._window),
            Outcome(idx.exclusion_reason.notnull(), in_denominator=True, excluded=True, reason=idx.exclusion_reason,
                    source=idx.exclusion_source, evidence_id=idx.exclusion_id, evidence_date=idx.exclusion_date,
                    value=idx.exclusion_reason),
            Outcome(idx.readm_date.notnull() & idx.readm_mental_health.fill_null(False), in_denominator=True,
                    excluded=True, reason=f"readmitted_for_mental_illness_within_{WINDOW}_days", source=claim,
                    evidence_id=idx.readm_claim_id, evidence_date=idx.readm_date,
                    value=ibis.literal("readmitted on day ").concat(on_day(idx.readm_date))
                    .concat("; that discharge counts instead")),
            Outcome(idx.readm_date.notnull(), in_denominator=True, excluded=True,
                    reason=f"readmitted_acute_within_{WINDOW}_days", source=claim, evidence_id=idx.readm_claim_id,
                    evidence_date=idx.readm_date, value=ibis.literal("readmitted on day ").concat(on_day(idx.readm_date))),
            Outcome(idx.nonacute_date.notnull(), in_denominator=True, excluded=True,
                    reason=f"nonacute_admission_within_{WINDOW}_days", source=claim,
                    evidence_id=idx.nonacute_claim_id, evidence_date=idx.nonacute_date,
                    value=ibis.literal("admitted to nonacute care on day ").concat(on_day(idx.nonacute_date))),
        ]
        hit = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                      evidence_id=idx.fu_claim_id, evidence_date=idx.fu_date,
                      value=ibis.literal("follow-up on day ").concat(on_day(idx.fu_date)))
        miss = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                       evidence_id=idx.last_claim_id, evidence_date=idx.discharge_date,
                       value=ibis.literal(f"no follow-up within {days} days"))
        return decide(idx, outcomes, numerator=idx.fu_date.notnull(), hit=hit, miss=miss, date_col="discharge_date")
    return compute


for _days in (7, 30):
    register(Measure(
        id=f"hedis_fuh_{_days}d",
        name=f"Follow-up after hospitalization for mental illness, {_days} days (HEDIS FUH)",
        kind="event",
        compute=_compute(_days),
        enrollment=ENROLLMENT,
        enrollment_window="measure",
        valuesets=("mental_illness_dx", "self_harm_dx", "hospice", *FOLLOW_UP_SETS),
        description=f"Discharges for mental illness or self-harm followed by a mental-health visit within {_days} days",
        source="HEDIS MY2024 Follow-Up After Hospitalization for Mental Illness (public summary)",
    ))
