"""Follow-up after ED visit for substance use (HEDIS FUA, 30 and 7 days) and follow-up after ED
visit for alcohol and other drug dependence (NQF 2605, the Medicare version, 30 days).

Both follow public descriptions (HEDIS MY2024 FUA; NQF 2605 as used in the CMS ACO measure set)
with the project's own code lists (not certified). Events, not members: one row per ED visit.
Both depend on substance-use diagnoses: when the program's claims were redacted under 42 CFR
Part 2 the rate is "not reportable: redacted data" (declared with ``depends_on_sud``).

HEDIS FUA (``hedis_fua_30d``, ``hedis_fua_7d``):

- Events: ED visits from 1 January to 1 December with a principal diagnosis of substance use
  (`sud_dx`: ICD-10-CM F10-F16, F18, F19) or any diagnosis of drug overdose
  (`drug_overdose_dx`), of attributed members aged 13 or older on the visit date.
- Continuous enrollment: the visit date through 30 days after, no gap (both rates).
- Excluded: hospice or death in the year; an inpatient admission (acute or nonacute) on the
  visit date or within 30 days after.
- De-duplication: after the exclusions, one ED visit per 31-day window.
- Numerator: on the visit date or within 30 (7) days after, an outpatient, telehealth,
  behavioral-health, partial-hospitalization/intensive-outpatient or substance-use treatment
  visit with any diagnosis of substance use or drug overdose, or a substance-use medication
  administration (`sud_medication`: opioid treatment program bundles, buprenorphine, naltrexone,
  methadone codes) whatever its diagnosis. Pharmacy dispensing of these drugs is not counted (the
  project ships no NDC list).

NQF 2605 (``fu_ed_aod_30d``): the same steps for members aged 18 or older, ED visits with a
principal diagnosis of substance use (overdose alone does not qualify), and follow-up visits
whose principal diagnosis is substance use (or a substance-use medication administration).
"""

from __future__ import annotations

from allpayer.quality.events import code_flag, ed_follow_up, event_claims, visit_code_flag
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register

ENROLLMENT = Enrollment(max_gaps=0, max_gap_days=0, anchor=None)
FOLLOW_UP_SETS = ("followup_outpatient_visit", "followup_telehealth", "followup_bh_visit",
                  "followup_partial_hosp_iop", "sud_treatment")
VALUESETS = ("sud_dx", "drug_overdose_dx", "sud_medication", "hospice", *FOLLOW_UP_SETS)


def _claims(ctx: MeasureContext):
    return event_claims(ctx, "fua", {"visit": visit_code_flag(ctx, FOLLOW_UP_SETS), "medication": code_flag(ctx, ["sud_medication"])},
                        sud_principal=("sud_dx", True), sud_any=("sud_dx", False),
                        overdose_any=("drug_overdose_dx", False))


def _fua(days: int):
    def compute(ctx: MeasureContext, population):
        claims = _claims(ctx)
        return ed_follow_up(
            ctx, population, claims,
            qualifies=lambda c: c.sud_principal | c.overdose_any,
            follow_up=lambda c: (c.visit & (c.sud_any | c.overdose_any)) | c.medication,
            days=days, last_day=(12, 1), min_age=13, admission_days=30, dedup_days=31,
            enrollment=ENROLLMENT, enrollment_after_days=30, name=f"hedis_fua_{days}d",
        )
    return compute


def _nqf2605(ctx: MeasureContext, population):
    claims = _claims(ctx)
    return ed_follow_up(
        ctx, population, claims,
        qualifies=lambda c: c.sud_principal,
        follow_up=lambda c: (c.visit & c.sud_principal) | c.medication,
        days=30, last_day=(12, 1), min_age=18, admission_days=30, dedup_days=31,
        enrollment=ENROLLMENT, name="fu_ed_aod_30d",
    )


for _days in (30, 7):
    register(Measure(
        id=f"hedis_fua_{_days}d",
        name=f"Follow-up after ED visit for substance use, {_days} days (HEDIS FUA)",
        kind="event",
        compute=_fua(_days),
        enrollment=ENROLLMENT,
        enrollment_window="measure",
        valuesets=VALUESETS,
        depends_on_sud=True,
        description=f"ED visits for substance use or drug overdose followed by treatment within {_days} days",
        source="HEDIS MY2024 Follow-Up After Emergency Department Visit for Substance Use (public summary)",
    ))

register(Measure(
    id="fu_ed_aod_30d",
    name="Follow-up after ED visit for alcohol and other drug dependence, 30 days (NQF 2605)",
    kind="event",
    compute=_nqf2605,
    enrollment=ENROLLMENT,
    enrollment_window="measure",
    valuesets=VALUESETS,
    depends_on_sud=True,
    description="ED visits with a principal diagnosis of alcohol or other drug dependence followed by a visit "
                "for it within 30 days (members 18 and older)",
    source="NQF 2605 Follow-Up After Emergency Department Visit for Mental Illness or Alcohol and Other Drug "
           "Dependence (AOD part), CMS ACO measure set (public summary)",
))
