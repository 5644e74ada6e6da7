"""Controlling high blood pressure (HEDIS CBP, QID 236).

Follows the public description of HEDIS MY2024 CBP, with the project's own code lists (not
certified):

- Population: attributed members 18-85 on 31 December, continuously enrolled over the year (one
  gap of up to 45 days, enrolled on 31 December).
- Denominator: hypertension (`hypertension_dx`) on outpatient, telephone or online visits
  (`followup_outpatient_visit`, `followup_telehealth`) on at least two different dates from
  1 January of the year before through 30 June of the measurement year.
- Exclusions: hospice, death in the measurement year, palliative care, end-stage renal disease, dialysis or a kidney transplant
  (`esrd_dialysis`, any date up to 31 December), pregnancy in the measurement year
  (`pregnancy_dx`), 66+ in long-term institutional care, 66+ with frailty and advanced illness,
  81+ with frailty.
- Numerator (controlled): the representative reading is the lowest systolic and the lowest
  diastolic recorded on the most recent date with a reading in the measurement year on or after
  the date of the second hypertension diagnosis (an earlier reading does not count); it is
  controlled when systolic < 140 and diastolic < 90. Readings are vitals (LOINC 8480-6, 8462-4)
  and CPT II codes on claims (3074F/3075F systolic < 140, 3077F >= 140; 3078F/3079F diastolic < 90,
  3080F >= 90). Readings taken during an inpatient stay or an ED visit (the observation's
  encounter, or the claim carrying the CPT II code, is inpatient or ED) are ignored. A member with
  no reading, or with only one of the two values on the most recent date, is not controlled.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import Measure, MeasureContext, register
from allpayer.quality.measures._common import COMMON_VALUESETS, common_exclusions, dated_lines, exclusion_source, with_exclusions

SYSTOLIC_LIMIT = Decimal("140")
DIASTOLIC_LIMIT = Decimal("90")
# CPT II value set -> (component, value standing for the range)
CPT2 = {
    "systolic_below_130_cpt2": ("systolic", "129"),
    "systolic_130_139_cpt2": ("systolic", "139"),
    "systolic_140_plus_cpt2": ("systolic", "140"),
    "diastolic_below_80_cpt2": ("diastolic", "79"),
    "diastolic_80_89_cpt2": ("diastolic", "89"),
    "diastolic_90_plus_cpt2": ("diastolic", "90"),
}
ACUTE = ("inpatient", "ed")
DX_LAST_DAY = (6, 30)  # the second hypertension diagnosis must fall on or before 30 June of the year
VISITS = ("followup_outpatient_visit", "followup_telehealth")
"""The visits a hypertension diagnosis counts on (HEDIS CBP: outpatient visits, telephone visits,
e-visits and virtual check-ins): the outpatient and telehealth visit codes of the follow-up
measures. A diagnosis on an ED visit, an inpatient stay or a lab line does not count."""


def hypertensive(ctx: MeasureContext) -> ir.Table:
    """People with hypertension on two different dates from 1 January of the year before to
    30 June of the measurement year, each on an outpatient, telephone or online visit (`VISITS`):
    ``person_id, second_dx_date`` (the second such date)."""
    d = ctx.dx_in("hypertension_dx")
    v = ibis.union(*[ctx.lines_in(name).select("claim_id", "claim_line_number") for name in VISITS])
    d = d.semi_join(v, [d.claim_id == v.claim_id, d.claim_line_number == v.claim_line_number])
    d = d.filter((d.service_date >= dt.date(ctx.year - 1, 1, 1)) & (d.service_date <= dt.date(ctx.year, *DX_LAST_DAY)))
    d = d.select("person_id", "service_date").distinct()
    w = ibis.window(group_by=d.person_id, order_by=d.service_date)
    d = d.mutate(_rn=ibis.row_number().over(w))
    return d.filter(d._rn == 1).select("person_id", second_dx_date=d.service_date)


def readings(ctx: MeasureContext) -> ir.Table:
    """Blood-pressure readings of the year outside inpatient/ED: ``person_id, reading_date,
    component, value, reading_id, source``."""
    o = ctx.in_period(ctx.observations, "observation_date")
    o = o.filter(o.setting.isnull())
    parts = []
    for vs, comp in (("systolic_bp", "systolic"), ("diastolic_bp", "diastolic")):
        x = o.filter(ctx.matcher(vs, ("loinc",))(o.code))
        parts.append(x.select(person_id=x.person_id, reading_date=x.observation_date, component=ibis.literal(comp),
                              value=x.value.cast("decimal(18, 4)"), reading_id=x.observation_id, source=x.source))
    for vs, (comp, value) in CPT2.items():
        c = ctx.in_period(ctx.lines_in(vs), "service_date")
        c = c.filter(~c.service_category.isin(ACUTE))
        parts.append(c.select(person_id=c.person_id, reading_date=c.service_date, component=ibis.literal(comp),
                              value=ibis.literal(Decimal(value), "decimal(18, 4)"), reading_id=c.claim_id,
                              source=ibis.literal("medical_claim")))
    return ibis.union(*parts, distinct=False)


def after_second_diagnosis(r: ir.Table, hyp: ir.Table) -> ir.Table:
    """The readings of `r` dated on or after the person's second hypertension diagnosis
    (`hyp`, from :func:`hypertensive`)."""
    h = hyp.select(_hp=hyp.person_id, _hd=hyp.second_dx_date)
    j = r.join(h, (r.person_id == h._hp) & (r.reading_date >= h._hd))
    return j.select(*r.columns)


def representative(r: ir.Table) -> ir.Table:
    """The lowest systolic and lowest diastolic of each person's most recent reading date:
    ``person_id, reading_date, systolic, diastolic, reading_id, source``."""
    day = r.group_by(["person_id", "reading_date"]).aggregate(
        systolic=r.value.min(where=r.component == "systolic"),
        diastolic=r.value.min(where=r.component == "diastolic"),
        reading_id=r.reading_id.min(),
        source=r.source.min(),
    )
    w = ibis.window(group_by=day.person_id, order_by=ibis.desc(day.reading_date))
    day = day.mutate(_rn=ibis.row_number().over(w))
    return day.filter(day._rn == 0).drop("_rn")


def compute(ctx: MeasureContext, population: ir.Table) -> ir.Table:
    hyp = ctx.store("cbp_hypertensive", hypertensive(ctx), scope="payer")
    den = ctx.store("cbp_den", population.semi_join(hyp, "person_id"))
    excl = common_exclusions(ctx, den)
    esrd = dated_lines(ctx, "esrd_dialysis", dt.date(1900, 1, 1), ctx.period_end)
    preg = dated_lines(ctx, "pregnancy_dx", ctx.period_start, ctx.period_end)
    females = den.filter(den.gender == "female").select(_f=den.person_id)
    preg = preg.join(females, preg.person_id == females._f).drop("_f")
    extra = []
    for t, reason, prio in ((esrd, "esrd_dialysis_transplant", 0), (preg, "pregnancy", 0)):
        w = ibis.window(group_by=t.person_id, order_by=[t.service_date, t.claim_id])
        t = t.mutate(_rn=ibis.row_number().over(w))
        t = t.filter(t._rn == 0)
        extra.append(t.select(person_id=t.person_id, exclusion_reason=ibis.literal(reason), exclusion_id=t.claim_id,
                              exclusion_date=t.service_date))
    allx = ibis.union(excl, *extra, distinct=False)
    # hospice, death and palliative care first, then ESRD and pregnancy, then the age-based reasons
    order = ibis.cases((allx.exclusion_reason.isin(["hospice", "died", "palliative_care"]), 0),
                       (allx.exclusion_reason.isin(["esrd_dialysis_transplant", "pregnancy"]), 1), else_=2)
    allx = allx.mutate(_o=order)
    w = ibis.window(group_by=allx.person_id, order_by=[allx._o, allx.exclusion_date, allx.exclusion_id])
    allx = allx.mutate(_rn=ibis.row_number().over(w))
    allx = allx.filter(allx._rn == 0).drop("_rn", "_o")
    base = ctx.store("cbp_base", with_exclusions(den.select("person_id"), allx))
    rep = ctx.store("cbp_rep", representative(after_second_diagnosis(readings(ctx), hyp)),
                    scope="payer").rename(_rp="person_id")
    j = base.left_join(rep, base.person_id == rep._rp)
    has = j._rp.notnull()
    controlled = has & (j.systolic < SYSTOLIC_LIMIT).fill_null(False) & (j.diastolic < DIASTOLIC_LIMIT).fill_null(False)
    shown = (j.systolic.cast("int64").cast("string").fill_null("?") + "/"
             + j.diastolic.cast("int64").cast("string").fill_null("?"))
    return j.select(
        person_id=j.person_id,
        in_denominator=ibis.literal(True),
        excluded=j.excluded,
        exclusion_reason=j.exclusion_reason,
        in_numerator=controlled,
        evidence_source=ibis.ifelse(j.excluded, exclusion_source(j), ibis.ifelse(has, j.source, "none")),
        evidence_id=ibis.ifelse(j.excluded, j.exclusion_id, j.reading_id),
        evidence_date=ibis.ifelse(j.excluded, j.exclusion_date, j.reading_date),
        evidence_value=ibis.ifelse(j.excluded, ibis.null("string"), ibis.ifelse(has, shown, "no reading in the year")),
    )


MEASURE = register(
    Measure(
        id="cbp",
        name="Controlling high blood pressure",
        kind="member",
        compute=compute,
        ages=(18, 85),
        valuesets=("hypertension_dx", *VISITS, "systolic_bp", "diastolic_bp", "esrd_dialysis", "pregnancy_dx",
                   *CPT2, *COMMON_VALUESETS),
        history_valuesets=("esrd_dialysis",),
        description=__doc__.split("\n\n", 1)[1],
        source="HEDIS MY2024 Controlling High Blood Pressure (CBP), public description; CMS QPP QID 236",
    )
)
