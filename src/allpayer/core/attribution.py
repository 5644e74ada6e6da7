"""Attribution: which members a program holds the ACO accountable for, month by month.

A program's terms (``attribution`` block, domain.md R1 and §3 M1) choose the method and the
steps; this module applies them to claims, the provider roster and program membership.

Tables (each an Ibis expression; nothing is computed until the caller executes it):

``primary_care_services`` (grain: ``claim_id, claim_line_number``)
    The qualifying services of one payer in one window, with the entity that billed them (the
    TIN, or the CCN for an FQHC/RHC visit), the clinician's roster attributes and whether the
    entity is an ACO participant on the list date.

``assignment`` (grain: ``program_id, period_start, person_id``)
    One decision per candidate member and assignment period: the step that decided, the outcome
    (``assigned`` or ``not_assigned`` with a reason) and the working of the decision: winner and
    runner-up entities with their allowed cents, visits and (recency-weighted) score, and the
    tie-break that separated them.

``attribution`` (grain: ``program_id, member_id, month``)
    The monthly roster of listed members: ``attributed`` (on the list and not excluded),
    ``eligible`` (a program member month exists), ``exclusion_reason``, the step, practice, TIN,
    NPI, CCN and HSA, and the decision's working. See :data:`ATTRIBUTION_SCHEMA`.

``attribution_changes`` (grain: ``program_id, person_id, month``)
    Adds, drops and practice changes between consecutive months, with reasons.

``reconcile_attribution`` (grain: ``program_id, member_id, month``)
    Our roster against a payer-supplied list, member by member: in both, only ours or only the
    payer's, with the reason.

Rules (docs/attribution.md explains each with examples):

* Services: professional lines whose HCPCS is in the year's primary-care list (less the setting
  exclusions), and FQHC/RHC institutional lines with revenue codes 0521/0522/0524/0525, counted
  under the clinic's CCN. Only the program payer's claims, allowed amount above zero, not denied.
* Participation comes from the roster on the list date (the start of the period), applied to
  every service in the window, as MSSP applies the current participant list to the lookback.
* ``plurality``: allowed charges (or visits), optionally weighted by lookback year, summed per
  entity; ``compare: practice`` lets each practice compete, ``compare: aco_vs_each_outside_tin``
  sums all participant services as one entity against each outside TIN or CCN. Inside a winning
  ACO the practice, then the NPI, are chosen by the same plurality and tie-breaks.
* Tie-breaks follow the terms (default: most recent visit, then lowest NPI), then the entity key,
  so every ranking is a total order.
* Steps apply in order; a member decided by a step (assigned, aligned elsewhere, won by an outside
  entity, or stopped by a ``require_service`` gate) is not seen by later steps.
* Exclusions: ``scope: month`` drops a member in the months the condition holds (for good when
  ``requalify`` is false); ``scope: year`` removes the member from the whole year. ``checked``
  decides when an event becomes known, which matters only for a roster run ``as_of`` a date
  inside the year.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from math import gcd, lcm
from typing import Callable, Hashable, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.core.member_months import month_end, month_starts
from allpayer.errors import RunError
from allpayer.reference.primary_care import FQHC_RHC_REVENUE_CODES, PRIMARY_CARE_SPECIALTY_CODES
from allpayer.terms.models import AttributionStep, ProgramTerms

PARTICIPATING: tuple[str, ...] = ("participant",)
"""Roster ``participation`` values that make a clinician an ACO participant for attribution.
(NGACO-style "preferred" providers are in the network but do not align members.)"""

REASON_PRIORITY: tuple[str, ...] = (
    "death",
    "practice_left",
    "medicare_advantage",
    "aged_into_medicare",
    "other_coverage",
    "medicare_secondary_payer",
    "no_part_a_or_b",
    "esrd",
    "hospice",
    "moved_out_of_area",
    "employer_opt_out",
    "lost_coverage",
)
"""When several exclusions hold in one month, the row names the first in this order."""

DATA_REASONS: tuple[str, ...] = (
    "death",
    "lost_coverage",
    "employer_opt_out",
    "practice_left",
    "medicare_advantage",
    "aged_into_medicare",
    "other_coverage",
    "medicare_secondary_payer",
)
"""Exclusion reasons derived from the data; the others come only from ``exclusion_events``."""

_FAR = dt.date(9999, 12, 31)
_HIGH = "~"  # sorts after digits and letters: a missing identifier loses "lowest" tie-breaks

Store = Callable[[str, ir.Table, Hashable], ir.Table]
"""Materializes an intermediate table: ``store(name, expr, key)`` writes `expr` once (as a working
table of the run) and returns a table reading it; a second call with an equal `key` returns the
first call's table without computing again. The pipeline passes one (see
``allpayer.pipeline.WorkTables``) so that each step is a small query over stored steps; without
one every function returns a single Ibis expression, as before."""


def _stored(store: Store | None, name: str, expr: ir.Table, *key: Hashable) -> ir.Table:
    """`expr` through `store` (or unchanged without one). `key` names what the content depends
    on: calls with equal names and keys share one stored table; without a key nothing is shared."""
    if store is None:
        return expr
    return store(name, expr, (name, *key) if key else None)

SERVICE_REQUIRED = (
    "person_id",
    "member_id",
    "payer",
    "claim_id",
    "claim_line_number",
    "claim_type",
    "service_date",
    "hcpcs_code",
    "revenue_center_code",
    "place_of_service_code",
    "rendering_npi",
    "billing_npi",
    "billing_tin",
    "rendering_tin",
    "facility_ccn",
    "allowed_cents",
)

_EVIDENCE_COLUMNS = {
    # What decided an assignment: the winning entity and the runner-up with their amounts.
    "winner_entity": "string",
    "winner_allowed_cents": "int64",
    "winner_visits": "int64",
    "winner_score": "int64",
    "runner_up_entity": "string",
    "runner_up_allowed_cents": "int64",
    "runner_up_visits": "int64",
    "runner_up_score": "int64",
    "tie_break": "string",
    "decided_by": "string",
}

DECISION_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "period_start": "date",
        "period_end": "date",
        "list_date": "date",
        "window_start": "date",
        "window_end": "date",
        "sticky": "boolean",
        "person_id": "string",
        "outcome": "string",
        "step": "string",
        "rule": "string",
        "reason": "string",
        "basis": "string",
        "practice_id": "string",
        "practice_name": "string",
        "tin": "string",
        "npi": "string",
        "ccn": "string",
        "hsa": "string",
        **_EVIDENCE_COLUMNS,
    }
)
"""Columns of :func:`assignment`."""

ATTRIBUTION_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "performance_year": "int32",
        "month": "date",
        "member_id": "string",
        "person_id": "string",
        "attributed": "boolean",
        "eligible": "boolean",
        "exclusion_reason": "string",
        "method": "string",
        "step": "string",
        "rule": "string",
        "list_date": "date",
        "window_start": "date",
        "window_end": "date",
        "practice_id": "string",
        "practice_name": "string",
        "tin": "string",
        "npi": "string",
        "ccn": "string",
        "hsa": "string",
        "basis": "string",
        **_EVIDENCE_COLUMNS,
    }
)
"""Columns of :func:`attribute` (grain ``program_id, member_id, month``)."""

CHANGES_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "person_id": "string",
        "member_id": "string",
        "month": "date",
        "previous_month": "date",
        "change": "string",
        "reason": "string",
        "from_practice_id": "string",
        "to_practice_id": "string",
        "from_npi": "string",
        "to_npi": "string",
        "step": "string",
    }
)
"""Columns of :func:`attribution_changes`."""


# ------------------------------------------------------------------------------------------------
# periods and windows (a handful per program: Python over periods, never over members)


@dataclass(frozen=True)
class AssignmentPeriod:
    """One run of the assignment steps: the months it applies to and the claims window it reads.

    ``sticky`` assignments (prospective lists) hold from ``start`` to the end of the year; a
    member assigned by two sticky periods keeps the earlier assignment.
    """

    start: dt.date
    end: dt.date
    list_date: dt.date
    window_start: dt.date
    window_end: dt.date
    sticky: bool


def _add_months(d: dt.date, months: int) -> dt.date:
    k = d.year * 12 + (d.month - 1) + months
    return dt.date(k // 12, k % 12 + 1, 1)


def lookback_window(window_end: dt.date, months: int) -> tuple[dt.date, dt.date]:
    """The claims window of `months` calendar months ending on `window_end`.

    >>> lookback_window(dt.date(2021, 12, 31), 24)
    (datetime.date(2020, 1, 1), datetime.date(2021, 12, 31))
    """
    return _add_months(window_end.replace(day=1), -(months - 1)), window_end


def _quarter_starts(start: dt.date, end: dt.date) -> list[dt.date]:
    out = [start]
    for m in month_starts(start, end):
        if m > start and m.month in (1, 4, 7, 10):
            out.append(m)
    return out


def assignment_periods(program: ProgramTerms) -> list[AssignmentPeriod]:
    """The assignment periods of a program, from its method.

    * ``prospective``: one list at the effective start from the window ending on ``window_end``
      (default: the day before the start); with ``add_members_during_year``, a rolling window
      before each later quarter adds members who were not on the list.
    * ``retrospective``: one list from the performance year's own claims.
    * ``quarterly``: a list per quarter from the rolling window before it.
    * ``payer_supplied``: none (the payer's list is the roster).
    """
    a = program.attribution
    eff = program.effective
    months = a.lookback_months.value
    if a.method == "payer_supplied":
        return []
    if a.method == "retrospective":
        return [AssignmentPeriod(eff.start, eff.end, eff.start, eff.start, eff.end, sticky=False)]
    quarters = _quarter_starts(eff.start, eff.end)
    if a.method == "prospective":
        we = a.window_end or eff.start - dt.timedelta(days=1)
        ws, we = lookback_window(we, months)
        out = [AssignmentPeriod(eff.start, eff.end, eff.start, ws, we, sticky=True)]
        if a.add_members_during_year:
            for q in quarters[1:]:
                qs, qe = lookback_window(q - dt.timedelta(days=1), months)
                out.append(AssignmentPeriod(q, eff.end, q, qs, qe, sticky=True))
        return out
    out = []
    for i, q in enumerate(quarters):
        end = quarters[i + 1] - dt.timedelta(days=1) if i + 1 < len(quarters) else eff.end
        qs, qe = lookback_window(q - dt.timedelta(days=1), months)
        out.append(AssignmentPeriod(q, end, q, qs, qe, sticky=False))
    return out


# ------------------------------------------------------------------------------------------------
# periods as a table: every stage below runs for all periods at once

PERIOD_SCHEMA = ibis.schema(
    {
        "period_start": "date",
        "period_end": "date",
        "list_date": "date",
        "window_start": "date",
        "window_end": "date",
        "sticky": "boolean",
        "first_period": "boolean",
    }
)


def periods_table(periods: Sequence[AssignmentPeriod]) -> ir.Table:
    """The assignment periods as an Ibis table (one row per period, keyed by ``period_start``)."""
    return ibis.memtable(
        {
            "period_start": [p.start for p in periods],
            "period_end": [p.end for p in periods],
            "list_date": [p.list_date for p in periods],
            "window_start": [p.window_start for p in periods],
            "window_end": [p.window_end for p in periods],
            "sticky": [p.sticky for p in periods],
            "first_period": [i == 0 for i in range(len(periods))],
        },
        schema=PERIOD_SCHEMA,
    )


def _first(t: ir.Table, by: Sequence[str], order: Sequence[str]) -> ir.Table:
    """The first row of each `by` group in `order` (column names; ``-name`` sorts descending,
    ``~name`` ascending with NULLs last)."""
    keys = []
    for o in order:
        if o.startswith("-"):
            keys.append(ibis.desc(t[o[1:]]))
        elif o.startswith("~"):
            keys.append(t[o[1:]].fill_null(_HIGH))
        else:
            keys.append(t[o])
    w = ibis.window(group_by=[t[c] for c in by], order_by=keys)
    return t.mutate(_rn=ibis.row_number().over(w)).filter(lambda x: x._rn == 0).drop("_rn")


def _prefixed(t: ir.Table, prefix: str) -> ir.Table:
    return t.rename({f"{prefix}{c}": c for c in t.columns})


# ------------------------------------------------------------------------------------------------
# roster look-ups


def roster_lookups(
    roster: ir.Table,
    payer: str,
    periods: ir.Table,
    participating: Sequence[str] = PARTICIPATING,
    *,
    store: Store | None = None,
    periods_key: Hashable = None,
) -> dict[str, ir.Table]:
    """Roster rows of one payer on each period's list date, keyed four ways, one row per key.

    Every table has ``period_start``. ``by_npi_tin`` (npi, tin), ``by_tin`` (tin), ``by_ccn``
    (ccn) and ``by_npi`` (npi) give practice_id, practice_name, tin, hsa and participation
    (participating rows first, then the latest start, then the lowest practice id, NPI and TIN);
    ``provider`` (npi, rows of any date, the one in force on the list date first) gives
    provider_type, specialty_code and primary_care_flag.

    With `store`, the roster rows on the list dates and each look-up are stored (`periods_key`
    identifies the periods, so programs with the same payer and periods share them).
    """
    key = (roster.op(), payer, periods_key, tuple(participating))
    r = roster.filter(roster.payer == payer)
    pr = periods.select("period_start", "list_date")
    j = r.cross_join(pr)
    on = (j.effective_start_date <= j.list_date) & (j.effective_end_date.fill_null(_FAR) >= j.list_date)
    j = j.mutate(_on=on.cast("int8"), _part=j.participation.isin(list(participating)).cast("int8"))
    if store is not None and periods_key is not None:
        j = _stored(store, "roster_on_list_date", j, *key)
    snap = j.filter(j._on == 1)
    cols = ["practice_id", "practice_name", "tin", "hsa", "participation"]
    order = ["-_part", "-effective_start_date", "practice_id", "npi", "tin"]
    out = {
        "by_npi_tin": _first(snap, ["period_start", "npi", "tin"], order).select("period_start", "npi", *cols),
        "by_tin": _first(snap, ["period_start", "tin"], order).select("period_start", *cols),
        "by_ccn": _first(snap.filter(snap.ccn.notnull()), ["period_start", "ccn"], order).select(
            "period_start", "ccn", *cols
        ),
        "by_npi": _first(snap, ["period_start", "npi"], order).select("period_start", "npi", *cols),
        "provider": _first(j, ["period_start", "npi"], ["-_on", "-effective_start_date", "tin", "practice_id"]).select(
            "period_start", "npi", "provider_type", "specialty_code", "primary_care_flag"
        ),
    }
    if store is None or periods_key is None:
        return out
    return {name: _stored(store, f"roster_{name}", t, *key) for name, t in out.items()}


def _lookup_entity(
    t: ir.Table,
    lk: dict[str, ir.Table],
    *,
    npi: str,
    tin: str | None = None,
    ccn: str | None = None,
    npi_fallback: bool = False,
    participating: Sequence[str] = PARTICIPATING,
    tin_fallback: str | None = None,
) -> ir.Table:
    """Add practice_id, practice_name, roster_tin, hsa, participation and aco to `t` (which has
    ``period_start``). One roster row decides all five: for a row with a CCN, the CCN's row; else
    the (npi, tin) row, else the TIN's row (of column `tin_fallback` when given, else `tin`), else
    (with `npi_fallback`) the NPI's row."""
    j = t
    sources: list[str] = []
    if tin is not None:
        a = _prefixed(lk["by_npi_tin"], "_a_")
        j = j.left_join(a, [j.period_start == a._a_period_start, j[npi] == a._a_npi, j[tin] == a._a_tin])
        b = _prefixed(lk["by_tin"], "_b_")
        j = j.left_join(b, [j.period_start == b._b_period_start, j[tin_fallback or tin] == b._b_tin])
        sources += ["_a_", "_b_"]
    if npi_fallback:
        d = _prefixed(lk["by_npi"], "_d_")
        j = j.left_join(d, [j.period_start == d._d_period_start, j[npi] == d._d_npi])
        sources.append("_d_")
    if ccn is not None:
        c = _prefixed(lk["by_ccn"], "_c_")
        j = j.left_join(c, [j.period_start == c._c_period_start, j[ccn] == c._c_ccn])

    def pick(col: str) -> ir.Value:
        typ = lk["by_tin"][col].type()
        branches = []
        if ccn is not None:
            branches.append((j[ccn].notnull(), j[f"_c_{col}"]))
        branches += [(j[f"{src}practice_id"].notnull(), j[f"{src}{col}"]) for src in sources]
        return ibis.cases(*branches, else_=ibis.null(typ))

    participation = pick("participation")
    out = j.mutate(
        practice_id=pick("practice_id"),
        practice_name=pick("practice_name"),
        roster_tin=pick("tin"),
        hsa=pick("hsa"),
        participation=participation,
        aco=participation.isin(list(participating)).fill_null(False),
    )
    return out.drop(*[c for c in out.columns if c.startswith(("_a_", "_b_", "_c_", "_d_"))])


# ------------------------------------------------------------------------------------------------
# qualifying services


def _services(
    claim_lines: ir.Table,
    roster: ir.Table,
    codes: ir.Table,
    periods: ir.Table,
    *,
    payer: str,
    participating: Sequence[str] = PARTICIPATING,
    all_services: bool = False,
    claims_payers: Sequence[str] | None = None,
    store: Store | None = None,
    periods_key: Hashable = None,
    lookups: dict[str, ir.Table] | None = None,
) -> ir.Table:
    """Qualifying services of each period's window (a line in two windows appears twice).

    With `store`, the candidate lines of every payer (the same for all programs that share the
    code list) are stored once, then this payer's services per period (shared by programs with
    the same payer, claims payers and periods)."""
    missing = [c for c in SERVICE_REQUIRED if c not in claim_lines.columns]
    if missing:
        raise RunError(f"claim lines lack columns needed for attribution: {', '.join(missing)}")
    payers = tuple(claims_payers or [payer])
    # stored, the lines keep only what the steps read (writing them is most of their cost)
    line_columns = _SERVICE_LINE_COLUMNS if store is None else _STEP_LINE_COLUMNS
    t = _candidate_lines(claim_lines, codes, all_services, line_columns)
    if store is not None:
        t = _stored(store, "service_lines", t, claim_lines.op(), codes.op(), all_services)
    t = t.filter(t.payer.isin(list(payers)))
    pw = periods.select("period_start", "window_start", "window_end")
    t = t.join(pw, [t.service_date >= pw.window_start, t.service_date <= pw.window_end])
    lk = lookups or roster_lookups(roster, payer, periods, participating)
    t = _lookup_entity(t, lk, npi="npi", tin="line_tin", ccn="ccn", participating=participating)
    prov = _prefixed(lk["provider"], "_p_")
    t = t.left_join(prov, [t.period_start == prov._p_period_start, t.npi == prov._p_npi])
    billed_ccn = t.ccn.notnull()
    out = t.select(
        "period_start",
        "window_end",
        *line_columns,
        "primary_care_code",
        "clinic",
        "npi",
        tin=ibis.ifelse(billed_ccn, ibis.coalesce(t.roster_tin, t.line_tin), t.line_tin),
        ccn=t.ccn,
        billed_under=ibis.ifelse(billed_ccn, "ccn", "tin"),
        billing_entity=ibis.ifelse(
            billed_ccn, ibis.literal("ccn:") + t.ccn, ibis.literal("tin:") + t.line_tin.fill_null("?")
        ),
        practice_id=t.practice_id,
        practice_name=t.practice_name,
        hsa=t.hsa,
        participation=t.participation,
        aco=t.aco,
        provider_type=t._p_provider_type,
        specialty_code=t._p_specialty_code,
        primary_care_flag=t._p_primary_care_flag,
    )
    if store is None or periods_key is None:
        return out
    return _stored(
        store, "services", out.drop("billed_under", "participation"),
        claim_lines.op(), roster.op(), codes.op(), payer, payers, periods_key, tuple(participating), all_services,
    )


def _candidate_lines(
    claim_lines: ir.Table, codes: ir.Table, all_services: bool, columns: Sequence[str]
) -> ir.Table:
    """Claim lines of every payer that can count as a service (allowed above zero, not denied,
    a primary-care code or a clinic visit, or with `all_services` any professional line), with
    `columns` of the line and the entity columns derived from it."""
    t = claim_lines
    keep = t.allowed_cents > 0
    if "claim_status" in t.columns:
        keep &= t.claim_status.fill_null("paid") != "denied"
    t = t.filter(keep)
    cj = codes.select(_pc_code=codes.code, _pc_pos=codes.excluded_place_of_service)
    t = t.left_join(cj, t.hcpcs_code == cj._pc_code)
    rev = t.revenue_center_code.fill_null("")
    pos = t.place_of_service_code.fill_null("")
    clinic = (t.claim_type == "institutional") & rev.isin(list(FQHC_RHC_REVENUE_CODES))
    pc_code = t._pc_code.notnull() & (t._pc_pos.isnull() | (pos != t._pc_pos.fill_null("")))
    prof = t.claim_type == "professional"
    t = t.filter(clinic | (prof & (pc_code if not all_services else ibis.literal(True))))
    return t.select(
        "payer",
        *columns,
        primary_care_code=(pc_code | clinic).fill_null(False),
        clinic=clinic.fill_null(False),
        npi=ibis.coalesce(t.rendering_npi, t.billing_npi),
        line_tin=ibis.coalesce(t.billing_tin, t.rendering_tin),
        ccn=ibis.ifelse(clinic, t.facility_ccn, ibis.null("string")),
    )


_SERVICE_LINE_COLUMNS = (
    "person_id",
    "member_id",
    "claim_id",
    "claim_line_number",
    "claim_type",
    "service_date",
    "hcpcs_code",
    "revenue_center_code",
    "place_of_service_code",
    "allowed_cents",
)
"""Claim-line columns a qualifying service keeps."""

_STEP_LINE_COLUMNS = ("person_id", "claim_id", "service_date", "allowed_cents")
"""The claim-line columns the assignment steps read (with the derived entity and roster columns)."""


def primary_care_services(
    claim_lines: ir.Table,
    roster: ir.Table,
    codes: ir.Table,
    window: tuple[dt.date, dt.date],
    *,
    payer: str,
    list_date: dt.date | None = None,
    participating: Sequence[str] = PARTICIPATING,
    all_services: bool = False,
    claims_payers: Sequence[str] | None = None,
) -> ir.Table:
    """Qualifying primary-care services of one payer in a window (inclusive dates).

    Grain: one row per claim line (``claim_id, claim_line_number``). Columns: ``person_id,
    member_id, claim_id, claim_line_number, claim_type, service_date, hcpcs_code,
    revenue_center_code, place_of_service_code, allowed_cents``; ``primary_care_code`` (the HCPCS
    is in the list and not excluded for its place of service, or the line is a clinic visit),
    ``clinic`` (an FQHC/RHC visit line: institutional, revenue 0521/0522/0524/0525); the billing
    entity: ``npi`` (rendering, else billing), ``tin`` (billing TIN, else rendering; for a clinic
    the roster TIN of its CCN), ``ccn`` (clinic lines), ``billed_under`` (``tin`` or ``ccn``) and
    ``billing_entity`` (``tin:...`` or ``ccn:...``); from the roster on `list_date` (default: the
    day after the window): ``practice_id, practice_name, hsa, participation, aco``; and the
    clinician's ``provider_type, specialty_code, primary_care_flag``.

    Only the payer's lines (or those of `claims_payers`) with allowed cents above zero that are not
    denied count; participation is the payer's roster participation. `codes` is a
    list from :func:`allpayer.reference.primary_care.primary_care_codes`. With `all_services`,
    other professional lines are kept too (``primary_care_code`` false).
    """
    start, end = window
    on = list_date or end + dt.timedelta(days=1)
    periods = periods_table([AssignmentPeriod(on, on, on, start, end, sticky=False)])
    s = _services(
        claim_lines,
        roster,
        codes,
        periods,
        payer=payer,
        participating=participating,
        all_services=all_services,
        claims_payers=claims_payers,
    )
    return s.drop("period_start", "window_end")


# ------------------------------------------------------------------------------------------------
# step filters, weights and rankings


@dataclass(frozen=True)
class Options:
    """Parameters of the attribution rules that the terms do not (yet) carry.

    ``participating``: roster participation values that count as the ACO.
    ``physicians_need_primary_care_flag``: in a step without ``specialty_codes``, a physician's
    services count only if the roster flags the physician as primary care (NPs, PAs and CNSs
    count whatever their specialty, as in MSSP step 1).
    ``unknown_clinicians_count``: services of a clinician missing from the roster count in steps
    that filter by provider type or specialty (the code itself is primary care).
    ``full_benefit_aid_categories``: aid categories that carry a full benefits package, for the
    ``expanded`` rule (None: every category).
    ``claims_payers``: payers whose claims the windows read (None: the program's payer only; a
    self-funded group that changed administrator may name the previous one too).
    """

    participating: tuple[str, ...] = PARTICIPATING
    physicians_need_primary_care_flag: bool = True
    unknown_clinicians_count: bool = True
    full_benefit_aid_categories: tuple[str, ...] | None = None
    claims_payers: tuple[str, ...] | None = None


def step_matches(s: ir.Table, step: AttributionStep, opts: Options = Options()) -> ir.BooleanValue:
    """Whether each service row counts for a step (its provider types, specialties and codes).

    FQHC/RHC visit lines count as a primary care physician's services (42 CFR 425.404(b)): they
    match a step that admits physicians (or names no provider types) and names no specialties or
    a primary care specialty (e.g. the MSSP pre-step), whoever the clinic's clinician is.
    """
    known = s.provider_type.notnull()
    unknown_ok = ibis.literal(opts.unknown_clinicians_count)
    ok = ibis.literal(True)
    if step.provider_types is not None:
        ok &= s.provider_type.isin(list(step.provider_types)).fill_null(False) | (~known & unknown_ok)
    if step.specialty_codes is not None:
        ok &= s.specialty_code.isin(list(step.specialty_codes)).fill_null(False) | (~known & unknown_ok)
    elif opts.physicians_need_primary_care_flag:
        ok &= (s.provider_type != "physician").fill_null(True) | s.primary_care_flag.fill_null(False)
    if step.primary_care_services_only:
        ok &= s.primary_care_code
    clinic_ok = (
        step.specialty_codes is None or any(c in PRIMARY_CARE_SPECIALTY_CODES for c in step.specialty_codes)
    ) and (step.provider_types is None or "physician" in step.provider_types)
    return ibis.ifelse(s.clinic, ibis.literal(clinic_ok), ok)


def recency_weights(weights: Sequence[Fraction] | None) -> tuple[int, ...]:
    """Integer weights per lookback year, oldest first, with the same ratios as the terms'.

    >>> recency_weights([Fraction(1, 3), Fraction(2, 3)])
    (1, 2)
    >>> recency_weights(None)
    (1,)
    """
    if not weights:
        return (1,)
    d = lcm(*[Fraction(w).denominator for w in weights])
    ints = [int(Fraction(w) * d) for w in weights]
    g = reduce(gcd, ints) or 1
    return tuple(i // g for i in ints)


_VISIT_KEYS = (
    "period_start",
    "window_end",
    "person_id",
    "claim_id",
    "service_date",
    "npi",
    "tin",
    "ccn",
    "billing_entity",
    "practice_id",
    "practice_name",
    "hsa",
    "aco",
)


def _visits(s: ir.Table, weights: tuple[int, ...], basis: str, compare: str) -> ir.Table:
    """Lines to visits (claim, date, clinician and entity), scored by basis and recency weight."""
    v = s.group_by(list(_VISIT_KEYS)).aggregate(allowed_cents=s.allowed_cents.sum())
    n = len(weights)
    if n > 1:
        k = (v.window_end.year() * 12 + v.window_end.month()) - (v.service_date.year() * 12 + v.service_date.month())
        years_back = (k // 12).cast("int64")
        w = ibis.cases(*[(years_back == n - 1 - i, weights[i]) for i in range(n)], else_=0).cast("int64")
    else:
        w = ibis.literal(1, type="int64")
    score = v.allowed_cents.cast("int64") * w if basis == "allowed_charges" else w
    return v.mutate(score=score, entity=_entity_expr(v, compare))


_TB_COLS = {
    "most_recent_visit": ("last_visit", True),
    "most_visits": ("visits", True),
    "highest_allowed": ("allowed_cents", True),
    "lowest_npi": ("min_npi", False),
    "lowest_tin": ("min_tin", False),
    "lowest_practice_id": ("min_practice_id", False),
}


def rank_entities(v: ir.Table, by: Sequence[str], entity: str, tie_breaks: Sequence[str]) -> ir.Table:
    """Sum visits per (`by`, `entity`) and rank entities inside each `by` group.

    Order: score (descending), then each tie-break in turn, then the entity key: a total order.
    Adds ``allowed_cents, visits, score, last_visit, min_npi, min_tin, min_practice_id`` and
    ``rank`` (0 = winner).
    """
    agg = v.group_by([*by, entity]).aggregate(
        allowed_cents=v.allowed_cents.sum().cast("int64"),
        visits=v.count().cast("int64"),
        score=v.score.sum().cast("int64"),
        last_visit=v.service_date.max(),
        min_npi=v.npi.min().fill_null(_HIGH),
        min_tin=v.tin.min().fill_null(_HIGH),
        min_practice_id=v.practice_id.min().fill_null(_HIGH),
    )
    order = [ibis.desc(agg.score)]
    for tb in tie_breaks:
        col, desc = _TB_COLS[tb]
        order.append(ibis.desc(agg[col]) if desc else agg[col])
    order.append(agg[entity])
    w = ibis.window(group_by=[agg[c] for c in by], order_by=order)
    return agg.mutate(rank=ibis.row_number().over(w))


def _winner_and_runner_up(r: ir.Table, by: Sequence[str], entity: str, tie_breaks: Sequence[str]) -> ir.Table:
    win = r.filter(r["rank"] == 0)
    run = r.filter(r["rank"] == 1)
    run = run.select(
        *[run[c].name(f"_ru_k_{c}") for c in by],
        ru_entity=run[entity],
        ru_allowed_cents=run.allowed_cents,
        ru_visits=run.visits,
        ru_score=run.score,
        ru_last_visit=run.last_visit,
        ru_min_npi=run.min_npi,
        ru_min_tin=run.min_tin,
        ru_min_practice_id=run.min_practice_id,
    )
    j = win.left_join(run, [win[c] == run[f"_ru_k_{c}"] for c in by])
    branches = [(j.ru_entity.isnull(), "no_competitor"), (j.score != j.ru_score, "plurality")]
    for tb in tie_breaks:
        col, _ = _TB_COLS[tb]
        branches.append((j[col] != j[f"ru_{col}"], tb))
    return j.mutate(tie_break=ibis.cases(*branches, else_="entity_key")).drop(*[f"_ru_k_{c}" for c in by])


def _entity_expr(s: ir.Table, compare: str) -> ir.StringValue:
    if compare == "aco_vs_each_outside_tin":
        return ibis.ifelse(s.aco, ibis.literal("aco"), ibis.literal("out:") + s.billing_entity)
    key = ibis.coalesce(ibis.literal("practice:") + s.practice_id, s.billing_entity)
    return ibis.ifelse(s.aco, ibis.literal("aco:") + key, ibis.literal("out:") + key)


def _decided_by(t: ir.Table) -> ir.StringValue:
    def n(x):
        return x.cast("string").fill_null("0")

    runner = ibis.ifelse(
        t.runner_up_entity.isnull(),
        ibis.literal("no runner-up"),
        ibis.literal("runner-up ")
        + t.runner_up_entity
        + ": "
        + n(t.runner_up_allowed_cents)
        + " allowed cents, "
        + n(t.runner_up_visits)
        + " visits, score "
        + n(t.runner_up_score),
    )
    return (
        t.basis
        + ": winner "
        + t.winner_entity
        + ": "
        + n(t.winner_allowed_cents)
        + " allowed cents, "
        + n(t.winner_visits)
        + " visits, score "
        + n(t.winner_score)
        + "; "
        + runner
        + "; decided by "
        + t.tie_break
    )


def _conform(t: ir.Table, schema: ibis.Schema, **values) -> ir.Table:
    """Select exactly `schema`'s columns: from `values`, else from `t`, else typed NULLs."""
    cols = {}
    for name, typ in schema.items():
        if name in values:
            v = values[name]
            cols[name] = (v if isinstance(v, ir.Value) else ibis.literal(v, type=typ)).cast(typ)
        elif name in t.columns:
            cols[name] = t[name].cast(typ)
        else:
            cols[name] = ibis.null(typ)
    return t.select(**cols)


# ------------------------------------------------------------------------------------------------
# steps (each returns decisions keyed by period_start, person_id)

_K = ["period_start", "person_id"]


def _plurality_step(
    s: ir.Table,
    remaining: ir.Table,
    step: AttributionStep,
    basis: str,
    weights: tuple[int, ...],
    tie_breaks: Sequence[str],
    store: Store | None = None,
) -> ir.Table:
    """Decisions of a plurality step for the remaining members that have matching services.

    With `store`: the visits, the ranked entities and the winners are stored steps."""
    v = _stored(store, "visits", _visits(s.semi_join(remaining, _K), weights, basis, step.compare))
    ranked = _stored(store, "entity_ranks", rank_entities(v, _K, "entity", tie_breaks))
    top = _winner_and_runner_up(ranked, _K, "entity", tie_breaks)
    won = top.select(
        *_K,
        winner_entity=top.entity,
        winner_allowed_cents=top.allowed_cents,
        winner_visits=top.visits,
        winner_score=top.score,
        runner_up_entity=top.ru_entity,
        runner_up_allowed_cents=top.ru_allowed_cents,
        runner_up_visits=top.ru_visits,
        runner_up_score=top.ru_score,
        tie_break=top.tie_break,
        aco_won=top.entity.startswith("aco"),
    )
    won = _stored(store, "entity_winners", won)
    # inside a winning ACO entity: the practice, then the NPI, by the same plurality
    ws = won.filter(won.aco_won).select(_w_ps=won.period_start, _w_person=won.person_id, _w_entity=won.winner_entity)
    wv = v.join(ws, [v.period_start == ws._w_ps, v.person_id == ws._w_person, v.entity == ws._w_entity])
    wv = wv.mutate(practice_key=ibis.coalesce(wv.practice_id, wv.billing_entity), npi_key=wv.npi.fill_null(_HIGH))
    prac = rank_entities(wv, _K, "practice_key", tie_breaks)
    prac = prac.filter(prac["rank"] == 0).select(
        _p_ps=prac.period_start, _p_person=prac.person_id, _p_key=prac.practice_key
    )
    prac = _stored(store, "practice_winners", prac)
    pv = wv.join(prac, [wv.period_start == prac._p_ps, wv.person_id == prac._p_person, wv.practice_key == prac._p_key])
    npis = rank_entities(pv, _K, "npi_key", tie_breaks)
    npis = npis.filter(npis["rank"] == 0).select(_n_ps=npis.period_start, _n_person=npis.person_id, _n_key=npis.npi_key)
    npis = _stored(store, "npi_winners", npis)
    nv = pv.join(npis, [pv.period_start == npis._n_ps, pv.person_id == npis._n_person, pv.npi_key == npis._n_key])
    who = nv.group_by([nv.period_start.name("_who_ps"), nv.person_id.name("_who_person")]).aggregate(
        practice_id=nv.practice_id.min(),
        practice_name=nv.practice_name.min(),
        hsa=nv.hsa.min(),
        npi=nv.npi.min(),
        tin=nv.tin.min(),
        ccn=nv.ccn.min(),
    )
    d = won.left_join(who, [won.period_start == who._who_ps, won.person_id == who._who_person])
    d = d.mutate(
        outcome=ibis.ifelse(d.aco_won, "assigned", "not_assigned"),
        reason=ibis.ifelse(d.aco_won, ibis.null("string"), ibis.literal("plurality_outside")),
        basis=ibis.literal(basis),
    )
    return d.mutate(decided_by=_decided_by(d))


def _designations(voluntary_alignment: ir.Table, members: ir.Table, periods: ir.Table) -> ir.Table:
    """One designation per period and person: the latest made by the list date (then one in
    force, then the lowest NPI), kept when it is in force on the list date. A later designation
    replaces an earlier one, so an earlier designation does not come back when the later ends."""
    va = voluntary_alignment
    if "tin" not in va.columns:
        va = va.mutate(tin=ibis.null("string"))
    if "end_date" not in va.columns:
        va = va.mutate(end_date=ibis.null("date"))
    pr = periods.select("period_start", "list_date")
    va = va.join(pr, va.designation_date <= pr.list_date)
    va = va.join(members, va.member_id == members.m_member_id)
    va = va.mutate(person_id=va.m_person_id, _in_force=(va.end_date.fill_null(_FAR) >= va.list_date).cast("int8"))
    latest = _first(va, _K, ["-designation_date", "-_in_force", "npi", "~tin"])
    return latest.filter(latest._in_force == 1).select(*_K, "npi", "tin", "designation_date")


def _voluntary_step(
    voluntary_alignment: ir.Table,
    members: ir.Table,
    remaining: ir.Table,
    lk: dict[str, ir.Table],
    periods: ir.Table,
    opts: Options,
) -> ir.Table:
    des = _designations(voluntary_alignment, members, periods).semi_join(remaining, _K)
    # the designated clinician decides: the designation's TIN stands in only for a clinician the
    # roster does not know at all (one who left that TIN is judged by where they are now)
    known = lk["provider"].select(_k_ps=lk["provider"].period_start, _k_npi=lk["provider"].npi)
    des = des.left_join(known, [des.period_start == known._k_ps, des.npi == known._k_npi])
    des = des.mutate(_unknown_tin=ibis.ifelse(des._k_npi.isnull(), des.tin, ibis.null("string"))).drop(
        "_k_ps", "_k_npi"
    )
    d = _lookup_entity(des, lk, npi="npi", tin="tin", npi_fallback=True, participating=opts.participating,
                       tin_fallback="_unknown_tin")
    return d.mutate(
        outcome=ibis.ifelse(d.aco, "assigned", "not_assigned"),
        reason=ibis.ifelse(d.aco, ibis.null("string"), ibis.literal("aligned_elsewhere")),
        basis=ibis.literal("voluntary_alignment"),
        winner_entity=ibis.literal("npi:") + d.npi,
        tin=ibis.coalesce(d.tin, d.roster_tin),
        tie_break=ibis.literal("designation"),
        decided_by=ibis.literal("voluntary_alignment: beneficiary designated clinician ")
        + d.npi
        + " on "
        + d.designation_date.cast("string"),
    )


def _payer_list(payer_list: ir.Table, program_id: str) -> ir.Table:
    pl = payer_list
    for c in ("practice_id", "npi", "tin"):
        if c not in pl.columns:
            pl = pl.mutate(**{c: ibis.null("string")})
    if "program_id" in pl.columns:
        pl = pl.filter(pl.program_id == program_id)
    return pl.select("member_id", "month", "practice_id", "npi", "tin")


def _with_list_practice(pl: ir.Table, lk: dict[str, ir.Table], opts: Options) -> ir.Table:
    """Fill a payer list's practice, TIN and HSA from the roster where the list lacks them."""
    pl = pl.rename(list_practice_id="practice_id", list_tin="tin")
    pl = pl.mutate(_npi=pl.npi.fill_null(_HIGH))
    got = _lookup_entity(pl, lk, npi="_npi", tin="list_tin", npi_fallback=True, participating=opts.participating)
    return got.mutate(
        practice_id=ibis.coalesce(got.list_practice_id, got.practice_id),
        tin=ibis.coalesce(got.list_tin, got.roster_tin),
    ).drop("_npi")


def _payer_step(
    payer_list: ir.Table,
    members: ir.Table,
    remaining: ir.Table,
    lk: dict[str, ir.Table],
    program_id: str,
    periods: ir.Table,
    opts: Options,
) -> ir.Table:
    pl = _payer_list(payer_list, program_id)
    pr = periods.select("period_start", "period_end")
    pl = pl.join(pr, [pl.month >= pr.period_start, pl.month <= pr.period_end])
    pl = pl.join(members, pl.member_id == members.m_member_id)
    pl = pl.mutate(person_id=pl.m_person_id)
    pl = _first(pl, _K, ["month", "~npi", "~practice_id"]).semi_join(remaining, _K)
    pl = _with_list_practice(pl, lk, opts)
    return pl.mutate(
        outcome=ibis.literal("assigned"),
        basis=ibis.literal("payer_supplied"),
        winner_entity=ibis.literal("payer_list"),
        tie_break=ibis.literal("payer_list"),
        decided_by=ibis.literal("payer_supplied: on the payer's list for ") + pl.month.cast("string"),
    )


def _selected(em: ir.Table, program: ProgramTerms) -> ir.BooleanValue:
    """Eligibility rows the program's population selects (payer, plans and groups)."""
    sel = (em.payer == program.payer) & em.plan.isin(list(program.population.plans))
    if program.population.group_ids:
        sel &= em.group_id.isin(list(program.population.group_ids)).fill_null(False)
    return sel


COVERAGE_COLUMNS = ("person_id", "month", "payer", "payer_type", "plan", "group_id")


def _coverage_months(eligibility_months: ir.Table, program: ProgramTerms, store: Store | None) -> ir.Table:
    """The eligibility months (all payers) that the exclusions and the expanded step read: the
    months of the program's effective period, and only the columns that say who covered the
    person. Every month these read is a program month or a period's first month, both inside the
    effective period, so the rows are the same as reading every month. Stored once per effective
    period: the programs of one run share it instead of each scanning every month of every year."""
    eff = program.effective
    first = dt.date(eff.start.year, eff.start.month, 1)
    em = eligibility_months
    t = em.filter((em.month >= first) & (em.month <= eff.end))
    t = t.select(*[c for c in COVERAGE_COLUMNS if c in em.columns])
    return _stored(store, "coverage_months", t, first, eff.end)


def _eligibility_deaths(eligibility_months: ir.Table, store: Store | None) -> ir.Table | None:
    """(person_id, death_date): each person's latest death date on any payer's eligibility
    months, of any year (a payer may record a death on months before the program's). Stored once
    for every program of the run. None when the eligibility months have no death dates."""
    em = eligibility_months
    if "death_date" not in em.columns:
        return None
    d = em.filter(em.death_date.notnull())
    d = d.group_by("person_id").aggregate(death_date=d.death_date.max())
    return _stored(store, "eligibility_deaths", d, "all")


def store_eligibility_facts(eligibility_months: ir.Table, program: ProgramTerms, store: Store) -> None:
    """Write into `store` all that :func:`attribute` reads of `eligibility_months` for `program`
    (its effective period's coverage months and the death dates), so that a caller can drop the
    eligibility months before attributing: a later `attribute` with the same store and
    eligibility months finds both stored and does not read the eligibility months again."""
    if program.attribution.method == "payer_supplied":
        return
    _coverage_months(eligibility_months, program, store)
    _eligibility_deaths(eligibility_months, store)


def _start_month(periods: ir.Table) -> ir.Table:
    p = periods.select("period_start")
    return p.mutate(start_month=ibis.date(p.period_start.year(), p.period_start.month(), 1))


def _expanded_step(
    remaining: ir.Table,
    services: ir.Table | None,
    pm: ir.Table,
    periods: ir.Table,
    program: ProgramTerms,
    step: AttributionStep,
    eligibility_months: ir.Table | None,
    opts: Options,
    store: Store | None = None,
) -> ir.Table:
    """Members with no primary care use, enrolled in the period's first month (with full benefits
    and no other insurance when the step asks), assigned to the ACO without a practice."""
    sm = _start_month(periods)
    at_start = pm.join(sm, pm.month == sm.start_month)
    if step.requires_full_benefits and opts.full_benefit_aid_categories is not None:
        at_start = at_start.filter(at_start.aid_category.isin(list(opts.full_benefit_aid_categories)))
    cand = remaining.semi_join(at_start.select(*_K), _K)
    if services is not None:
        cand = cand.anti_join(services.filter(services.primary_care_code).select(*_K), _K)
    if step.requires_no_other_insurance and eligibility_months is not None:
        em = _coverage_months(eligibility_months, program, store)
        other = em.filter(~_selected(em, program))
        other = other.join(sm, other.month == sm.start_month).select(*_K)
        cand = cand.anti_join(other, _K)
    return cand.mutate(
        outcome=ibis.literal("assigned"),
        basis=ibis.literal("expanded"),
        winner_entity=ibis.literal("aco"),
        tie_break=ibis.literal("no_primary_care_use"),
        decided_by=ibis.literal(f"{step.name}: no primary care use in the window; enrolled on ")
        + cand.period_start.cast("string"),
    )


def _member_map(pm: ir.Table) -> ir.Table:
    return pm.select(m_member_id=pm.member_id, m_person_id=pm.person_id).distinct()


def assignment(
    program: ProgramTerms,
    program_months: ir.Table,
    claim_lines: ir.Table,
    provider_roster: ir.Table,
    primary_care_codes: ir.Table | None,
    voluntary_alignment: ir.Table | None = None,
    payer_supplied: ir.Table | None = None,
    *,
    eligibility_months: ir.Table | None = None,
    options: Options = Options(),
    store: Store | None = None,
) -> ir.Table:
    """Run the program's steps for every assignment period.

    Grain: (program_id, period_start, person_id), one row per candidate (a person with a program
    member month in the period). ``outcome`` is ``assigned`` or ``not_assigned`` with ``reason``
    ``aligned_elsewhere`` (designated a clinician outside the ACO), ``no_aco_service`` (stopped
    by a require_service gate), ``plurality_outside`` (an outside entity won),
    ``no_qualifying_service`` or ``not_on_initial_list`` (a quarterly list that adds no members
    during the year). Columns: :data:`DECISION_SCHEMA`.

    With `store` (see :data:`Store`), each step is a stored table: the roster look-ups and the
    qualifying services (shared with programs of the same payer, codes and periods), the
    candidates, each step's decisions and the members still undecided after it.
    """
    a = program.attribution
    if a.method == "payer_supplied":
        raise RunError(f"{program.program_id}: a payer_supplied attribution has no computed assignment")
    needs_claims = any(s.rule in ("plurality", "require_service", "expanded") for s in a.steps)
    if primary_care_codes is None and needs_claims:
        raise RunError(f"{program.program_id}: claims-based attribution needs a primary-care code list")
    if any(s.rule == "payer_supplied" for s in a.steps) and payer_supplied is None:
        raise RunError(f"{program.program_id}: the terms have a payer_supplied step but no payer list was given")
    period_list = tuple(assignment_periods(program))
    periods = periods_table(period_list)
    pm = program_months.filter(program_months.program_id == program.program_id)
    members = _stored(store, "members", _member_map(pm))
    weights = recency_weights(a.recency_weights)
    basis = a.plurality_basis
    pr = periods.select("period_start", "period_end", "sticky")
    # A list fixed for the rest of the year (prospective) is made of the members enrolled when it
    # is made, its first month: one who joins later is not added during the year (VMNG; R1.1),
    # unless the terms add members at later quarters (add_members_during_year: a list per quarter).
    # A list of its period's own months (retrospective, quarterly) takes anyone enrolled in it.
    last = ibis.ifelse(pr.sticky, pr.period_start, pr.period_end)
    cand = pm.join(pr, [pm.month >= pr.period_start, pm.month <= last]).select(*_K).distinct()
    cand = _stored(store, "candidates", cand)
    lk = roster_lookups(provider_roster, program.payer, periods, options.participating,
                        store=store, periods_key=period_list)
    services = None
    if primary_care_codes is not None and needs_claims:
        all_services = any(
            not s.primary_care_services_only for s in a.steps if s.rule in ("plurality", "require_service")
        )
        services = _services(
            claim_lines,
            provider_roster,
            primary_care_codes,
            periods,
            payer=program.payer,
            participating=options.participating,
            all_services=all_services,
            claims_payers=options.claims_payers,
            store=store,
            periods_key=period_list,
            lookups=lk,
        )
    decided: list[ir.Table] = []
    remaining = cand
    named: dict[str, AttributionStep] = {}
    for step in a.steps:
        named[step.name] = step
        rows: ir.Table | None = None
        here = remaining
        if step.valid_through is not None:
            here = remaining.filter(remaining.period_start <= ibis.literal(step.valid_through))
        if step.rule == "voluntary_alignment":
            if voluntary_alignment is not None:
                rows = _voluntary_step(voluntary_alignment, members, here, lk, periods, options)
        elif step.rule == "payer_supplied":
            rows = _payer_step(payer_supplied, members, here, lk, program.program_id, periods, options)
        elif step.rule == "require_service":
            ok = services.filter(step_matches(services, step, options) & services.aco).select(*_K)
            rows = here.anti_join(ok, _K).mutate(
                outcome=ibis.literal("not_assigned"),
                reason=ibis.literal("no_aco_service"),
                decided_by=ibis.literal(f"{step.name}: no qualifying service from an ACO clinician"),
            )
        elif step.rule == "plurality":
            s = services.filter(step_matches(services, step, options))
            if step.requires_no_service_from is not None:
                earlier = named[step.requires_no_service_from]
                had = services.filter(step_matches(services, earlier, options)).select(*_K)
                s = s.anti_join(had, _K)
            rows = _plurality_step(s, here, step, basis, weights, a.tie_break, store)
        elif step.rule == "expanded":
            rows = _expanded_step(here, services, pm, periods, program, step, eligibility_months, options, store)
        if rows is None:
            continue
        rows = _conform(rows, DECISION_SCHEMA, program_id=program.program_id, step=step.name, rule=step.rule)
        rows = _stored(store, "step_decisions", rows)
        decided.append(rows)
        remaining = _stored(store, "undecided", remaining.anti_join(rows, _K))
    rest = remaining.mutate(outcome=ibis.literal("not_assigned"), reason=ibis.literal("no_qualifying_service"))
    decided.append(_conform(rest, DECISION_SCHEMA, program_id=program.program_id))
    d = decided[0]
    for x in decided[1:]:
        d = d.union(x)
    p = _prefixed(periods, "_pd_")
    d = d.join(p, d.period_start == p._pd_period_start)
    outcome, reason = d.outcome, d.reason
    if a.method == "quarterly" and not a.add_members_during_year:
        initial = d.filter(d._pd_first_period & (d.outcome == "assigned")).select(_i_person=d.person_id)
        d = d.left_join(initial, d.person_id == initial._i_person)
        late = (d.outcome == "assigned") & ~d._pd_first_period & d._i_person.isnull()
        outcome = ibis.ifelse(late, "not_assigned", d.outcome)
        reason = ibis.ifelse(late, "not_on_initial_list", d.reason)
    return _conform(
        d,
        DECISION_SCHEMA,
        period_end=d._pd_period_end,
        list_date=d._pd_list_date,
        window_start=d._pd_window_start,
        window_end=d._pd_window_end,
        sticky=d._pd_sticky,
        outcome=outcome,
        reason=reason,
    )


# ------------------------------------------------------------------------------------------------
# monthly roster and exclusions


def _program_months_table(program: ProgramTerms) -> ir.Table:
    """The program's months with the date each cadence of checks learns of that month's events."""
    eff = program.effective
    starts = month_starts(eff.start, eff.end)

    def quarter_end(m: dt.date) -> dt.date:
        q_last = dt.date(m.year, ((m.month - 1) // 3) * 3 + 3, 1)
        return min(month_end(q_last), eff.end)

    return ibis.memtable(
        {
            "month": starts,
            "month_last_day": [month_end(m) for m in starts],
            "known_monthly": [min(month_end(m), eff.end) for m in starts],
            "known_quarterly": [quarter_end(m) for m in starts],
            "known_annually": [eff.end for _ in starts],
        },
        schema=ibis.schema(
            {
                "month": "date",
                "month_last_day": "date",
                "known_monthly": "date",
                "known_quarterly": "date",
                "known_annually": "date",
            }
        ),
    )


def _periods_overlap(periods: Sequence[AssignmentPeriod]) -> bool:
    """Whether some month lies in two of the periods (sticky lists added during the year)."""
    spans = sorted((p.start, p.end) for p in periods)
    return any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:]))


def _month_rows(assigned: ir.Table, months: ir.Table, pm: ir.Table, overlapping: bool = True) -> ir.Table:
    """The (person, month) rows of the assigned decisions, narrow: person_id, period_start, month,
    member_id, eligible and the practice_id the exclusions read. A person keeps the earliest
    sticky assignment.

    The decisions' other columns are joined once, after the exclusions (`monthly_roster`): every
    join before that carries only these columns (the wide rows cost several times more to join,
    and DuckDB may build a hash table on them). A person has one decision per period, so when no
    two periods share a month (`overlapping` false) each (person, month) has one row already and
    the ranking is skipped."""
    n = assigned.select("person_id", "period_start", "period_end", "step", "practice_id")
    ms = months.select("month")
    n = n.join(ms, [ms.month >= n.period_start, ms.month <= n.period_end])
    if overlapping:
        n = _first(n, ["person_id", "month"], ["period_start", "step"])
    # member id of the month: the program member id that month, else the person's latest one
    # (the lowest id of the last month: one group-by and a join instead of ranking every month)
    mm = pm.group_by(["person_id", "month"]).aggregate(mm_member_id=pm.member_id.min())
    last = mm.group_by(lt_person_id=mm.person_id).aggregate(lt_month=mm.month.max())
    latest = mm.join(last, [mm.person_id == last.lt_person_id, mm.month == last.lt_month]).select(
        "lt_person_id", lt_member_id=mm.mm_member_id
    )
    mm = mm.rename(mm_person_id="person_id", mm_month="month")
    n = n.left_join(mm, [n.person_id == mm.mm_person_id, n.month == mm.mm_month])
    n = n.left_join(latest, n.person_id == latest.lt_person_id)
    return n.select(
        "person_id",
        "period_start",
        "month",
        member_id=ibis.coalesce(n.mm_member_id, n.lt_member_id),
        eligible=n.mm_member_id.notnull(),
        practice_id=n.practice_id,
    )


def practice_participation(
    roster: ir.Table, payer: str, months: ir.Table, participating: Sequence[str] = PARTICIPATING
) -> ir.Table:
    """(practice_id, month, participating): a practice participates in a month when some
    participating roster row of the payer covers its first day and some covers its last day."""
    r = roster.filter((roster.payer == payer) & roster.participation.isin(list(participating)))
    end = r.effective_end_date.fill_null(_FAR)
    j = r.join(months, [r.effective_start_date <= months.month_last_day, end >= months.month])
    first = (j.effective_start_date <= j.month) & (j.effective_end_date.fill_null(_FAR) >= j.month)
    last = (j.effective_start_date <= j.month_last_day) & (j.effective_end_date.fill_null(_FAR) >= j.month_last_day)
    return j.group_by(["practice_id", "month"]).aggregate(
        covers_first=first.any(), covers_last=last.any()
    ).mutate(participating=lambda t: t.covers_first & t.covers_last).drop("covers_first", "covers_last")


def _conditions(
    rows: ir.Table,
    program: ProgramTerms,
    pm: ir.Table,
    roster: ir.Table,
    months: ir.Table,
    eligibility_months: ir.Table | None,
    exclusion_events: ir.Table | None,
    opts: Options,
    store: Store | None = None,
) -> tuple[ir.Table, dict[str, ir.BooleanValue]]:
    """Join the facts each exclusion reason reads; return the table and a condition per reason."""
    kind = program.kind
    reasons = [e.reason for e in program.attribution.exclusions]
    # Only rows with a death date can give one (the latest is taken): the few deaths are kept
    # before anything else reads the member months of every member
    deaths = pm.select("person_id", "death_date")
    deaths = deaths.filter(deaths.death_date.notnull())
    recorded = _eligibility_deaths(eligibility_months, store) if eligibility_months is not None else None
    if recorded is not None:
        deaths = deaths.union(recorded)
    # only the program's people are looked up (the roster's are among them), not every member;
    # each once (the member months name a person once a month: a semi join's hash table built on
    # those rows is ten times larger than on the people)
    people = pm.select(_d_person_id=pm.person_id).distinct()
    deaths = deaths.semi_join(people, deaths.person_id == people._d_person_id)
    deaths = deaths.group_by("person_id").aggregate(dd_death_date=deaths.death_date.max())
    deaths = _stored(store, "deaths", deaths.rename(dd_person_id="person_id"))
    t = rows.left_join(deaths, rows.person_id == deaths.dd_person_id).drop("dd_person_id")
    part = practice_participation(roster, program.payer, months, opts.participating)
    part = part.rename(pp_practice_id="practice_id", pp_month="month", pp_participating="participating")
    part = _stored(store, "practice_participation", part)
    t = t.left_join(part, [t.practice_id == part.pp_practice_id, t.month == part.pp_month]).drop(
        "pp_practice_id", "pp_month"
    )
    has = {"medicare": ibis.literal(False), "medicaid": ibis.literal(False), "commercial": ibis.literal(False)}
    same_plan = ibis.literal(False)
    if eligibility_months is not None:
        # the program's months only (the coverage months are those of the effective period,
        # which are the program's months), and only the program's people
        em = _coverage_months(eligibility_months, program, store)
        em = em.semi_join(people, em.person_id == people._d_person_id)
        sel = _selected(em, program)
        facts = em.mutate(_sel=sel).group_by(["person_id", "month"]).aggregate(
            oc_medicare=((em.payer_type == "medicare") & ~sel).any(),
            oc_medicaid=((em.payer_type == "medicaid") & ~sel).any(),
            oc_commercial=(em.payer_type.isin(["commercial", "self_funded"]) & ~sel).any(),
            oc_same_plan=sel.any(),
        )
        facts = _stored(store, "other_coverage", facts.rename(oc_person_id="person_id", oc_month="month"))
        t = t.left_join(facts, [t.person_id == facts.oc_person_id, t.month == facts.oc_month]).drop(
            "oc_person_id", "oc_month"
        )
        has = {
            "medicare": t.oc_medicare.fill_null(False),
            "medicaid": t.oc_medicaid.fill_null(False),
            "commercial": t.oc_commercial.fill_null(False),
        }
        same_plan = t.oc_same_plan.fill_null(False)
    dead = t.dd_death_date.notnull() & (t.dd_death_date < t.month)
    eligible = t.eligible
    cond: dict[str, ir.BooleanValue] = {
        "death": dead,
        "employer_opt_out": ~eligible & same_plan,
        "lost_coverage": ~eligible
        & ~(dead if "death" in reasons else ibis.literal(False))
        & ~(same_plan if "employer_opt_out" in reasons else ibis.literal(False)),
        "practice_left": t.practice_id.notnull() & ~t.pp_participating.fill_null(False),
        "medicare_advantage": has["medicare"] if kind == "medicare" else ibis.literal(False),
        "aged_into_medicare": has["medicare"] if kind != "medicare" else ibis.literal(False),
        "medicare_secondary_payer": has["commercial"] if kind == "medicare" else ibis.literal(False),
        "other_coverage": (
            has["commercial"]
            if kind == "medicaid"
            else (has["commercial"] | has["medicaid"]) if kind in ("commercial", "self_funded") else ibis.literal(False)
        ),
    }
    if exclusion_events is not None:
        ev = exclusion_events
        if "end_date" not in ev.columns:
            ev = ev.mutate(end_date=ibis.null("date"))
        members = _member_map(pm)
        ev = ev.join(members, ev.member_id == members.m_member_id)
        evm = months.select(ev_month=months.month, ev_last=months.month_last_day)
        ev = ev.join(evm, [ev.event_date <= evm.ev_last, ev.end_date.fill_null(_FAR) >= evm.ev_month])
        ev_facts = ev.group_by([ev.m_person_id.name("ev_person_id"), ev.ev_month]).aggregate(
            **{f"ev_{r}": (ev.reason == r).any() for r in reasons}
        )
        t = t.left_join(ev_facts, [t.person_id == ev_facts.ev_person_id, t.month == ev_facts.ev_month]).drop(
            "ev_person_id", "ev_month"
        )
        for r in reasons:
            cond[r] = cond.get(r, ibis.literal(False)) | t[f"ev_{r}"].fill_null(False)
    return t, {r: cond.get(r, ibis.literal(False)) for r in reasons}


def _apply_exclusions(
    rows: ir.Table,
    program: ProgramTerms,
    pm: ir.Table,
    roster: ir.Table,
    eligibility_months: ir.Table | None,
    exclusion_events: ir.Table | None,
    as_of: dt.date | None,
    opts: Options,
    store: Store | None = None,
) -> ir.Table:
    a = program.attribution
    months = _program_months_table(program)
    mj = months.rename(_m="month")
    t = rows.join(mj, rows.month == mj._m).drop("_m")
    t, cond = _conditions(t, program, pm, roster, months, eligibility_months, exclusion_events, opts, store)
    if store is not None:
        # the conditions as columns, so that the stored table carries them
        t = _stored(store, "roster_facts", t.mutate(**{f"_cond_{r}": c for r, c in cond.items()}))
        cond = {r: t[f"_cond_{r}"] for r in cond}
    hit_of = {}
    for e in a.exclusions:
        known = t[f"known_{e.checked}"]
        hit_of[e.reason] = cond[e.reason] & known.notnull() & (
            ibis.literal(True) if as_of is None else known <= ibis.literal(as_of)
        )
    t = t.mutate(**{f"_h_{r}": h for r, h in hit_of.items()})
    yearly = [e.reason for e in a.exclusions if e.scope == "year"]
    if yearly:
        # a year-scope reason holds in every month of a person once it holds in one: aggregated
        # per person and joined back (a window over the wide month rows costs several times more)
        per_person = t.group_by(_y_person_id=t.person_id).aggregate(
            **{f"_y_{r}": t[f"_h_{r}"].cast("int8").max() for r in yearly}
        )
        t = t.left_join(per_person, t.person_id.identical_to(per_person._y_person_id)).drop("_y_person_id")
    excluded: dict[str, ir.BooleanValue] = {}
    to_date = ibis.window(group_by=[t.person_id], order_by=[t.month], preceding=None, following=0)
    for e in a.exclusions:
        hit = t[f"_h_{e.reason}"]
        if e.scope == "year":
            excluded[e.reason] = t[f"_y_{e.reason}"] == 1
        elif a.requalify:
            excluded[e.reason] = hit
        else:
            excluded[e.reason] = hit.cast("int8").max().over(to_date) == 1
    t = t.mutate(**{f"_x_{r}": v.fill_null(False) for r, v in excluded.items()})
    ordered = [r for r in REASON_PRIORITY if r in excluded] + [r for r in excluded if r not in REASON_PRIORITY]
    if ordered:
        reason = ibis.cases(*[(t[f"_x_{r}"], r) for r in ordered], else_=ibis.null("string"))
    else:
        reason = ibis.null("string")
    return t.mutate(exclusion_reason=reason, attributed=reason.isnull())


def attribute(
    program: ProgramTerms,
    program_months: ir.Table,
    claim_lines: ir.Table,
    provider_roster: ir.Table,
    primary_care_codes: ir.Table | None,
    voluntary_alignment: ir.Table | None = None,
    payer_supplied: ir.Table | None = None,
    *,
    eligibility_months: ir.Table | None = None,
    exclusion_events: ir.Table | None = None,
    as_of: dt.date | None = None,
    options: Options = Options(),
    store: Store | None = None,
) -> ir.Table:
    """The monthly attribution roster of one program.

    Grain: (program_id, member_id, month); one row per listed member and month of the program's
    effective period (a member is listed when a step assigned them, or the payer's list names
    them). Columns: :data:`ATTRIBUTION_SCHEMA`; ``attributed`` is true when the member is listed
    and no exclusion applies that month, ``eligible`` when a program member month exists.

    Inputs: `program_months` from :func:`allpayer.core.programs.program_months`; `claim_lines`
    from :func:`allpayer.core.claims.medical_claim_lines`; `provider_roster` as loaded;
    `primary_care_codes` from :func:`allpayer.reference.primary_care.primary_care_codes_for`.
    Optional tables (their columns are documented in docs/attribution.md):
    `voluntary_alignment` (member_id, npi, tin, designation_date, end_date),
    `payer_supplied` (member_id, month, program_id, practice_id, npi, tin),
    `eligibility_months` (all payers, from :func:`allpayer.core.member_months.eligibility_months`:
    death dates, other coverage, employer opt-out) and `exclusion_events` (member_id, reason,
    event_date, end_date) for reasons the data cannot show (moved out of area, hospice...).
    `as_of`: apply only exclusions known by that date, given each reason's ``checked`` cadence
    (None: all).

    `store` (see :data:`Store`) materializes each step (services, each rule step's decisions,
    the decisions, the month rows and their exclusion facts) and the roster itself, so every query
    stays small; without it the roster is one expression. The rows are the same either way.
    """
    a = program.attribution
    pm = program_months.filter(program_months.program_id == program.program_id)
    months = _program_months_table(program)
    if a.method == "payer_supplied":
        if payer_supplied is None:
            raise RunError(f"{program.program_id}: attribution method payer_supplied needs the payer's list")
        rows = _payer_rows(payer_supplied, program, pm, provider_roster, months, options)
        step = next((s.name for s in a.steps), "payer_supplied")
        rows = rows.mutate(exclusion_reason=ibis.null("string"), attributed=ibis.literal(True))
        return _conform(
            rows,
            ATTRIBUTION_SCHEMA,
            program_id=program.program_id,
            performance_year=program.performance_year,
            method=a.method,
            step=step,
            rule="payer_supplied",
            basis="payer_supplied",
        )
    decisions = assignment(
        program,
        program_months,
        claim_lines,
        provider_roster,
        primary_care_codes,
        voluntary_alignment,
        payer_supplied,
        eligibility_months=eligibility_months,
        options=options,
        store=store,
    )
    decisions = _stored(store, "decisions", decisions)
    roster = monthly_roster(
        program,
        decisions,
        program_months,
        provider_roster,
        eligibility_months=eligibility_months,
        exclusion_events=exclusion_events,
        as_of=as_of,
        options=options,
        store=store,
    )
    return _stored(store, "roster", roster)


def monthly_roster(
    program: ProgramTerms,
    decisions: ir.Table,
    program_months: ir.Table,
    provider_roster: ir.Table,
    *,
    eligibility_months: ir.Table | None = None,
    exclusion_events: ir.Table | None = None,
    as_of: dt.date | None = None,
    options: Options = Options(),
    store: Store | None = None,
) -> ir.Table:
    """The monthly roster from :func:`assignment`'s decisions (the second half of
    :func:`attribute`; a caller may materialize the decisions in between).

    Each assigned decision covers its period's months (a sticky one, to the end of the year; a
    person keeps the earliest); exclusions then apply month by month. Same output as
    :func:`attribute`.
    """
    a = program.attribution
    if a.method == "payer_supplied":
        raise RunError(f"{program.program_id}: a payer_supplied roster comes from attribute(), not decisions")
    pm = program_months.filter(program_months.program_id == program.program_id)
    months = _program_months_table(program)
    d = decisions.filter(decisions.program_id == program.program_id)
    assigned = d.filter(d.outcome == "assigned")
    overlapping = _periods_overlap(assignment_periods(program))
    rows = _stored(store, "roster_months", _month_rows(assigned, months, pm, overlapping))
    rows = _apply_exclusions(rows, program, pm, provider_roster, eligibility_months, exclusion_events, as_of, options,
                             store)
    rows = rows.select(
        _r_person_id=rows.person_id, _r_period_start=rows.period_start, month=rows.month, member_id=rows.member_id,
        eligible=rows.eligible, exclusion_reason=rows.exclusion_reason, attributed=rows.attributed,
    )
    # each month row takes its decision's other columns in one join, once its exclusions are known
    rows = assigned.join(
        rows, [assigned.person_id.identical_to(rows._r_person_id), assigned.period_start == rows._r_period_start]
    )
    return _conform(
        rows,
        ATTRIBUTION_SCHEMA,
        performance_year=program.performance_year,
        method=a.method,
    )


def _payer_rows(
    payer_list: ir.Table, program: ProgramTerms, pm: ir.Table, roster: ir.Table, months: ir.Table, opts: Options
) -> ir.Table:
    """The payer's list as roster rows: one per member and month it names, inside the period."""
    pl = _payer_list(payer_list, program.program_id)
    mm = months.select(_mm=months.month)
    pl = pl.join(mm, pl.month == mm._mm).drop("_mm")
    pl = _first(pl, ["member_id", "month"], ["~npi", "~practice_id", "~tin"])
    members = _member_map(pm)
    pl = pl.left_join(members, pl.member_id == members.m_member_id)
    elig = pm.select(e_member_id=pm.member_id, e_month=pm.month).distinct()
    pl = pl.left_join(elig, [pl.member_id == elig.e_member_id, pl.month == elig.e_month])
    pl = pl.mutate(person_id=pl.m_person_id, eligible=pl.e_member_id.notnull(), period_start=pl.month)
    eff = program.effective
    # practice, TIN and HSA from the roster in force on the first day of each listed month
    per_month = periods_table([AssignmentPeriod(m, m, m, m, m, sticky=False) for m in month_starts(eff.start, eff.end)])
    lk = roster_lookups(roster, program.payer, per_month, opts.participating)
    pl = _with_list_practice(pl, lk, opts)
    return pl.mutate(
        winner_entity=ibis.literal("payer_list"),
        tie_break=ibis.literal("payer_list"),
        decided_by=ibis.literal("payer_supplied: on the payer's list for ") + pl.month.cast("string"),
    )


# ------------------------------------------------------------------------------------------------
# changes and reconciliation


_MONTH_BITS = 62
"""The most months of a program whose roster rows `_persons_who_may_change` checks as a bit set."""


def _persons_who_may_change(t: ir.Table, months: ir.Table) -> ir.Table:
    """(program_id, person_id) of the roster `t` except those with no change in any month: never
    attributed in any row, or one attributed row in every month of the program (`months`: its
    distinct months in `t`), all with the same practice. Most members are one or the other, so
    the month-by-month comparison runs on the few others only. A program of more than
    ``_MONTH_BITS`` months keeps everyone who is attributed in some month."""
    span = months.group_by("program_id").aggregate(_first=months.month.min(), _nm=months.count())
    k = t.join(span, "program_id")
    offset = ((k.month.year() - k._first.year()) * 12 + k.month.month() - k._first.month()).cast("int64")
    bit = ibis.ifelse(offset < _MONTH_BITS, ibis.literal(1, "int64") << offset, ibis.literal(-1, "int64"))
    practice = k.practice_id.fill_null("")
    per = k.group_by(["program_id", "person_id"]).aggregate(
        _rows=k.count(),
        _attributed=k.attributed.cast("int64").sum(),
        _months=bit.bit_or(),
        _nm=k._nm.max(),
        _lo=practice.min(),
        _hi=practice.max(),
    )
    # one row per month: as many rows as months, and every month present (bit set complete)
    full = (ibis.literal(1, "int64") << ibis.least(per._nm, _MONTH_BITS)) - 1
    every_month = (per._rows == per._nm) & (per._nm <= _MONTH_BITS) & (per._months == full)
    stable = (per._attributed.fill_null(-1) == 0) | (
        every_month & (per._attributed == per._rows) & (per._lo == per._hi)
    )
    return per.filter(~stable.fill_null(False)).select("program_id", "person_id")


def attribution_changes(attribution: ir.Table) -> ir.Table:
    """Adds, drops and practice changes between consecutive months of each program's roster.

    Grain: (program_id, person_id, month) for the months where something changed, from each
    program's second month on. ``change`` is ``added`` (reason ``requalified`` when the member
    was listed but excluded the month before, else ``newly_assigned``), ``dropped`` (reason: the
    month's ``exclusion_reason``, or ``not_reassigned`` when the member is no longer listed) or
    ``practice_changed`` (reason ``reassigned``). Columns: :data:`CHANGES_SCHEMA`.
    """
    t = attribution
    months = t.select("program_id", "month").distinct()
    t = t.semi_join(_persons_who_may_change(t, months), ["program_id", "person_id"])
    people = t.select("program_id", "person_id").distinct()
    grid = people.join(months, "program_id")
    cur = t.select(
        c_program_id=t.program_id,
        c_person_id=t.person_id,
        c_month=t.month,
        member_id=t.member_id,
        attributed=t.attributed,
        exclusion_reason=t.exclusion_reason,
        practice_id=t.practice_id,
        npi=t.npi,
        step=t.step,
        listed=ibis.literal(True),
    )
    g = grid.left_join(
        cur, [grid.program_id == cur.c_program_id, grid.person_id == cur.c_person_id, grid.month == cur.c_month]
    ).drop("c_program_id", "c_person_id", "c_month")
    g = g.mutate(attributed=g.attributed.fill_null(False), listed=g.listed.fill_null(False))
    w = ibis.window(group_by=[g.program_id, g.person_id], order_by=[g.month])
    g = g.mutate(
        previous_month=g.month.lag().over(w),
        p_attributed=g.attributed.lag().over(w),
        p_listed=g.listed.lag().over(w),
        p_reason=g.exclusion_reason.lag().over(w),
        p_practice_id=g.practice_id.lag().over(w),
        p_npi=g.npi.lag().over(w),
        p_member_id=g.member_id.lag().over(w),
        p_step=g.step.lag().over(w),
    )
    g = g.filter(g.previous_month.notnull())
    added = g.attributed & ~g.p_attributed
    dropped = ~g.attributed & g.p_attributed
    moved = g.attributed & g.p_attributed & (g.practice_id.fill_null("") != g.p_practice_id.fill_null(""))
    g = g.filter(added | dropped | moved)
    change = ibis.cases((added, "added"), (dropped, "dropped"), else_="practice_changed")
    reason = ibis.cases(
        (added & g.p_listed & g.p_reason.notnull(), "requalified"),
        (added, "newly_assigned"),
        (dropped & g.listed, g.exclusion_reason.fill_null("excluded")),
        (dropped, "not_reassigned"),
        else_="reassigned",
    )
    out = g.mutate(
        change=change,
        reason=reason,
        member_id=ibis.coalesce(g.member_id, g.p_member_id),
        from_practice_id=g.p_practice_id,
        to_practice_id=ibis.ifelse(g.attributed, g.practice_id, ibis.null("string")),
        from_npi=g.p_npi,
        to_npi=ibis.ifelse(g.attributed, g.npi, ibis.null("string")),
        step=ibis.coalesce(g.step, g.p_step),
    )
    out = out.mutate(from_practice_id=ibis.ifelse(out.change == "added", ibis.null("string"), out.from_practice_id),
                     from_npi=ibis.ifelse(out.change == "added", ibis.null("string"), out.from_npi))
    return _conform(out, CHANGES_SCHEMA)


RECONCILE_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "member_id": "string",
        "month": "date",
        "status": "string",
        "reason": "string",
        "our_practice_id": "string",
        "payer_practice_id": "string",
        "our_npi": "string",
        "payer_npi": "string",
        "our_tin": "string",
        "payer_tin": "string",
        "our_step": "string",
        "our_exclusion_reason": "string",
        "our_decided_by": "string",
    }
)
"""Columns of :func:`reconcile_attribution`."""


def reconcile_attribution(ours: ir.Table, payer_list: ir.Table, program_id: str | None = None) -> ir.Table:
    """Our roster against the payer's list, member by member and month.

    `ours` is an :func:`attribute` table; `payer_list` has ``member_id, month`` and optionally
    ``program_id`` (else `program_id` is required), ``practice_id``, ``npi``, ``tin``.

    Grain: (program_id, member_id, month) over the union of both lists. ``status``: ``both``,
    ``only_ours`` or ``only_payer``. ``reason``: ``match``; ``practice_differs`` (or
    ``npi_differs`` / ``tin_differs`` when the payer gives no practice); ``not_on_payer_list``;
    ``excluded_by_us`` (we list the member but an exclusion applies: see
    ``our_exclusion_reason``); ``not_listed_by_us``. Columns: :data:`RECONCILE_SCHEMA`.
    """
    pl = payer_list
    for c in ("practice_id", "npi", "tin"):
        if c not in pl.columns:
            pl = pl.mutate(**{c: ibis.null("string")})
    if "program_id" not in pl.columns:
        if program_id is None:
            raise RunError("the payer's attribution list has no program_id column: name the program")
        pl = pl.mutate(program_id=ibis.literal(program_id))
    elif program_id is not None:
        pl = pl.filter(pl.program_id == program_id)
    pl = _first(pl, ["program_id", "member_id", "month"], ["~npi", "~practice_id", "~tin"])
    p = pl.select(
        p_program_id=pl.program_id,
        p_member_id=pl.member_id,
        p_month=pl.month,
        payer_practice_id=pl.practice_id,
        payer_npi=pl.npi,
        payer_tin=pl.tin,
    )
    o = ours
    if program_id is not None:
        o = o.filter(o.program_id == program_id)
    o = o.select(
        o_program_id=o.program_id,
        o_member_id=o.member_id,
        o_month=o.month,
        o_attributed=o.attributed,
        our_practice_id=o.practice_id,
        our_npi=o.npi,
        our_tin=o.tin,
        our_step=o.step,
        our_exclusion_reason=o.exclusion_reason,
        our_decided_by=o.decided_by,
    )
    j = o.outer_join(p, [o.o_program_id == p.p_program_id, o.o_member_id == p.p_member_id, o.o_month == p.p_month])
    ours_in = j.o_attributed.fill_null(False)
    payer_in = j.p_member_id.notnull()
    j = j.filter(ours_in | payer_in)
    status = ibis.cases((ours_in & payer_in, "both"), (ours_in, "only_ours"), else_="only_payer")

    def differs(a, b):
        return b.notnull() & (a.fill_null("") != b)

    reason = ibis.cases(
        (ours_in & payer_in & differs(j.our_practice_id, j.payer_practice_id), "practice_differs"),
        (ours_in & payer_in & j.payer_practice_id.isnull() & differs(j.our_npi, j.payer_npi), "npi_differs"),
        (ours_in & payer_in & j.payer_practice_id.isnull() & differs(j.our_tin, j.payer_tin), "tin_differs"),
        (ours_in & payer_in, "match"),
        (ours_in, "not_on_payer_list"),
        (j.o_member_id.notnull(), "excluded_by_us"),
        else_="not_listed_by_us",
    )
    out = j.mutate(
        program_id=ibis.coalesce(j.o_program_id, j.p_program_id),
        member_id=ibis.coalesce(j.o_member_id, j.p_member_id),
        month=ibis.coalesce(j.o_month, j.p_month),
        status=status,
        reason=reason,
    )
    return _conform(out, RECONCILE_SCHEMA)
