"""Care gaps: for each practice, its attributed patients with open gaps, for proactive outreach.

A gap is read from the measure results of the program's attributed members (whether or not the
program's terms score the measure), so a result that closes a measure (a new HbA1c below 9%, a
supplemental lab from the practice's EHR, a well visit) closes the gap on the next run.

==================================== ==========================================================
gap_type                             open when
==================================== ==========================================================
hba1c_missing                        in the HbA1c measure's denominator, not excluded, no HbA1c
                                     (or GMI) in the year
hba1c_above_9                        same, most recent HbA1c above 9.0%
bp_not_measured                      in the blood-pressure measure's denominator, not excluded,
                                     no reading in the year
bp_uncontrolled                      same, last systolic >= 140 or diastolic >= 90
bp_incomplete                        same, the most recent date's reading lacks its systolic or its
                                     diastolic value (HEDIS: not controlled; a full reading is due)
well_care_overdue                    a child or young adult 3-21 with no well-care visit in the year
awv_missing                          a Medicare member with no annual wellness visit in the year
ed_mental_illness_no_follow_up       an ED visit for mental illness (HEDIS FUM 30-day) with no
                                     follow-up yet and days left in its 30-day window
ed_substance_use_no_follow_up        same for substance use (HEDIS FUA 30-day)
no_primary_care_visit_12m            no primary-care visit (`primary_care_visit`) in the 12 months
                                     ending on the paid-through date
==================================== ==========================================================

``days_left`` is counted from the paid-through date (never the clock): to 31 December of the
measurement year for the yearly gaps (0 once the year is over), to the end of the 30-day window
for follow-ups, and 0 for the 12-month primary-care gap. Patients are ranked within their practice
by risk score (highest first; members without a score last), then by days left (fewest first),
then by person id. Contact fields come from the member's latest eligibility span where the input
has them (``first_name``, ``last_name``, ``phone``, ``address``, ``city``, ``state``, ``zip_code``).

Table ``care_gaps`` (grain: program_id, practice_id, person_id, gap_id).
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from allpayer.quality.framework import MeasureContext

GAP_MEASURES = {
    "hba1c_poor_control": "all",
    "cbp": "all",
    "hedis_wcv": "all",
    "awv": "medicare",
    "hedis_fum_30d": "all",
    "hedis_fua_30d": "all",
}
"""Measures whose results open gaps, and the program kinds they apply to."""

FOLLOW_UP_DAYS = 30
CONTACT_COLUMNS = ("first_name", "last_name", "phone", "address", "city", "state", "zip_code")

GAP_COLUMNS = {
    "program_id": "string", "practice_id": "string", "person_id": "string", "gap_id": "string",
    "gap_type": "string", "measure_id": "string", "last_value": "string", "last_date": "date",
    "days_left": "int64", "evidence_id": "string",
}


def _gap_rows(r: ir.Table, gap_type: ir.StringValue, days_left: ir.IntegerValue, gap_id_suffix: ir.StringValue) -> ir.Table:
    return r.select(
        program_id=r.program_id, practice_id=r.practice_id, person_id=r.person_id,
        gap_id=gap_type + ":" + gap_id_suffix, gap_type=gap_type, measure_id=r.measure_id,
        last_value=r.evidence_value, last_date=r.evidence_date, days_left=days_left.cast("int64"),
        evidence_id=r.evidence_id,
    )


def gaps_from_results(results: ir.Table, year: int, paid_through: dt.date) -> ir.Table:
    """Open gaps from ``quality_measure_results`` rows of the gap measures (see the module
    docstring); one row per gap."""
    year_left = max(0, (dt.date(year, 12, 31) - paid_through).days)
    open_ = results.filter(results.in_denominator & ~results.excluded)
    ylit = ibis.literal(year_left, "int64")
    parts = []
    a1c = open_.filter((open_.measure_id == "hba1c_poor_control") & open_.in_numerator)
    parts.append(_gap_rows(a1c, ibis.ifelse(a1c.evidence_id.isnull(), "hba1c_missing", "hba1c_above_9"), ylit,
                           ibis.literal(str(year))))
    bp = open_.filter((open_.measure_id == "cbp") & ~open_.in_numerator)
    # cbp's evidence value is "systolic/diastolic", with "?" for a value the reading lacks
    bp_gap = ibis.cases((bp.evidence_id.isnull(), "bp_not_measured"),
                        (bp.evidence_value.contains("?").fill_null(False), "bp_incomplete"), else_="bp_uncontrolled")
    parts.append(_gap_rows(bp, bp_gap, ylit, ibis.literal(str(year))))
    for mid, gap in (("hedis_wcv", "well_care_overdue"), ("awv", "awv_missing")):
        t = open_.filter((open_.measure_id == mid) & ~open_.in_numerator)
        parts.append(_gap_rows(t, ibis.literal(gap), ylit, ibis.literal(str(year))))
    for mid, gap in (("hedis_fum_30d", "ed_mental_illness_no_follow_up"), ("hedis_fua_30d", "ed_substance_use_no_follow_up")):
        t = open_.filter((open_.measure_id == mid) & ~open_.in_numerator & open_.event_date.notnull())
        left = (t.event_date + ibis.interval(days=FOLLOW_UP_DAYS)).delta(ibis.literal(paid_through), unit="day")
        t = t.mutate(_left=left).filter(lambda x: (x._left >= 0) & (x.event_date <= paid_through))
        t = t.mutate(evidence_value=ibis.literal("ED visit " ) + t.event_date.cast("string"),
                     evidence_date=t.event_date)
        parts.append(_gap_rows(t, ibis.literal(gap), t._left, t.event_id))
    return ibis.union(*parts, distinct=False)


HISTORY_VALUESETS = ("primary_care_visit",)
"""Value sets the care gaps read over the member's whole history (the last primary-care visit on
file): the quality stage keeps their claim lines of any date (`framework.claims_window`)."""


def no_primary_care_gaps(ctx: MeasureContext) -> ir.Table:
    """Attributed members with no primary-care visit in the 12 months ending on the paid-through
    date (the last visit before, if any, as the last value)."""
    start = ctx.paid_through - dt.timedelta(days=365) + dt.timedelta(days=1)
    v = ctx.lines_in("primary_care_visit")
    v = v.filter(v.service_date <= ctx.paid_through)
    # the claim of the last visit (the highest claim id among that day's)
    last = v.group_by(_vp=v.person_id).aggregate(
        _last=v.service_date.max(), _id=v.claim_id.argmax(ibis.struct({"_d": v.service_date, "_c": v.claim_id})))
    m = ctx.members
    j = m.left_join(last, m.person_id == last._vp)
    j = j.filter(j._last.isnull() | (j._last < start))
    return j.select(
        program_id=j.program_id, practice_id=j.practice_id, person_id=j.person_id,
        gap_id=ibis.literal("no_primary_care_visit_12m:") + ibis.literal(ctx.paid_through.isoformat()),
        gap_type=ibis.literal("no_primary_care_visit_12m"), measure_id=ibis.null("string"),
        last_value=ibis.ifelse(j._last.isnull(), "no primary-care visit on file", "last primary-care visit"),
        last_date=j._last, days_left=ibis.literal(0, "int64"), evidence_id=j._id,
    )


def rank_gaps(gaps: ir.Table, *, risk: ir.Table | None = None, contacts: ir.Table | None = None) -> ir.Table:
    """Add the risk score, the rank within the practice and the contact fields.

    `risk`: ``program_id, person_id, risk_score``; `contacts`: ``person_id`` and any of
    `CONTACT_COLUMNS` (one row per person)."""
    g = gaps
    if risk is not None:
        r = risk.select(_rp=risk.program_id, _rper=risk.person_id, risk_score=risk.risk_score.cast("float64"))
        j = g.left_join(r, (g.program_id == r._rp) & (g.person_id == r._rper))
        g = j.select(*gaps.columns, "risk_score")
    else:
        g = g.mutate(risk_score=ibis.null("float64"))
    # Rank people, not gaps: a patient's gaps share the patient's rank.
    people = g.group_by(["program_id", "practice_id", "person_id"]).aggregate(
        _risk=g.risk_score.max(), _left=g.days_left.min())
    w = ibis.window(group_by=[people.program_id, people.practice_id],
                    order_by=[people._risk.isnull(), ibis.desc(people._risk), people._left, people.person_id])
    people = people.mutate(rank=(ibis.dense_rank().over(w) + 1).cast("int64"))
    people = people.select(_a=people.program_id, _b=people.practice_id, _c=people.person_id, rank=people.rank)
    j = g.join(people, (g.program_id == people._a) & (g.practice_id == people._b) & (g.person_id == people._c))
    out = j.select(*g.columns, "rank")
    cols = {c: ibis.null("string") for c in CONTACT_COLUMNS}
    if contacts is not None:
        c = contacts.rename(_cp="person_id")
        j = out.left_join(c, out.person_id == c._cp)
        cols = {k: (j[k].cast("string") if k in contacts.columns else ibis.null("string")) for k in CONTACT_COLUMNS}
        out = j.select(*out.columns, **cols)
    else:
        out = out.mutate(**cols)
    return out


def contact_fields(eligibility: ir.Table) -> ir.Table:
    """The contact fields of each person's latest enrollment span (those the input has)."""
    have = [c for c in CONTACT_COLUMNS if c in eligibility.columns]
    w = ibis.window(group_by=eligibility.person_id,
                    order_by=[ibis.desc(eligibility.enrollment_end_date), ibis.desc(eligibility.enrollment_start_date),
                              eligibility.member_id, eligibility.payer, eligibility.plan])
    e = eligibility.mutate(_rn=ibis.row_number().over(w))
    return e.filter(e._rn == 0).select("person_id", *have)


def export_csv(db, year: int, out) -> int:
    """Write the year's care gaps of the published snapshot `db` to a CSV file, ordered by
    program, practice and rank; returns the number of rows. The gaps of persons whose data may not
    be shown at member level (a data-sharing opt-out, a Part 2 claim) are left out
    (`allpayer.inputs.privacy.person_releasable`)."""
    from pathlib import Path

    import pyarrow.csv as pacsv

    from allpayer.runs import open_snapshot

    con = open_snapshot(db)
    try:
        from allpayer.inputs import privacy

        g = con.table("care_gaps")
        if {"eligibility", "medical_claim"} <= set(con.list_tables()):
            g = privacy.person_releasable(g, con.table("eligibility"), con.table("medical_claim"))
        g = g.filter(g.performance_year == year).order_by(["program_id", "practice_id", "rank", "person_id", "gap_id"])
        data = g.to_pyarrow()
    finally:
        con.disconnect()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(data, out)
    return data.num_rows
