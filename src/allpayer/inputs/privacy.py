"""Data-sharing limits: what member-level outputs must withhold, and what measures must say.

Two flags of the input contract mark data the ACO holds but may not show at member level:

- ``eligibility.data_sharing_opt_out``: the beneficiary declined the sharing of their claims
  data (42 CFR 425.708). The rule here: a member (``member_id`` with a ``payer``) with any
  eligibility span so flagged is opted out with that payer.
- ``medical_claim.substance_use_redacted``: a claim for substance-use treatment covered by
  42 CFR Part 2, redacted by the payer. The rule here: every row of such a claim (all its lines
  and adjustments, by ``claim_id``) is redacted.

What stays and what goes:

- Aggregates keep every member and every claim: member months, attribution, TCOC, targets and
  settlement count opted-out members and redacted claims, so the financials are whole.
- Member-level claim detail withholds them: `releasable` filters a claim-detail table (any table
  with ``claim_id``, ``member_id`` and ``payer``: ``medical_claim``, ``pharmacy_claim`` and
  claim-line outputs) and `withheld` lists what it held back and why. ``allpayer export`` of such a
  table writes only the releasable rows; an export of ``quarantine`` leaves out the quarantined
  claim rows of the same members and claims (`quarantine_withheld_sql`).
- Member-level clinical detail derived from the claims withholds whole persons: the factors of a
  risk score (``risk_score_factors``: the HCCs, that is the conditions, behind a member's score)
  are read from the person's diagnoses of every claim and payer, and a high-cost claimant's year
  (``high_cost_claimants``: the member's cost by service category) from all of their claims;
  neither is traced back to the claims it came from. So are a member's quality results
  (``quality_measure_results``: the diagnoses, visits and tests that put the member in a measure,
  with the claims as evidence) and care gaps (``care_gaps``: the outreach list, read from the
  same claims). `person_releasable` therefore keeps only the rows of persons with no Part 2 claim
  (any payer) and no data-sharing opt-out (with any payer); ``allpayer export``, ``allpayer
  quality --care-gaps-out``, the API and the dashboard apply it. The score and the measures'
  rates are kept, as the aggregates are.
- Measures: a quality measure that needs data Part 2 removes (for instance a substance-use
  treatment measure) declares that dependence; `redaction_status` tells for a payer and year how
  many claims are redacted, and a measure that depends on them reports its result as computed on
  incomplete data (`measure_note`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

OPT_OUT = "data_sharing_opt_out"
PART2 = "substance_use_redacted"

REASON_OPT_OUT = "data_sharing_opt_out (42 CFR 425.708)"
REASON_PART2 = "substance_use_redacted (42 CFR Part 2)"


def opted_out_members(eligibility: ir.Table) -> ir.Table:
    """Distinct (member_id, payer) with a data-sharing opt-out on any eligibility span."""
    e = eligibility
    return e.filter(e[OPT_OUT].fill_null(False)).select("member_id", "payer").distinct()


def redacted_claims(medical_claim: ir.Table) -> ir.Table:
    """Distinct claim_id of medical claims with any row marked for Part 2 redaction."""
    m = medical_claim
    return m.filter(m[PART2].fill_null(False)).select("claim_id").distinct()


def is_claim_detail(columns) -> bool:
    """True for a table that holds member-level claim detail (claim_id, member_id, payer)."""
    return {"claim_id", "member_id", "payer"} <= set(columns)


def _reasons(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> ir.Table:
    out = opted_out_members(eligibility).mutate(_opt_out=ibis.literal(True))
    red = redacted_claims(medical_claim).mutate(_part2=ibis.literal(True))
    j = t.left_join(out, [t.member_id == out.member_id, t.payer == out.payer]).select(
        *[t[c] for c in t.columns], _opt_out=out._opt_out
    )
    j = j.left_join(red, j.claim_id == red.claim_id).select(*[j[c] for c in j.columns], _part2=red._part2)
    return j.mutate(_opt_out=j._opt_out.fill_null(False), _part2=j._part2.fill_null(False))


def releasable(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> ir.Table:
    """The rows of a claim-detail table that member-level outputs may show: neither an
    opted-out member's nor a Part 2 claim's."""
    j = _reasons(t, eligibility, medical_claim)
    return j.filter(~j._opt_out & ~j._part2).drop("_opt_out", "_part2")


def _withheld(j: ir.Table) -> ir.Table:
    """The rows of `j` (with ``_opt_out`` and ``_part2``) held back, with ``withheld_reason`` (both
    reasons, ``; ``-joined, when both apply)."""
    reason = ibis.cases(
        (j._opt_out & j._part2, f"{REASON_OPT_OUT}; {REASON_PART2}"),
        (j._opt_out, REASON_OPT_OUT),
        else_=REASON_PART2,
    )
    return j.filter(j._opt_out | j._part2).mutate(withheld_reason=reason).drop("_opt_out", "_part2")


def withheld(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> ir.Table:
    """The rows `releasable` holds back, with ``withheld_reason``."""
    return _withheld(_reasons(t, eligibility, medical_claim))


def _counts(w: ir.Table) -> dict[str, int]:
    rows = w.group_by("withheld_reason").aggregate(rows=w.count()).execute()
    return {r: int(n) for r, n in zip(rows["withheld_reason"], rows["rows"])}


def withheld_counts(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> dict[str, int]:
    """Rows withheld by reason (counts only: no member identifiers)."""
    return _counts(withheld(t, eligibility, medical_claim))


CLINICAL_DETAIL_TABLES = ("risk_score_factors", "high_cost_claimants", "quality_measure_results", "care_gaps")
"""Member-level tables derived from a person's claims (the conditions behind a score; a year's
cost by service category; the measures a member is in and the evidence; the open care gaps):
released by person (`person_releasable`)."""


def is_clinical_detail(table: str, columns) -> bool:
    """True for a table of `CLINICAL_DETAIL_TABLES` (with its ``person_id``)."""
    return table in CLINICAL_DETAIL_TABLES and "person_id" in set(columns)


def _person_reasons(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> ir.Table:
    e, m = eligibility, medical_claim
    out = e.filter(e[OPT_OUT].fill_null(False)).select(_pid_o="person_id").distinct()
    red = m.filter(m[PART2].fill_null(False)).select(_pid_r="person_id").distinct()
    j = t.left_join(out, t.person_id == out._pid_o).left_join(red, t.person_id == red._pid_r)
    return j.mutate(_opt_out=j._pid_o.notnull(), _part2=j._pid_r.notnull()).drop("_pid_o", "_pid_r")


def person_releasable(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> ir.Table:
    """The rows of a clinical-detail table (with ``person_id``) of persons who neither opted out of
    data sharing with any payer nor have a claim redacted under Part 2."""
    j = _person_reasons(t, eligibility, medical_claim)
    return j.filter(~j._opt_out & ~j._part2).drop("_opt_out", "_part2")


def person_withheld_counts(t: ir.Table, eligibility: ir.Table, medical_claim: ir.Table) -> dict[str, int]:
    """Rows `person_releasable` holds back, by reason (counts only)."""
    return _counts(_withheld(_person_reasons(t, eligibility, medical_claim)))


CLAIM_TABLES = ("medical_claim", "pharmacy_claim")


def quarantine_withheld_sql(quarantine: str = "quarantine") -> str:
    """DuckDB SQL: the quarantined claim rows (``raw_row`` of medical_claim or pharmacy_claim)
    that member-level exports withhold, with ``withheld_reason``: a row whose delivered
    ``member_id`` and ``payer`` are an opted-out member's, or whose ``substance_use_redacted`` is
    true, or whose ``claim_id`` is a redacted medical claim's."""
    return f"""
        WITH q AS (
            SELECT *, json_extract_string(raw_row, '$.member_id') AS _member,
                   json_extract_string(raw_row, '$.payer') AS _payer,
                   json_extract_string(raw_row, '$.claim_id') AS _claim,
                   lower(trim(coalesce(json_extract_string(raw_row, '$.substance_use_redacted'), ''))) AS _part2
            FROM {quarantine}
            WHERE table_name IN ('medical_claim', 'pharmacy_claim') AND raw_row IS NOT NULL
        ), flags AS (
            SELECT q.*,
                   EXISTS (SELECT 1 FROM eligibility e WHERE e.{OPT_OUT} AND e.member_id = q._member AND e.payer = q._payer) AS _opt_out,
                   (q._part2 IN ('true', 't', 'yes', 'y', '1')
                    OR EXISTS (SELECT 1 FROM medical_claim m WHERE m.{PART2} AND m.claim_id = q._claim)) AS _redacted
            FROM q
        )
        SELECT * EXCLUDE (_member, _payer, _claim, _part2, _opt_out, _redacted),
               CASE WHEN _opt_out AND _redacted THEN '{REASON_OPT_OUT}; {REASON_PART2}'
                    WHEN _opt_out THEN '{REASON_OPT_OUT}' ELSE '{REASON_PART2}' END AS withheld_reason
        FROM flags WHERE _opt_out OR _redacted
    """


@dataclass(frozen=True)
class RedactionStatus:
    """What a payer's data for one year withholds (counts only)."""

    payer: str
    year: int
    claim_lines: int
    redacted_claim_lines: int
    members: int
    opted_out_members: int

    @property
    def complete(self) -> bool:
        """True when no claim of the year is redacted under Part 2."""
        return self.redacted_claim_lines == 0

    @property
    def status(self) -> str:
        return "complete" if self.complete else "part2_redacted"


def redaction_status(con, payer: str, year: int) -> RedactionStatus:
    """Counts of redacted claims and opted-out members of `payer` in `year` (claims by
    ``claim_start_date``, members by an eligibility span overlapping the year).

    `payer` may also be a program's terms object (anything with a ``payer`` attribute).
    """
    payer = getattr(payer, "payer", payer)
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    m = con.table("medical_claim")
    m = m.filter((m.payer == payer) & m.claim_start_date.between(start, end))
    e = con.table("eligibility")
    e = e.filter((e.payer == payer) & (e.enrollment_start_date <= end) & (e.enrollment_end_date >= start))
    claims = m.aggregate(n=m.count(), red=m[PART2].fill_null(False).cast("int64").sum()).execute()
    members = e.aggregate(
        n=e.member_id.nunique(),
        out=e.member_id.nunique(where=e[OPT_OUT].fill_null(False)),
    ).execute()
    return RedactionStatus(
        payer=payer,
        year=year,
        claim_lines=int(claims["n"][0]),
        redacted_claim_lines=int(claims["red"][0] or 0),
        members=int(members["n"][0]),
        opted_out_members=int(members["out"][0]),
    )


def measure_note(status: RedactionStatus, needs_part2_data: bool) -> str | None:
    """What a measure's result must say about redacted data: None when it does not depend on
    Part 2 data or none is redacted; otherwise a sentence naming the count."""
    if not needs_part2_data or status.complete:
        return None
    return (
        f"computed without {status.redacted_claim_lines:,} claim lines of {status.payer} {status.year} "
        "redacted under 42 CFR Part 2: the result may understate substance-use services"
    )
