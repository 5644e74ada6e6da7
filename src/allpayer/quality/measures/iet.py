"""Initiation and engagement of substance use disorder treatment (HEDIS IET / CMS QID 305).

Two rates over the same events: ``iet`` (initiation within 14 days) and ``iet_engagement``.
Follows the public description of HEDIS MY2024 IET, simplified as stated below, with the
project's own code lists (not certified). Events, not members: one row per SUD episode. Depends
on substance-use diagnoses: a program whose claims were redacted under 42 CFR Part 2 gets "not
reportable: redacted data".

- Episodes: a claim with a substance-use diagnosis in any position (`sud_dx`) in any setting
  (outpatient, telehealth, ED, inpatient, ...) is an SUD encounter. Its episode date (IESD) is the
  service date, or the discharge date of an inpatient claim (bill types 11x, 18x, 21x, 28x, 86x).
  An encounter starts a new episode when the person had no SUD encounter and no substance-use
  medication administration (`sud_medication`) in the 194 days before its start (the admission
  date for a stay): the negative diagnosis history. Episodes dated from 15 November of the year
  before to 14 November of the measurement year count, one per person and date (an inpatient
  claim first, then the lowest claim id). Members aged 13 or older on the IESD.
- Continuous enrollment: 194 days before the IESD through 47 days after, no gap.
- Excluded: hospice or death in the measurement year.
- Initiation (``iet``): an inpatient episode initiates by itself; otherwise a treatment event
  from the IESD through 13 days after, on a claim other than the episode's own: an outpatient,
  telehealth, behavioral-health, intensive outpatient/partial hospitalization or substance-use
  treatment visit (`followup_*`, `sud_treatment`) with a substance-use diagnosis, an inpatient
  admission with one, or a substance-use medication administration.
- Engagement (``iet_engagement``): initiated, and from the day after initiation through 34 days
  after it either treatment events (as above) on two or more different dates, or one long-acting
  medication administration (`sud_long_acting_medication`: extended-release naltrexone or
  buprenorphine). Pharmacy dispensing is not counted (no NDC list is shipped).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from allpayer.quality.events import (
    ACUTE_INPATIENT_FACILITY_TYPES,
    NONACUTE_INPATIENT_FACILITY_TYPES,
    Outcome,
    code_flag,
    days_after,
    decide,
    enrolled_around,
    enrollment_window_text,
    event_claims,
    in_population,
    visit_code_flag,
    with_person_exclusions,
)
from allpayer.quality.framework import Enrollment, Measure, MeasureContext, register

ENROLLMENT = Enrollment(max_gaps=0, max_gap_days=0, anchor=None)
HISTORY_DAYS = 194
INITIATION_DAYS = 13  # the IESD and the 13 days after: 14 days
ENGAGEMENT_DAYS = 34
ENGAGEMENT_EVENTS = 2
TREATMENT_SETS = ("followup_outpatient_visit", "followup_telehealth", "followup_bh_visit",
                  "followup_partial_hosp_iop", "sud_treatment")
VALUESETS = ("sud_dx", "sud_medication", "sud_long_acting_medication", "hospice", *TREATMENT_SETS)


def sud_claims(ctx: MeasureContext) -> ir.Table:
    """Claims with the IET flags: ``sud`` (a substance-use diagnosis), ``medication``,
    ``long_acting``, ``treatment`` (a treatment visit code on a line that is not ED or
    inpatient), ``inpatient_stay`` (an inpatient facility claim), ``start_date`` and ``iesd``."""
    c = event_claims(ctx, "iet", {
        "medication": code_flag(ctx, ["sud_medication"]),
        "long_acting": code_flag(ctx, ["sud_long_acting_medication"]),
        "treatment": visit_code_flag(ctx, TREATMENT_SETS),
    }, sud=("sud_dx", False))
    inpatient = (c.claim_type == "institutional") & c.facility_type.isin(
        list(ACUTE_INPATIENT_FACILITY_TYPES + NONACUTE_INPATIENT_FACILITY_TYPES))
    return c.mutate(
        inpatient_stay=inpatient,
        start_date=ibis.ifelse(inpatient, c.admission_date, c.visit_date),
        iesd=ibis.ifelse(inpatient, c.discharge_date, c.visit_date),
    )


def episodes(ctx: MeasureContext, claims: ir.Table, population: ir.Table) -> ir.Table:
    """Index episodes (see the module docstring): ``person_id, iesd, claim_id, inpatient_stay,
    event_id, age``."""
    enc = claims.filter(claims.sud)
    hist = claims.filter(claims.sud | claims.medication)
    # A claim with a history claim (SUD diagnosis or medication) of the same person dated in the
    # HISTORY_DAYS before its start is no index episode. The latest history date before each start
    # comes from one ordered pass over the person's claims (on one date the encounters come before
    # the history, so only earlier dates count), not from joining each encounter to every history
    # claim in its window (at 650,000 members 7.7 million pairs for one program's 230,000 encounters).
    ev = ibis.union(
        enc.select(_p=enc.person_id, _d=enc.start_date, _h=ibis.literal(0, "int8"), _c=enc.claim_id),
        hist.select(_p=hist.person_id, _d=hist.start_date, _h=ibis.literal(1, "int8"), _c=ibis.null("string")),
        distinct=False,
    )
    before = ibis.window(group_by=ev._p, order_by=[ev._d, ev._h], rows=(None, -1))
    ev = ev.mutate(_last=ibis.ifelse(ev._h == 1, ev._d, ibis.null("date")).max().over(before))
    dirty = ev.filter((ev._h == 0) & (ev._last >= ev._d - ibis.interval(days=HISTORY_DAYS))).select(_dc=ev._c)
    enc = enc.anti_join(dirty, enc.claim_id == dirty._dc)
    lo, hi = dt.date(ctx.year - 1, 11, 15), dt.date(ctx.year, 11, 14)
    enc = enc.filter((enc.iesd >= lo) & (enc.iesd <= hi))
    w = ibis.window(group_by=[enc.person_id, enc.iesd], order_by=[ibis.desc(enc.inpatient_stay), enc.claim_id])
    enc = enc.mutate(_rn=ibis.row_number().over(w))
    enc = enc.filter(enc._rn == 0).select("person_id", "iesd", "claim_id", "inpatient_stay")
    enc = in_population(enc, population, "iesd", 13, ctx=ctx)
    return enc.mutate(event_id=enc.iesd.cast("string").concat(":", enc.claim_id))


def treatment_events(claims: ir.Table) -> ir.Table:
    """Initiation and engagement events: ``_tp, _td, _tc, _tl`` (person, date, claim, long-acting)."""
    c = claims.filter((claims.treatment & claims.sud) | claims.medication | (claims.inpatient_stay & claims.sud))
    return c.select(_tp=c.person_id, _td=ibis.ifelse(c.inpatient_stay, c.admission_date, c.visit_date),
                    _tc=c.claim_id, _tl=c.long_acting)


def with_treatment(ep: ir.Table, claims: ir.Table) -> ir.Table:
    """Episodes with ``init_date``/``init_claim_id`` (NULL when not initiated) and
    ``engagement_dates``, ``engagement_long_acting``, ``engagement_claim_id`` (the event that
    completed engagement)."""
    tx = treatment_events(claims)
    j = ep.join(tx, [ep.person_id == tx._tp, tx._td >= ep.iesd,
                     tx._td <= ep.iesd + ibis.interval(days=INITIATION_DAYS), tx._tc != ep.claim_id])
    w = ibis.window(group_by=j.event_id, order_by=[j._td, j._tc])
    j = j.mutate(_rn=ibis.row_number().over(w))
    first = j.filter(j._rn == 0).select(_ie=j.event_id, _id=j._td, _ic=j._tc)
    out = ep.left_join(first, ep.event_id == first._ie)
    out = out.mutate(
        init_date=ibis.ifelse(out.inpatient_stay, out.iesd, out._id),
        init_claim_id=ibis.ifelse(out.inpatient_stay, out.claim_id, out._ic),
    ).drop("_ie", "_id", "_ic")
    e = out.filter(out.init_date.notnull()).select(_ee="event_id", _ep="person_id", _ei="init_date")
    k = e.join(tx, [e._ep == tx._tp, tx._td > e._ei, tx._td <= e._ei + ibis.interval(days=ENGAGEMENT_DAYS)])
    # the n-th distinct date completes engagement; a long-acting administration completes it at once
    k = k.mutate(_dr=ibis.dense_rank().over(ibis.window(group_by=k._ee, order_by=[k._td])))
    done = k.filter((k._dr >= ENGAGEMENT_EVENTS - 1) | k._tl)
    wd = ibis.window(group_by=done._ee, order_by=[done._td, done._tc])
    done = done.mutate(_rn=ibis.row_number().over(wd))
    done = done.filter(done._rn == 0).select(_de=done._ee, engagement_date=done._td, engagement_claim_id=done._tc)
    cnt = k.group_by(_ce=k._ee).aggregate(engagement_dates=k._td.nunique().cast("int64"),
                                          engagement_long_acting=k._tl.any())
    out = out.left_join(done, out.event_id == done._de).drop("_de")
    out = out.left_join(cnt, out.event_id == cnt._ce).drop("_ce")
    return out.mutate(engagement_dates=out.engagement_dates.fill_null(0),
                      engagement_long_acting=out.engagement_long_acting.fill_null(False))


def _compute(rate: str):
    def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
        # Every step reads only the claims with an SUD diagnosis or a medication: those are stored
        # once per payer, since each step reads them several times and each read would otherwise
        # join the payer's claim summary to its flags again.
        claims = sud_claims(ctx)
        claims = ctx.store("iet_claims", claims.filter(claims.sud | claims.medication), scope="payer")
        # Stored at the steps that later steps read more than once (joins back to the episodes),
        # so that no statement repeats the pipeline before it.
        ep = ctx.store(f"iet_{rate}_episodes", episodes(ctx, claims, population))
        ep = ctx.store(f"iet_{rate}_treatment", with_treatment(ep, claims))
        ep = enrolled_around(ep, ctx, ENROLLMENT, date_col="iesd", before_days=HISTORY_DAYS,
                             after_days=INITIATION_DAYS + ENGAGEMENT_DAYS)
        ep = with_person_exclusions(ep, ctx)
        claim = "medical_claim"
        outcomes = [
            Outcome(~ep.enrolled, in_denominator=False, excluded=False, reason="not_continuously_enrolled",
                    source="eligibility", evidence_id=None, evidence_date=None,
                    value=enrollment_window_text(ep)),
            Outcome(ep.exclusion_reason.notnull(), in_denominator=True, excluded=True, reason=ep.exclusion_reason,
                    source=ep.exclusion_source, evidence_id=ep.exclusion_id, evidence_date=ep.exclusion_date,
                    value=ep.exclusion_reason),
        ]
        if rate == "initiation":
            numerator = ep.init_date.notnull()
            hit = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                          evidence_id=ep.init_claim_id, evidence_date=ep.init_date,
                          value=ibis.ifelse(ep.inpatient_stay, ibis.literal("inpatient episode"),
                                            ibis.literal("treatment on day ")
                                            .concat(days_after(ep.init_date, ep.iesd).cast("string"))))
            miss = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                           evidence_id=ep.claim_id, evidence_date=ep.iesd,
                           value=ibis.literal(f"no treatment within {INITIATION_DAYS + 1} days"))
        else:
            numerator = ep.init_date.notnull() & ep.engagement_date.notnull()
            hit = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                          evidence_id=ep.engagement_claim_id, evidence_date=ep.engagement_date,
                          value=ibis.ifelse(ep.engagement_long_acting, ibis.literal("long-acting medication; "),
                                            ibis.literal("")).concat(ep.engagement_dates.cast("string"))
                          .concat(" engagement date(s)"))
            miss = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                           evidence_id=ibis.coalesce(ep.init_claim_id, ep.claim_id),
                           evidence_date=ibis.coalesce(ep.init_date, ep.iesd),
                           value=ibis.ifelse(ep.init_date.isnull(), ibis.literal("not initiated"),
                                             ep.engagement_dates.cast("string")
                                             .concat(f" engagement date(s) within {ENGAGEMENT_DAYS} days")))
        return decide(ep, outcomes, numerator=numerator, hit=hit, miss=miss, date_col="iesd")
    return compute


register(Measure(
    id="iet",
    name="Initiation of substance use disorder treatment, 14 days (HEDIS IET / QID 305, initiation rate)",
    kind="event",
    compute=_compute("initiation"),
    enrollment=ENROLLMENT,
    enrollment_window="measure",
    valuesets=VALUESETS,
    depends_on_sud=True,
    description="New SUD episodes with treatment initiated within 14 days",
    source="HEDIS MY2024 Initiation and Engagement of Substance Use Disorder Treatment (public summary); "
           "CMS QID 305",
))

register(Measure(
    id="iet_engagement",
    name="Engagement of substance use disorder treatment, 34 days after initiation (HEDIS IET, engagement rate)",
    kind="event",
    compute=_compute("engagement"),
    enrollment=ENROLLMENT,
    enrollment_window="measure",
    valuesets=VALUESETS,
    depends_on_sud=True,
    description="New SUD episodes initiated and followed by two or more treatment events (or a long-acting "
                "medication) within 34 days",
    source="HEDIS MY2024 Initiation and Engagement of Substance Use Disorder Treatment (public summary); "
           "CMS QID 305",
))
