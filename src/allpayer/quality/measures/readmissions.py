"""All-cause 30-day readmissions, local version (HEDIS PCR-like), labelled "unadjusted observed".

An inverse measure (lower is better). It is NOT the risk-standardized CMS hospital-wide
readmission measure (QID 479), which is loaded as a supplied result (`supplied.py`); this rate is
the observed share of index discharges followed by an unplanned readmission, with no risk
adjustment. Events, not members: one row per index discharge. Project code lists, not certified.

- Index stays: acute inpatient episodes (bill type 11x; interim bills merged; direct transfers, a
  new admission on or the day after a discharge, merged into one episode from the first
  admission to the last discharge) discharged from 1 January to 1 December of the measurement
  year, of attributed members aged 18 or older on the discharge date.
- Continuous enrollment: 365 days before the discharge through 30 days after, at most one gap of
  up to 45 days (checked over the whole window; HEDIS allows the gap only before the discharge).
- Excluded (in this order): hospice in the year; died during the stay (discharge disposition 20,
  40, 41, 42); a principal diagnosis of pregnancy or childbirth (`pcr_pregnancy_dx`) or a
  perinatal condition (`pcr_perinatal_dx`) on any stay of the episode; admitted and discharged on
  the same day.
- Numerator (a readmission): an acute inpatient episode admitted 1 to 30 days after the index
  discharge that is not planned.

Planned readmissions: a simplified form of the CMS planned readmission algorithm (version 4.0).
Only its "always planned" part is applied: a stay is planned when any of its claims has an MS-DRG
for transplant, maintenance chemotherapy, radiotherapy or rehabilitation
(`planned_readmission_drg`, when that value set is loaded), a principal diagnosis of
chemotherapy, radiotherapy, rehabilitation or transplant aftercare (`planned_readmission_dx`:
Z51.0, Z51.1x, Z51.89, Z48.02), or an organ or stem-cell transplant procedure
(`planned_readmission_px`, ICD-10-PCS). The algorithm's second part (potentially planned
procedures without an acute principal diagnosis) is not applied, so a few planned readmissions
count as unplanned.
"""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from allpayer.core.claims import PROCEDURE_COLUMNS
from allpayer.quality.events import (
    ACUTE_INPATIENT_FACILITY_TYPES,
    Outcome,
    days_after,
    decide,
    enrolled_around,
    enrollment_window_text,
    event_claims,
    first_stay_between,
    in_population,
    inpatient_stays,
    merge_transfers,
    person_exclusions,
)
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register

ENROLLMENT = Enrollment(max_gaps=1, max_gap_days=45, anchor=None)
WINDOW = 30
DIED_DISPOSITIONS = ("20", "40", "41", "42")
LABEL = "unadjusted observed"


def planned_flag(ctx: MeasureContext):
    """A line flag: the claim line has an always-planned procedure or MS-DRG (see the module
    docstring; the planned principal diagnoses are read by `compute`)."""
    px = ctx.matcher("planned_readmission_px", ("icd10pcs",))
    drg = ctx.matcher("planned_readmission_drg", ("drg",)) if "planned_readmission_drg" in ctx.valuesets else None

    def flag(t: ir.Table) -> ir.BooleanValue:
        out = ibis.literal(False)
        for c in PROCEDURE_COLUMNS:
            if c in t.columns:
                out = out | px(t[c].fill_null(""))
        if drg is not None and "drg_code" in t.columns:
            out = out | drg(t.drg_code.fill_null(""))
        return out
    return flag


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    claims = event_claims(ctx, "pcr", {"planned_code": planned_flag(ctx)}, planned_dx=("planned_readmission_dx", True),
                          pregnancy=("pcr_pregnancy_dx", True), perinatal=("pcr_perinatal_dx", True))
    claims = claims.mutate(planned=claims.planned_code | claims.planned_dx)
    flags = ["planned", "pregnancy", "perinatal"]
    episodes = merge_transfers(inpatient_stays(claims, ACUTE_INPATIENT_FACILITY_TYPES, flags=flags), flags=flags)
    idx = episodes.filter((episodes.discharge_date >= ctx.period_start)
                          & (episodes.discharge_date <= ibis.date(ctx.year, 12, 1)))
    idx = in_population(idx, population, "discharge_date", 18, ctx=ctx)
    idx = idx.mutate(event_id=idx.discharge_date.cast("string").concat(":", idx.claim_id))
    unplanned = episodes.filter(~episodes.planned.fill_null(False))
    idx = first_stay_between(idx, unplanned, date_col="discharge_date", lo=1, hi=WINDOW, key=["event_id"],
                             prefix="readm")
    idx = enrolled_around(idx, ctx, ENROLLMENT, date_col="discharge_date", before_days=365, after_days=WINDOW)
    pe = person_exclusions(ctx)
    pe = pe.filter(pe.exclusion_reason == "hospice").rename(_pe_person="person_id")
    idx = idx.left_join(pe, idx.person_id == pe._pe_person).drop("_pe_person")
    claim = "medical_claim"
    disp = idx.discharge_disposition_code.fill_null("")
    outcomes = [
        Outcome(~idx.enrolled, in_denominator=False, excluded=False, reason="not_continuously_enrolled",
                source="eligibility", evidence_id=None, evidence_date=None,
                value=enrollment_window_text(idx)),
        Outcome(idx.exclusion_reason.notnull(), in_denominator=True, excluded=True, reason=idx.exclusion_reason,
                source=idx.exclusion_source, evidence_id=idx.exclusion_id, evidence_date=idx.exclusion_date,
                value=idx.exclusion_reason),
        Outcome(disp.isin(list(DIED_DISPOSITIONS)), in_denominator=True, excluded=True, reason="died_during_stay",
                source=claim, evidence_id=idx.last_claim_id, evidence_date=idx.discharge_date,
                value=ibis.literal("discharge disposition ").concat(disp)),
        Outcome(idx.pregnancy.fill_null(False), in_denominator=True, excluded=True, reason="pregnancy",
                source=claim, evidence_id=idx.claim_id, evidence_date=idx.admission_date, value=idx.first_principal_dx),
        Outcome(idx.perinatal.fill_null(False), in_denominator=True, excluded=True, reason="perinatal",
                source=claim, evidence_id=idx.claim_id, evidence_date=idx.admission_date, value=idx.first_principal_dx),
        Outcome(idx.admission_date == idx.discharge_date, in_denominator=True, excluded=True, reason="same_day_stay",
                source=claim, evidence_id=idx.claim_id, evidence_date=idx.admission_date,
                value=ibis.literal("admitted and discharged the same day")),
    ]
    hit = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                  evidence_id=idx.readm_claim_id, evidence_date=idx.readm_date,
                  value=ibis.literal("unplanned readmission on day ")
                  .concat(days_after(idx.readm_date, idx.discharge_date).cast("string")))
    miss = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                   evidence_id=idx.last_claim_id, evidence_date=idx.discharge_date,
                   value=ibis.literal(f"no unplanned readmission within {WINDOW} days"))
    return decide(idx, outcomes, numerator=idx.readm_date.notnull(), hit=hit, miss=miss, date_col="discharge_date")


MEASURE = register(Measure(
    id="hedis_pcr",
    name="All-cause 30-day readmissions, unadjusted observed (local version of HEDIS PCR)",
    kind="event",
    compute=compute,
    inverse=True,
    enrollment=ENROLLMENT,
    enrollment_window="measure",
    valuesets=("planned_readmission_dx", "planned_readmission_px", "pcr_pregnancy_dx", "pcr_perinatal_dx", "hospice"),
    label=LABEL,
    description="Share of acute inpatient discharges followed by an unplanned acute readmission within 30 days; "
                "observed, not risk-adjusted",
    source="HEDIS MY2024 Plan All-Cause Readmissions (public summary), observed rate only; CMS planned readmission "
           "algorithm v4.0 (always-planned part, simplified)",
))
