"""Events for the event-based quality measures: ED visits, inpatient stays, follow-up visits.

The follow-up, readmission and treatment-initiation measures count events, not members: one ED
visit or one discharge each. This module builds those events from net medical claim lines
(:func:`allpayer.core.claims.medical_claim_lines`) as Ibis expressions, with the windows the
measures share:

- :func:`claim_summary` (grain ``claim_id``): one row per usable claim (not denied, net allowed
  above zero) with its person, dates, facility type, principal diagnosis and boolean flags: from
  its lines (an ED line, a follow-up visit code) and from its diagnoses (a principal or any
  diagnosis in a code list, read from the long diagnosis table). :func:`event_claims` builds it
  from a measure context, once per program (:func:`cached`).
- :func:`ed_visits` (grain ``person_id, visit_date``): facility and professional claims of one
  person on one date with an ED line are one visit; the evidence is the lowest claim id among the
  claims that qualify the visit.
- :func:`inpatient_stays` (grain ``person_id, admission_date``): institutional claims of an
  inpatient facility type with the same admission date are one stay (interim bills).
- :func:`merge_transfers` (grain ``person_id, admission_date``): a stay that begins on or the day
  after the discharge of an earlier stay of the same person (a direct transfer) is merged into one
  episode, from the first admission to the last discharge. The episode takes its principal
  diagnosis and discharge disposition from its last stay.
- :func:`first_visit_between`, :func:`first_stay_between`: the earliest visit or admission in a
  window of days after an event (the evidence of a follow-up, or of an exclusion).
- :func:`first_per_window`: at most one event per window (HEDIS "multiple visits in a 31-day
  period"): the first event counts, events in the following ``days - 1`` days do not, then the
  next event after that counts, and so on.
- :func:`ed_follow_up`: the pipeline FUM, FUA, NQF 2605 and FMC share (see its docstring).
- :func:`person_exclusions`: hospice and death in the measurement year.
- :func:`decide`: the result rows: the first outcome that holds (not enrolled, excluded, ...)
  decides the denominator, the exclusion and the evidence; otherwise the numerator test does.

Claim dates: a claim's ``visit_date`` is the earliest line service date. Diagnoses are compared
without dots and in upper case.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import cache

ACUTE_INPATIENT_FACILITY_TYPES: tuple[str, ...] = ("11",)
"""Bill type facility/classification prefixes of acute inpatient stays (hospital inpatient, 11x)."""

NONACUTE_INPATIENT_FACILITY_TYPES: tuple[str, ...] = ("18", "21", "28", "86")
"""Nonacute inpatient stays: swing bed (18x), skilled nursing inpatient (21x, 28x), residential (86x)."""

if TYPE_CHECKING:  # pragma: no cover
    from allpayer.quality.framework import Enrollment, MeasureContext

Flag = Callable[[ir.Table], ir.BooleanValue]
"""A test of a claim line (a function of the claim-lines table)."""
ClaimTest = Callable[[ir.Table], ir.BooleanValue]
"""A test of a claim (a function of the :func:`claim_summary` table)."""


def normalize_code(code: ir.StringValue) -> ir.StringValue:
    """A code without dots or spaces, in upper case (``F32.9`` and ``f329`` are ``F329``)."""
    return code.upper().replace(".", "").strip()


def facility_type(bill_type: ir.StringValue) -> ir.StringValue:
    """The first two significant digits of a bill type (``0111`` and ``111`` give ``11``)."""
    b = bill_type.fill_null("")
    b3 = ibis.ifelse(b.length() == 4, b.substr(1, 3), b)
    return b3.substr(0, 2)


DxSpec = Mapping[str, tuple[Callable[[ir.StringValue], ir.BooleanValue], bool]]


def claim_dx_flags(diagnoses: ir.Table, dx: DxSpec, codes: ir.Table | None = None) -> ir.Table:
    """Per claim, whether its diagnoses match: ``claim_id`` and one boolean per entry of `dx`
    (name -> (matcher, principal only)). `diagnoses` is long (``claim_id, position, code``;
    position 1 is the principal diagnosis), so each code list is tested on one column, and only
    on the distinct codes (`codes`, from `framework.diagnosis_codes`; built here when not given):
    the diagnosis rows are joined to the codes that match."""
    from allpayer.quality.framework import code_lookup, diagnosis_codes

    codes = codes if codes is not None else diagnosis_codes(diagnoses)
    look = code_lookup(codes, "normalized", {f"_m_{k}": match for k, (match, _) in dx.items()})
    look = look.drop("normalized").rename(_lk_code="code")
    d = diagnoses.join(look, diagnoses.code == look._lk_code)
    hits = {}
    for name, (_, principal) in dx.items():
        test = d[f"_m_{name}"]
        if principal:
            test = test & (d.position == 1)
        hits[name] = test
    d = d.mutate(**{f"_dx_{k}": v for k, v in hits.items()})
    d = d.filter(ibis.or_(*[d[f"_dx_{k}"] for k in dx]))
    return d.group_by(_dx_claim=d.claim_id).aggregate(**{k: d[f"_dx_{k}"].max() for k in dx})


def claim_summary(lines: ir.Table, flags: Mapping[str, Flag] | None = None, *, dx: DxSpec | None = None,
                  diagnoses: ir.Table | None = None) -> ir.Table:
    """One row per usable claim: not denied, net allowed above zero.

    Columns: claim_id, person_id, member_id, payer, plan, claim_type, facility_type, visit_date
    (earliest line service date), end_date (latest line date or claim end), admission_date,
    discharge_date, discharge_disposition_code, admit_type_code, principal_dx (normalized),
    redacted (any line flagged ``substance_use_redacted``), is_ed (any line of service category
    ``ed``), one boolean column per entry of `flags` (true when any line of the claim is), and
    one per entry of `dx` (:func:`claim_dx_flags` over `diagnoses`, the long diagnosis table;
    built from `lines` when not given).
    """
    flags = dict(flags or {})
    line_flags = claim_line_flags(lines, flags) if flags else None
    dx_flags = None
    if dx:
        if diagnoses is None:
            from allpayer.quality.framework import diagnoses_long

            diagnoses = diagnoses_long(lines)
        dx_flags = claim_dx_flags(diagnoses, dx)
    return with_claim_flags(claim_base(lines), line_flags, list(flags), dx_flags, list(dx or {}))


def claim_base(lines: ir.Table) -> ir.Table:
    """:func:`claim_summary` without flags: one row per usable claim. `lines`: netted claim lines
    (one row per claim_id and claim_line_number, as `MeasureContext.claims` has them).

    Most claims have one line (numbered 1): their rows are the line's own values, which are what
    the aggregates would give, and only the claims with a line numbered otherwise are grouped
    (with the lines without a claim id, one group as before). A netted line is unique by
    (claim_id, claim_line_number), so a claim without a line numbered otherwise has exactly one."""
    if "claim_line_number" not in lines.columns:
        agg = _per_claim(lines, one_line=False)
    else:
        several = lines.filter((lines.claim_line_number != 1).fill_null(True))
        several = several.select(_several=several.claim_id).distinct()
        alone = lines.filter(lines.claim_id.notnull()).anti_join(several, lines.claim_id == several._several)
        grouped = lines.filter(lines.claim_id.isnull()).union(lines.semi_join(several, lines.claim_id == several._several))
        agg = _per_claim(grouped, one_line=False)
        agg = _per_claim(alone, one_line=True).cast(agg.schema()).union(agg)
    return agg.filter(~agg._denied & (agg.allowed_cents > 0)).drop("_denied")


def _per_claim(lines: ir.Table, *, one_line: bool) -> ir.Table:
    """The claim rows of `lines` (see :func:`claim_base`), with ``_denied``: aggregated per claim,
    or (`one_line`: each claim of `lines` has one line) projected from its line."""
    m = lines
    status = m.claim_status.fill_null("paid") if "claim_status" in m.columns else ibis.literal("paid")
    redacted = (
        m.substance_use_redacted.fill_null(False) if "substance_use_redacted" in m.columns else ibis.literal(False)
    )

    def col(name: str, kind: str) -> ir.Value:
        return m[name] if name in m.columns else ibis.null(kind)

    principal = normalize_code(m.diagnosis_code_1) if "diagnosis_code_1" in m.columns else ibis.null("string")
    end = m.claim_line_end_date.fill_null(m.claim_end_date) if "claim_line_end_date" in m.columns else m.claim_end_date
    m = m.mutate(
        _denied=status == "denied",
        _redacted=redacted,
        _ed=m.service_category == "ed",
        _principal=principal,
        _end=end.fill_null(m.service_date),
        _adm=col("admission_date", "date"),
        _dis=col("discharge_date", "date"),
        _disp=col("discharge_disposition_code", "string"),
        _atype=col("admit_type_code", "string"),
        _bill=col("bill_type_code", "string"),
        _pos=col("place_of_service_code", "string"),
    )
    values = {
        "person_id": (m.person_id, "max"),
        "member_id": (m.member_id, "max"),
        "payer": (m.payer, "max"),
        "plan": (m.plan, "max"),
        "claim_type": (m.claim_type, "max"),
        "facility_type": (facility_type(m._bill), "max"),
        "place_of_service_code": (m._pos, "max"),
        "visit_date": (m.service_date, "min"),
        "end_date": (m._end, "max"),
        "admission_date": (m._adm.fill_null(m.claim_start_date), "min"),
        "discharge_date": (m._dis.fill_null(m.claim_end_date), "max"),
        "discharge_disposition_code": (m._disp, "max"),
        "admit_type_code": (m._atype, "max"),
        "principal_dx": (m._principal, "max"),
        "allowed_cents": (m.allowed_cents, "sum"),
        "redacted": (m._redacted, "max"),
        "is_ed": (m._ed, "max"),
        "_denied": (m._denied, "max"),
    }
    if one_line:
        return m.select("claim_id", **{k: v for k, (v, _how) in values.items()})
    return m.group_by("claim_id").aggregate(**{k: getattr(v, how)() for k, (v, how) in values.items()})


class LineFlag:
    """A line flag (a `Flag`) that reads only the line's `columns`: :func:`claim_line_flags`
    tests it once per distinct combination of their values, not once per line."""

    def __init__(self, test: Flag, columns: Sequence[str]):
        self.test = test
        self.columns = tuple(columns)

    def __call__(self, t: ir.Table) -> ir.BooleanValue:
        return self.test(t)


LINE_FLAG_COLUMNS: tuple[str, ...] = ("hcpcs_code", "revenue_center_code", "place_of_service_code", "service_category")
"""The columns the shipped line flags read (:func:`code_flag`, :func:`visit_code_flag`)."""


def line_code_combinations(lines: ir.Table, columns: Sequence[str] = LINE_FLAG_COLUMNS) -> ir.Table:
    """The distinct combinations of `columns` in `lines` (those `lines` has), for
    :func:`claim_line_flags`'s ``combinations``."""
    return lines.select(*[c for c in columns if c in lines.columns]).distinct()


def claim_line_flags(lines: ir.Table, flags: Mapping[str, Flag], combinations: ir.Table | None = None) -> ir.Table:
    """Per claim with a line that passes any of `flags`: ``_fl_claim`` and one boolean per flag
    (true when any line of the claim passes it). Claims with no such line are left out.

    When every flag is a `LineFlag`, the flags are tested on the distinct combinations of the
    columns they read (a few thousand code combinations instead of every line) and the lines
    joined to the combinations that pass one (NULL matching NULL). `combinations`: those
    combinations already stored (:func:`line_code_combinations`, over the columns the flags read
    or more), shared by the flags of several measures. Stored, they are tested as they are; as an
    expression, the engine may move the flags' filter below the ``DISTINCT`` and test every line
    (DuckDB does: at 650,000 members a payer's 7.4 million lines were tested instead of a few
    thousand combinations)."""
    def passing(t: ir.Table) -> ir.Table:
        """The rows of `t` that pass a flag, with one ``_f_<flag>`` boolean per flag."""
        m = t.mutate(**{f"_f_{k}": f(t).fill_null(False) for k, f in flags.items()})
        return m.filter(ibis.or_(*[m[f"_f_{k}"] for k in flags]))

    cols = list(dict.fromkeys(c for f in flags.values() if isinstance(f, LineFlag) for c in f.columns))
    if all(isinstance(f, LineFlag) for f in flags.values()) and set(cols) <= set(lines.columns):
        if combinations is None or not set(cols) <= set(combinations.columns):
            combinations = lines.select(*cols).distinct()
        keys = list(combinations.columns)
        hits = passing(combinations).rename(**{f"_c_{c}": c for c in keys})
        m = lines.join(hits, [lines[c].identical_to(hits[f"_c_{c}"]) for c in keys])
    else:
        m = passing(lines)
    return m.group_by(_fl_claim=m.claim_id).aggregate(**{k: m[f"_f_{k}"].max() for k in flags})


def with_claim_flags(base: ir.Table, line_flags: ir.Table | None, flag_names: Sequence[str],
                     dx_flags: ir.Table | None, dx_names: Sequence[str]) -> ir.Table:
    """`base` (:func:`claim_base`) with the flags of :func:`claim_line_flags` and
    :func:`claim_dx_flags` (false for a claim they leave out)."""
    out = base
    if line_flags is not None and flag_names:
        out = out.left_join(line_flags, out.claim_id == line_flags._fl_claim)
        out = out.mutate(**{k: out[k].fill_null(False) for k in flag_names}).drop("_fl_claim")
    if dx_flags is not None and dx_names:
        out = out.left_join(dx_flags, out.claim_id == dx_flags._dx_claim)
        out = out.mutate(**{k: out[k].fill_null(False) for k in dx_names}).drop("_dx_claim")
    return out


def ed_visits(claims: ir.Table, qualifies: ir.BooleanValue | None = None) -> ir.Table:
    """ED visits: one per person and date among claims with an ED line (and `qualifies`).

    A claim with an ED line on an inpatient bill (the visit that led to the stay) is classified
    inpatient by the claims stage and is not an ED visit here. Columns: person_id, visit_date,
    member_id, payer, plan (of the evidence claim), claim_id (the evidence: the lowest claim id),
    principal_dx (of that claim), claims (how many qualifying claims made the visit).
    """
    c = claims.filter(claims.is_ed)
    if qualifies is not None:
        c = c.filter(qualifies.fill_null(False))
    w = ibis.window(group_by=[c.person_id, c.visit_date], order_by=[c.claim_id])
    c = c.mutate(_rn=ibis.row_number().over(w), claims=c.count().over(ibis.window(group_by=[c.person_id, c.visit_date])))
    first = c.filter(c._rn == 0)
    return first.select(
        "person_id", "visit_date", "member_id", "payer", "plan", "claim_id", "principal_dx",
        claims=first.claims.cast("int64"),
    )


def inpatient_stays(claims: ir.Table, facility_types: Sequence[str] = ACUTE_INPATIENT_FACILITY_TYPES,
                    flags: Sequence[str] = ()) -> ir.Table:
    """Inpatient stays: institutional claims of the given facility types, one per person and admission date.

    Interim bills of one stay share the admission date. The stay's discharge is the latest
    discharge (or claim end) of its claims; its disposition and principal diagnosis come from the
    claim with the latest discharge (then the highest claim id). Columns: person_id,
    admission_date, discharge_date, discharge_disposition_code, admit_type_code, principal_dx,
    claim_id (the lowest claim id of the stay), last_claim_id, member_id, payer, plan, and each of
    the boolean claim columns named in `flags` (true when any claim of the stay is).
    """
    c = claims.filter((claims.claim_type == "institutional") & claims.facility_type.isin(list(facility_types)))
    key = [c.person_id, c.admission_date]
    w = ibis.window(group_by=key, order_by=[ibis.desc(c.discharge_date), ibis.desc(c.claim_id)])
    c = c.mutate(
        _rn=ibis.row_number().over(w),
        _first_claim=c.claim_id.min().over(ibis.window(group_by=key)),
        _discharge=c.discharge_date.max().over(ibis.window(group_by=key)),
        **{f"_any_{f}": c[f].max().over(ibis.window(group_by=key)) for f in flags},
    )
    last = c.filter(c._rn == 0)
    return last.select(
        "person_id", "admission_date",
        discharge_date=last._discharge,
        discharge_disposition_code=last.discharge_disposition_code,
        admit_type_code=last.admit_type_code,
        principal_dx=last.principal_dx,
        claim_id=last._first_claim,
        last_claim_id=last.claim_id,
        member_id=last.member_id,
        payer=last.payer,
        plan=last.plan,
        **{f: last[f"_any_{f}"] for f in flags},
    )


def merge_transfers(stays: ir.Table, gap_days: int = 1, flags: Sequence[str] = ()) -> ir.Table:
    """Merge direct transfers: a stay admitted on or within `gap_days` days after the latest
    discharge so far of the same person continues the same episode.

    Grain (person_id, admission_date) of the episode's first stay. Columns: person_id,
    admission_date, discharge_date (latest of the episode), principal_dx,
    discharge_disposition_code and last_claim_id (of the stay discharged last), first_principal_dx
    (of the first stay), claim_id (of the first stay), stays (how many were merged), member_id,
    payer, plan (of the last stay), and the boolean stay columns named in `flags` (true when any
    stay of the episode is).
    """
    s = stays
    order = [s.admission_date, s.discharge_date, s.claim_id]
    cum = ibis.cumulative_window(group_by=[s.person_id], order_by=order)
    s = s.mutate(_cummax=s.discharge_date.max().over(cum))
    w = ibis.window(group_by=[s.person_id], order_by=[s.admission_date, s.discharge_date, s.claim_id])
    prev = s._cummax.lag(1).over(w)
    s = s.mutate(_new=ibis.ifelse(prev.isnull() | (s.admission_date > prev + ibis.interval(days=gap_days)), 1, 0))
    s = s.mutate(_episode=s._new.sum().over(ibis.cumulative_window(group_by=[s.person_id], order_by=[
        s.admission_date, s.discharge_date, s.claim_id])))
    key = [s.person_id, s._episode]
    wl = ibis.window(group_by=key, order_by=[ibis.desc(s.discharge_date), ibis.desc(s.admission_date), ibis.desc(s.claim_id)])
    wf = ibis.window(group_by=key, order_by=[s.admission_date, s.discharge_date, s.claim_id])
    s = s.mutate(
        _last=ibis.row_number().over(wl),
        _first=ibis.row_number().over(wf),
        _stays=s.count().over(ibis.window(group_by=key)),
        _adm=s.admission_date.min().over(ibis.window(group_by=key)),
        _dis=s.discharge_date.max().over(ibis.window(group_by=key)),
        **{f"_any_{f}": s[f].max().over(ibis.window(group_by=key)) for f in flags},
    )
    first = s.filter(s._first == 0).select(
        _fp=s.person_id, _fe=s._episode, first_principal_dx=s.principal_dx, _fc=s.claim_id
    )
    last = s.filter(s._last == 0)
    j = last.join(first, [last.person_id == first._fp, last._episode == first._fe])
    return j.select(
        "person_id",
        admission_date=j._adm,
        discharge_date=j._dis,
        principal_dx=j.principal_dx,
        discharge_disposition_code=j.discharge_disposition_code,
        last_claim_id=j.last_claim_id,
        first_principal_dx=j.first_principal_dx,
        claim_id=j._fc,
        stays=j._stays.cast("int64"),
        member_id=j.member_id,
        payer=j.payer,
        plan=j.plan,
        **{f: j[f"_any_{f}"] for f in flags},
    )


def visits(claims: ir.Table, qualifies: ir.BooleanValue) -> ir.Table:
    """Visits: one per person and date among claims where `qualifies`; evidence the lowest claim id.

    Columns: person_id, visit_date, claim_id, principal_dx."""
    c = claims.filter(qualifies.fill_null(False))
    w = ibis.window(group_by=[c.person_id, c.visit_date], order_by=[c.claim_id])
    c = c.mutate(_rn=ibis.row_number().over(w))
    return c.filter(c._rn == 0).select("person_id", "visit_date", "claim_id", "principal_dx")


def _first_between(events: ir.Table, other: ir.Table, date_col: str, other_date: str, lo: int, hi: int,
                   key: Sequence[str], prefix: str, carry: Sequence[str]) -> ir.Table:
    o = other.select(
        _o_person=other.person_id, _o_date=other[other_date], _o_claim=other.claim_id,
        **{f"_o_{c}": other[c] for c in carry},
    )
    e = events
    j = e.join(o, [
        e.person_id == o._o_person,
        o._o_date >= e[date_col] + ibis.interval(days=lo),
        o._o_date <= e[date_col] + ibis.interval(days=hi),
    ])
    w = ibis.window(group_by=[j[k] for k in key], order_by=[j._o_date, j._o_claim])
    j = j.mutate(_rn=ibis.row_number().over(w))
    hit = j.filter(j._rn == 0).select(
        *[j[k].name(f"_k_{k}") for k in key],
        **{f"{prefix}_date": j._o_date, f"{prefix}_claim_id": j._o_claim},
        **{f"{prefix}_{c}": j[f"_o_{c}"] for c in carry},
    )
    out = e.left_join(hit, [e[k] == hit[f"_k_{k}"] for k in key])
    return out.drop(*[f"_k_{k}" for k in key])


def first_visit_between(events: ir.Table, found: ir.Table, *, date_col: str, lo: int, hi: int,
                        key: Sequence[str], prefix: str = "followup", carry: Sequence[str] = ()) -> ir.Table:
    """`events` with the earliest visit of `found` (from :func:`visits`) dated `lo`..`hi` days
    after the event's `date_col` (both ends included), as ``<prefix>_date`` and
    ``<prefix>_claim_id`` (NULL when none). `key` names the event's unique key columns."""
    return _first_between(events, found, date_col, "visit_date", lo, hi, key, prefix, carry)


def first_stay_between(events: ir.Table, stays: ir.Table, *, date_col: str, lo: int, hi: int,
                       key: Sequence[str], prefix: str = "admission", carry: Sequence[str] = ()) -> ir.Table:
    """`events` with the earliest stay of `stays` admitted `lo`..`hi` days after `date_col`, as
    ``<prefix>_date`` and ``<prefix>_claim_id`` (NULL when none)."""
    return _first_between(events, stays, date_col, "admission_date", lo, hi, key, prefix, carry)


def first_per_window(events: ir.Table, *, date_col: str, days: int, span_days: int,
                     group: Sequence[str] = ("person_id",)) -> ir.Table:
    """Which events count when at most one counts per window of `days` days.

    Per `group` (the person, or the program and person), in date order: the first event counts;
    events dated less than `days` days after a counted event do not; the next event after that
    counts, and so on. `events` must have one row per group and date. Adds ``counted`` (bool) and
    ``counted_date`` (for an event that does not count, the date of the counted event whose
    window holds it; NULL for counted events).

    The chain is followed with pointer doubling: each event points to the first later event at
    least `days` days after it; counted events are those reachable from the first event of each
    run of events closer than `days` apart. `span_days` (the length of the period the events lie
    in) bounds the number of counted events per run, so enough doubling rounds are made for an
    exact answer without a loop over rows.
    """
    g = list(group)
    e = events
    w = ibis.window(group_by=[e[k] for k in g], order_by=[e[date_col]])
    prev = e[date_col].lag(1).over(w)
    e = e.mutate(_start=prev.isnull() | (e[date_col] >= prev + ibis.interval(days=days)))
    nodes = e.select(*g, _d=e[date_col])
    # pointer: the first event at least `days` after each event (same group)
    a = nodes
    b = nodes.select(*[nodes[k].name(f"_b_{k}") for k in g], _bd=nodes._d)
    pj = a.join(b, [*[a[k] == b[f"_b_{k}"] for k in g], b._bd >= a._d + ibis.interval(days=days)])
    nxt = pj.group_by([*g, "_d"]).aggregate(_n=pj._bd.min())
    starts = e.filter(e._start).select(*g, _d=e[date_col])
    reached = starts
    jump = nxt
    rounds = max(1, math.ceil(math.log2(span_days // days + 2)))
    for _ in range(rounds):
        r = reached.join(jump, [*[reached[k] == jump[k] for k in g], reached._d == jump._d])
        hop = r.select(*g, _d=r._n)
        reached = reached.union(hop, distinct=True)
        j2 = jump.select(*[jump[k].name(f"_j_{k}") for k in g], _jd=jump._d, _jn=jump._n)
        jj = jump.join(j2, [*[jump[k] == j2[f"_j_{k}"] for k in g], jump._n == j2._jd])
        jump = jj.select(*g, _d=jj._d, _n=jj._jn)
    kept = reached.select(*[reached[k].name(f"_r_{k}") for k in g], _rd=reached._d, _hit=ibis.literal(True))
    out = e.left_join(kept, [*[e[k] == kept[f"_r_{k}"] for k in g], e[date_col] == kept._rd])
    out = out.mutate(counted=out._hit.fill_null(False)).drop("_hit", "_rd", *[f"_r_{k}" for k in g])
    # for an event not counted: the latest counted event before it
    cw = ibis.cumulative_window(group_by=[out[k] for k in g], order_by=[out[date_col]])
    last_counted = ibis.ifelse(out.counted, out[date_col], ibis.null("date")).max().over(cw)
    out = out.mutate(counted_date=ibis.ifelse(out.counted, ibis.null("date"), last_counted))
    return out.drop("_start")


# ------------------------------------------------------------------------------------------------
# what the event measures share


def code_flag(ctx: "MeasureContext", names: Sequence[str]) -> Flag:
    """A line flag: the line's HCPCS/CPT, revenue or place-of-service code is in any of the value
    sets `names` (diagnosis entries of those sets are not looked at)."""
    def flag(t: ir.Table) -> ir.BooleanValue:
        tests: list[ir.BooleanValue] = []
        for name in names:
            systems = ctx.valuesets.systems(name)
            if systems & {"hcpcs", "cpt"}:
                tests.append(ctx.matcher(name, ("hcpcs", "cpt"))(t.hcpcs_code.fill_null("")))
            if "revenue" in systems:
                tests.append(ctx.matcher(name, ("revenue",))(t.revenue_center_code.fill_null("")))
            if "pos" in systems:
                tests.append(ctx.matcher(name, ("pos",))(t.place_of_service_code.fill_null("")))
        out = ibis.literal(False)
        for x in tests:
            out = out | x
        return out
    return LineFlag(flag, ("hcpcs_code", "revenue_center_code", "place_of_service_code"))


def visit_code_flag(ctx: "MeasureContext", names: Sequence[str]) -> Flag:
    """A line flag: a code of the value sets `names` (:func:`code_flag`) on a line that is not an
    ED or inpatient line (a follow-up visit is neither)."""
    codes = code_flag(ctx, names)
    return LineFlag(lambda t: codes(t) & t.service_category.notin(["ed", "inpatient"]),
                    (*codes.columns, "service_category"))


def dx_spec(ctx: "MeasureContext", **sets: tuple[str, bool]) -> DxSpec:
    """Claim diagnosis flags for :func:`claim_summary`: name -> (value set, principal only)."""
    return {k: (ctx.matcher(vs, ("icd10cm",)), principal) for k, (vs, principal) in sets.items()}


def cached(ctx: "MeasureContext", key: str, build: Callable[[], ir.Table]) -> ir.Table:
    """`build()` computed once per program context and kept in the backend (``Table.cache``).

    The event measures read the same claims many times (ED visits, stays, follow-up visits,
    their windows); as one SQL statement the claims' netting would be repeated in every branch,
    so the shared inputs are computed once and read back from a temporary table (the context's
    ``keep`` when the run gives one, else ``Table.cache``). The cache lives
    in ``ctx.extra`` under ``"_event_cache"``, so measures of one program share it (FUM 30 and 7
    days read one claim summary). A quality run's claim summaries are shared per payer instead
    (:func:`event_claims`)."""
    store = ctx.extra.setdefault("_event_cache", {})
    if key not in store:
        keep = getattr(ctx, "keep", None)
        t = build()
        store[key] = keep("event_" + re.sub(r"[^A-Za-z0-9_]", "_", key), t) if keep is not None else cache(t)
    return store[key]


def event_claims(ctx: "MeasureContext", key: str, flags: Mapping[str, Flag] | None = None,
                 **dx: tuple[str, bool]) -> ir.Table:
    """:func:`claim_summary` of the context's claims with line `flags` and diagnosis flags `dx`
    (name=(value set, principal only)). In a quality run (a context with `framework.Shared`) the
    payer's claim summary and the flags of `key` are stored once per payer and the result is their
    join, not stored; otherwise it is computed once per program under `key` (:func:`cached`). The
    claim lines and their long diagnosis table are cached too."""
    shared = getattr(ctx, "shared", None)
    if shared is not None:
        # The run shares one claim summary per payer; each key adds only its flags (small tables
        # of the claims that have them), joined to it where read: a read keeps only the claims it
        # filters for (ED visits, stays, follow-up visits), so the join costs less than storing a
        # copy of every claim per key.
        payer = ctx.program.payer
        lines = claim_lines(ctx)
        base = shared.payer_table(payer, "claims_base", lambda: claim_base(lines))
        line_flags = None
        if flags:
            combinations = None
            if all(isinstance(f, LineFlag) and set(f.columns) <= set(LINE_FLAG_COLUMNS) for f in flags.values()):
                # the payer's code combinations stored once, so that each key's flags test those
                combinations = shared.payer_table(payer, "line_code_combinations",
                                                  lambda: line_code_combinations(lines))
            line_flags = shared.payer_table(payer, f"claims_{key}_line_flags",
                                            lambda: claim_line_flags(lines, flags, combinations))
        dx_flags = (shared.payer_table(payer, f"claims_{key}_dx_flags",
                                       lambda: claim_dx_flags(diagnoses(ctx), dx_spec(ctx, **dx),
                                                              ctx.diagnosis_codes())) if dx else None)
        return with_claim_flags(base, line_flags, list(flags or {}), dx_flags, list(dx))

    def build() -> ir.Table:
        return claim_summary(claim_lines(ctx), flags, dx=dx_spec(ctx, **dx), diagnoses=diagnoses(ctx))

    return cached(ctx, f"claims:{key}", build)


def claim_lines(ctx: "MeasureContext") -> ir.Table:
    """``ctx.claims``, computed once per program (:func:`cached`; when the context has a ``keep``
    it reads the run's stored lines already, with any code column left out as NULLs)."""
    if getattr(ctx, "keep", None) is not None:
        return ctx.claims
    return cached(ctx, "claim_lines", lambda: ctx.claims)


def diagnoses(ctx: "MeasureContext") -> ir.Table:
    """The long diagnosis table of ``ctx.claims`` (``framework.diagnoses_long``), computed once
    per program (:func:`cached`)."""
    from allpayer.quality.framework import diagnoses_long

    if getattr(ctx, "keep", None) is not None:
        return ctx.diagnoses
    return cached(ctx, "diagnoses", lambda: diagnoses_long(claim_lines(ctx), as_loaded=ctx.valuesets.codes_as_loaded,
                                                           valuesets=ctx.valuesets))


def person_exclusions(ctx: "MeasureContext") -> ir.Table:
    """Members excluded from every event of the measurement year: ``hospice`` (a hospice claim,
    service category ``hospice`` or a code of the `hospice` value set, in the year) or ``died``
    (a death date in the year on the eligibility spans). One row per person: ``person_id,
    exclusion_reason, exclusion_source, exclusion_id, exclusion_date`` (hospice first)."""
    return cached(ctx, "person_exclusions", lambda: _person_exclusions(ctx))


def _person_exclusions(ctx: "MeasureContext") -> ir.Table:
    y0, y1 = ctx.period_start, ctx.period_end
    c = claim_lines(ctx)
    in_year = (c.service_date >= y0) & (c.service_date <= y1)
    hospice = c.service_category == "hospice"
    if "hospice" in ctx.valuesets:
        hospice = hospice | code_flag(ctx, ["hospice"])(c)
    h = c.filter(in_year & hospice).select(
        "person_id", _prio=ibis.literal(1), exclusion_reason=ibis.literal("hospice"),
        exclusion_source=ibis.literal("medical_claim"), exclusion_id=c.claim_id, exclusion_date=c.service_date,
    )
    parts = [h]
    e = ctx.eligibility
    if "death_date" in e.columns:
        d = e.filter((e.death_date >= y0) & (e.death_date <= y1)).select(
            "person_id", _prio=ibis.literal(2), exclusion_reason=ibis.literal("died"),
            exclusion_source=ibis.literal("eligibility"), exclusion_id=e.member_id, exclusion_date=e.death_date,
        )
        parts.append(d)
    u = ibis.union(*parts, distinct=False)
    w = ibis.window(group_by=u.person_id, order_by=[u._prio, u.exclusion_date, u.exclusion_id])
    u = u.mutate(_rn=ibis.row_number().over(w))
    return u.filter(u._rn == 0).drop("_rn", "_prio")


def with_person_exclusions(events: ir.Table, ctx: "MeasureContext") -> ir.Table:
    """`events` with the columns of :func:`person_exclusions` (NULL when the person has none)."""
    pe = person_exclusions(ctx).rename(_pe_person="person_id")
    j = events.left_join(pe, events.person_id == pe._pe_person)
    return j.drop("_pe_person")


def in_population(events: ir.Table, population: ir.Table, date_col: str, min_age: int | None,
                  max_age: int | None = None, *, ctx: "MeasureContext | None" = None) -> ir.Table:
    """Events of members of `population`, aged `min_age`..`max_age` on the event date; adds
    ``age`` (on the event date). With `ctx`, the population's people are cached (the event
    measures all receive the program's attributed members)."""
    from allpayer.quality.framework import age_on

    pop = population.select(_pp=population.person_id, _birth=population.birth_date).distinct()
    if ctx is not None:
        pop = cached(ctx, "population", lambda: pop)
    j = events.join(pop, events.person_id == pop._pp)
    j = j.mutate(age=age_on(j._birth, j[date_col])).drop("_pp", "_birth")
    if min_age is not None:
        j = j.filter(j.age >= min_age)
    if max_age is not None:
        j = j.filter(j.age <= max_age)
    return j


def enrolled_around(events: ir.Table, ctx: "MeasureContext", rule: "Enrollment", *, date_col: str,
                    before_days: int, after_days: int, key: Sequence[str] = ("person_id", "event_id")) -> ir.Table:
    """`events` with ``enrolled``: the program payer's enrollment spans cover `before_days` before
    to `after_days` after the event under `rule` (``framework.continuously_enrolled``); also
    ``enrollment_start`` and ``enrollment_end``, the window checked."""
    from allpayer.quality.framework import continuously_enrolled

    t = events.mutate(
        enrollment_start=(events[date_col] - ibis.interval(days=before_days)).cast("date"),
        enrollment_end=(events[date_col] + ibis.interval(days=after_days)).cast("date"),
    )
    elig = cached(ctx, "eligibility", lambda: ctx.eligibility.select("person_id", "enrollment_start_date",
                                                                     "enrollment_end_date"))
    return continuously_enrolled(t, elig, "enrollment_start", "enrollment_end", rule, key=list(key))


def enrollment_window_text(t: ir.Table) -> ir.StringValue:
    """The window :func:`enrolled_around` checked, as shown in the evidence of a row that is not
    continuously enrolled: ``<enrollment_start>..<enrollment_end>`` as dates (``2023-04-11..2024-04-17``).
    On DuckDB a date minus an interval is a timestamp, and Ibis drops a cast to date of a value it
    already types as a date, so the bounds go through a timestamp to a date explicitly; otherwise the
    text would show a time of day, or not, depending on whether the measure stored its events first."""

    def day(d: ir.DateValue) -> ir.StringValue:
        return d.cast("timestamp").cast("date").cast("string")

    return day(t.enrollment_start).concat("..", day(t.enrollment_end))


def days_after(later: ir.DateValue, earlier: ir.DateValue) -> ir.IntegerValue:
    return later.delta(earlier, unit="day").cast("int64")


class Outcome:
    """One branch of :func:`decide`: when `when` holds (and no earlier branch did), the row gets
    these denominator/exclusion flags, reason and evidence."""

    def __init__(self, when: ir.BooleanValue, *, in_denominator: bool, excluded: bool, reason: str | None,
                 source: ir.Value | str | None, evidence_id: ir.Value | None, evidence_date: ir.Value | None,
                 value: ir.Value | str | None):
        self.when = when.fill_null(False)
        self.in_denominator = in_denominator
        self.excluded = excluded
        self.reason = reason
        self.source = _lit(source, "string")
        self.evidence_id = _lit(evidence_id, "string")
        self.evidence_date = _lit(evidence_date, "date")
        self.value = _lit(value, "string")


def _lit(v, typ: str) -> ir.Value:
    if v is None:
        return ibis.null(typ)
    if isinstance(v, ir.Value):
        return v.cast(typ)
    return ibis.literal(v, typ)


def decide(t: ir.Table, outcomes: Sequence[Outcome], *, numerator: ir.BooleanValue, hit: Outcome,
           miss: Outcome, date_col: str) -> ir.Table:
    """The result rows (``framework.RESULT_COLUMNS``) of events `t` (with ``person_id`` and
    ``event_id``): the first outcome that holds decides the denominator, exclusion and evidence;
    a row no outcome claims is in the denominator, in the numerator when `numerator`, with the
    evidence of `hit` or `miss`."""
    def pick(attr: str, default_hit: ir.Value, default_miss: ir.Value) -> ir.Value:
        cases = [(o.when, getattr(o, attr)) for o in outcomes]
        cases.append((numerator.fill_null(False), default_hit))
        return ibis.cases(*cases, else_=default_miss)

    any_out = ibis.literal(False)
    for o in outcomes:
        any_out = any_out | o.when
    in_den = ibis.cases(*[(o.when, ibis.literal(o.in_denominator)) for o in outcomes], else_=ibis.literal(True))
    excl = ibis.cases(*[(o.when, ibis.literal(o.excluded)) for o in outcomes], else_=ibis.literal(False))
    reason = ibis.cases(*[(o.when, _lit(o.reason, "string")) for o in outcomes], else_=ibis.null("string"))
    return t.select(
        "person_id",
        "event_id",
        event_date=t[date_col],
        in_denominator=in_den,
        excluded=excl,
        exclusion_reason=reason,
        in_numerator=~any_out & numerator.fill_null(False),
        evidence_source=pick("source", hit.source, miss.source),
        evidence_id=pick("evidence_id", hit.evidence_id, miss.evidence_id),
        evidence_date=pick("evidence_date", hit.evidence_date, miss.evidence_date),
        evidence_value=pick("value", hit.value, miss.value),
    )


def ed_follow_up(
    ctx: "MeasureContext",
    population: ir.Table,
    claims: ir.Table,
    *,
    qualifies: ClaimTest,
    follow_up: ClaimTest,
    days: int,
    last_day: tuple[int, int],
    min_age: int,
    admission_days: int,
    dedup_days: int,
    enrollment: "Enrollment",
    enrollment_before_days: int = 0,
    enrollment_after_days: int | None = None,
    restrict: Callable[[ir.Table], ir.Table] | None = None,
    name: str,
) -> ir.Table:
    """Follow-up after an ED visit (FUM, FUA, NQF 2605, FMC), one result row per ED visit.

    `claims` is the :func:`claim_summary` (:func:`event_claims`) carrying the flags that
    `qualifies` and `follow_up` (functions of that table, one boolean per claim) read.

    1. ED visits (:func:`ed_visits`) of attributed members whose claims `qualifies` (e.g. a
       principal diagnosis of mental illness), dated 1 January to `last_day` (month, day)
       of the measurement year, of members at least `min_age` on the visit date; `restrict` may
       narrow them further (FMC: two or more chronic conditions).
    2. Not in the denominator: not continuously enrolled (`enrollment`) from
       `enrollment_before_days` before the visit to `enrollment_after_days` (default `days`)
       after it.
    3. Excluded: hospice or death in the year; an acute or nonacute inpatient admission on the
       visit date or within `admission_days` days after it.
    4. De-duplication (after the exclusions): of the remaining visits, one per `dedup_days`-day
       window counts (:func:`first_per_window`); the others leave the denominator with reason
       ``within_<n>_days_of_counted_visit``.
    5. Numerator: a follow-up visit (a claim that passes `follow_up`; see
       :func:`visit_code_flag`) on the visit date or within `days` days after it.

    The visits with their enrollment and exclusions, and the de-duplication, are stored
    (`MeasureContext.store`, under `name`, unique within the program): the de-duplication's
    pointer-doubling joins read the visits many times, and as one statement each read would
    repeat the whole pipeline up to there.
    """
    y0 = ctx.period_start
    y_last = dt.date(ctx.year, *last_day)
    claims = claims.mutate(_q=qualifies(claims).fill_null(False), _fu=follow_up(claims).fill_null(False))
    ed = ed_visits(claims, claims._q)
    ed = ed.filter((ed.visit_date >= y0) & (ed.visit_date <= y_last))
    ed = in_population(ed, population, "visit_date", min_age, ctx=ctx)
    if restrict is not None:
        ed = restrict(ed)
    ed = ed.mutate(event_id=ed.visit_date.cast("string").concat(":", ed.claim_id))
    stays = inpatient_stays(claims, ACUTE_INPATIENT_FACILITY_TYPES + NONACUTE_INPATIENT_FACILITY_TYPES)
    ed = first_stay_between(ed, stays, date_col="visit_date", lo=0, hi=admission_days, key=["event_id"], prefix="adm")
    ed = enrolled_around(ed, ctx, enrollment, date_col="visit_date", before_days=enrollment_before_days,
                         after_days=days if enrollment_after_days is None else enrollment_after_days)
    ed = with_person_exclusions(ed, ctx)
    ed = ed.mutate(_eligible=ed.enrolled & ed.exclusion_reason.isnull() & ed.adm_date.isnull(),
                   _window=enrollment_window_text(ed))
    ed = ctx.store(f"{name}_visits", ed)
    elig = ed.filter(ed._eligible).select("person_id", "visit_date")
    span = (y_last - y0).days + 1
    counted = ctx.store(f"{name}_counted", first_per_window(elig, date_col="visit_date", days=dedup_days,
                                                           span_days=span))
    counted = counted.rename(_c_person="person_id", _c_date="visit_date")
    ed = ed.left_join(counted, [ed.person_id == counted._c_person, ed.visit_date == counted._c_date])
    ed = ed.drop("_c_person", "_c_date")
    fu = visits(claims, claims._fu)
    ed = first_visit_between(ed, fu, date_col="visit_date", lo=0, hi=days, key=["event_id"], prefix="fu")
    claim = ibis.literal("medical_claim")
    outcomes = [
        Outcome(~ed.enrolled, in_denominator=False, excluded=False, reason="not_continuously_enrolled",
                source="eligibility", evidence_id=None, evidence_date=None,
                value=ed._window),
        Outcome(ed.exclusion_reason.notnull(), in_denominator=True, excluded=True, reason=ed.exclusion_reason,
                source=ed.exclusion_source, evidence_id=ed.exclusion_id, evidence_date=ed.exclusion_date,
                value=ed.exclusion_reason),
        Outcome(ed.adm_date.notnull(), in_denominator=True, excluded=True,
                reason=f"admitted_within_{admission_days}_days", source=claim, evidence_id=ed.adm_claim_id,
                evidence_date=ed.adm_date,
                value=ibis.literal("admitted on day ").concat(days_after(ed.adm_date, ed.visit_date).cast("string"))),
        Outcome(~ed.counted.fill_null(False), in_denominator=False, excluded=False,
                reason=f"within_{dedup_days}_days_of_counted_visit", source=claim, evidence_id=ed.claim_id,
                evidence_date=ed.counted_date,
                value=ibis.literal("counted ED visit on ").concat(ed.counted_date.cast("string"))),
    ]
    hit = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                  evidence_id=ed.fu_claim_id, evidence_date=ed.fu_date,
                  value=ibis.literal("follow-up on day ").concat(days_after(ed.fu_date, ed.visit_date).cast("string")))
    miss = Outcome(ibis.literal(True), in_denominator=True, excluded=False, reason=None, source=claim,
                   evidence_id=ed.claim_id, evidence_date=ed.visit_date,
                   value=ibis.literal(f"no follow-up within {days} days"))
    return decide(ed, outcomes, numerator=ed.fu_date.notnull(), hit=hit, miss=miss, date_col="visit_date")
