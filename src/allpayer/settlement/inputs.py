"""The aggregates a settlement reads from the engine's tables (Ibis; DuckDB or Spark).

Everything here is an Ibis expression over the published tables, aggregated to one row per
program (or per HSA, hospital or employer) before it is read; only those few rows reach Python.

**One population on both sides.** A settlement compares actual and target over the same
population: the program's *attributed member months* of the performance year (rows of
``attribution`` that are both ``attributed`` and ``eligible``). The core's ``targets`` and
``tcoc_member_month`` cover every eligible member month of the program, so the settlement does
not read their totals: it joins ``tcoc_member_month`` to the attributed months and prices each
attributed month at its rate cell's ``target_pmpm``. Target, FFS actual, truncation, member
months, members, PMPMs, employer and participant bases all come from that one join
(:func:`settlement_months`); the fixed-payment TCOC of the payments stage is built on the same
attributed months (``payments.shadow.fixed_payment_tcoc``).

Tables read (the year's rows only):

- ``attribution`` (program_id, member_id, month): attributed and eligible months with their HSA;
- ``tcoc_member_month`` (program_id, member_id, month): ``ffs_paid_cents`` (the FFS basis with
  shadow claims priced) of those months;
- ``targets`` (program_id, cell_id, month): ``target_pmpm`` of each rate cell and month; the
  target of a cell is its PMPM summed over the cell's attributed months, rounded to cents once
  per cell with ``settlement.rounding`` (as the core rounds a cell's year-to-date target);
- per-member truncation (``target.truncation``) is applied to the attributed months' costs here
  (``allpayer.core.tcoc.truncation``), not read from ``tcoc_truncation`` (which covers every
  eligible month);
- ``provider_roster``: the hospitals of each HSA (``practice_type = 'hospital'``);
- ``employer_group``: the employer of each group;
- optional: ``quality_program_scores`` (quality_score, gate_met), ``tcoc_fixed_payment``
  (actual_tcoc_cents and its parts: FPP paid, CPR paid, FFS outside their scopes, other shadow
  claims), ``fixed_payment_performance`` (performance_cents and fpp_paid_cents of
  hospital 'ALL' and of each hospital), ``fpp_payments`` (withhold_cents: the FPP withhold the
  quality modifier returns).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import ibis

from allpayer.core.programs import employer_of_group_months
from allpayer.core.targets import assign_cells
from allpayer.money import ROUNDING_MODES, largest_remainder
from allpayer.settlement.engine import FIXED_PAYMENT_PARTS, SettlementError, SettlementInputs

FIXED_TCOC_COLUMNS = ("tcoc_cents", "actual_tcoc_cents", "atcoc_cents", "fixed_payment_tcoc_cents")


def _rows(con, expr) -> list[dict]:
    return con.to_pyarrow(expr).to_pylist()


def _has(con, table: str) -> bool:
    return table in con.list_tables()


def _year_filter(t, year: int):
    for col in ("performance_year", "year"):
        if col in t.columns:
            return t.filter(t[col] == year)
    return t


def _program_months(con, program, year: int):
    if not _has(con, "tcoc_member_month"):
        raise SettlementError(f"{program.program_id}: no tcoc_member_month table: run the year first")
    mm = con.table("tcoc_member_month")
    return mm.filter((mm.program_id == program.program_id) & (mm.performance_year == year))


def _attributed_keys(con, program, year: int):
    """(member_id, month) of the program's attributed and eligible months in `year`."""
    if not _has(con, "attribution"):
        raise SettlementError(f"{program.program_id}: no attribution table: a settlement covers the attributed "
                              "member months, so the attribution stage must have run")
    att = con.table("attribution")
    att = att.filter((att.program_id == program.program_id) & (att.performance_year == year)
                     & att.attributed & att.eligible)
    return att.select("member_id", "month").distinct()


def settlement_months(con, program, year: int):
    """The program's attributed member months of `year`: the ``tcoc_member_month`` rows (cost by
    month, FFS basis) of the months that ``attribution`` marks attributed and eligible, with the
    rate cell (``cell_id``) and the cell's ``target_pmpm`` for that month (NULL when the targets
    have none). Grain (program_id, member_id, month)."""
    a = _attributed_keys(con, program, year)
    t = _member_month_targets(con, program, year)
    return t.semi_join(a, [t.member_id == a.member_id, t.month == a.month])


@dataclass(frozen=True)
class Population:
    """The settlement population of one program and year, and what lies outside it."""

    attributed_member_months: int
    members: int
    eligible_member_months: int
    target_cents: int
    months_without_target: int
    actual_ffs_cents: int
    cells: tuple[dict, ...]
    truncated_amount_cents: int | None = None
    """The amount above the truncation threshold (`attributed_truncation`), when asked for and the
    program truncates; else None."""

    @property
    def not_attributed_member_months(self) -> int:
        return self.eligible_member_months - self.attributed_member_months


def cell_target_cents(pmpm_sum: Decimal, mode: str = "half_up") -> int:
    """A cell's target in cents: its PMPM summed over its attributed months (dollars), rounded once.

    >>> cell_target_cents(Decimal("1200.005"))
    120001
    >>> cell_target_cents(Decimal("1200.005"), "half_even")
    120000
    """
    return int((Decimal(pmpm_sum) * 100).quantize(Decimal(1), rounding=ROUNDING_MODES[mode]))


def population(con, program, year: int, *, truncation: bool = False) -> Population:
    """Attributed member months, members, target and FFS actual of `program` in `year`, per rate
    cell and in total (see the module docstring), and the program's eligible member months; with
    `truncation`, also the amount above the truncation threshold of those months (the number
    `attributed_truncation` gives), in the same query."""
    months = settlement_months(con, program, year)
    g = months.group_by("cell_id").aggregate(
        mm=months.count(), pmpm_sum=months.target_pmpm.sum(),
        without=months.target_pmpm.isnull().cast("int64").sum(), actual=months.ffs_paid_cents.sum(),
    )
    # The members, the eligible months and the truncated amount come as one more row of the same
    # query (``_total``), so the attributed months (a join of the member months to the attribution)
    # are worked out once for every aggregate, not once per query.
    pm = _program_months(con, program, year)
    totals = months.aggregate(_members=months.member_id.nunique()).cross_join(pm.aggregate(_eligible=pm.count()))
    summary = _truncation_summary(months, program) if truncation else None
    if summary is not None:
        totals = totals.cross_join(summary.aggregate(_truncated=summary.truncated_amount_cents.sum()))
    else:
        totals = totals.mutate(_truncated=ibis.null("int64"))
    types = g.schema()
    g = g.mutate(_total=ibis.literal(False), _members=ibis.null("int64"), _eligible=ibis.null("int64"),
                 _truncated=ibis.null("int64"))
    totals = totals.select(*[ibis.null(types[c]).name(c) for c in types.names], _total=ibis.literal(True),
                           _members=totals._members.cast("int64"), _eligible=totals._eligible.cast("int64"),
                           _truncated=totals._truncated.cast("int64"))
    rows = _rows(con, ibis.union(g, totals).order_by(["_total", "cell_id"]))
    mode = program.settlement.rounding
    cells = []
    members = eligible = truncated = None
    for r in rows:
        if r["_total"]:
            members, eligible = r["_members"], r["_eligible"]
            truncated = int(r["_truncated"] or 0) if summary is not None else None
            continue
        pmpm_sum = Decimal(str(r["pmpm_sum"])) if r["pmpm_sum"] is not None else Decimal(0)
        cells.append({"cell_id": r["cell_id"], "member_months": int(r["mm"]), "months_without_target": int(r["without"]),
                      "target_cents": cell_target_cents(pmpm_sum, mode), "actual_ffs_cents": int(r["actual"] or 0)})
    return Population(
        attributed_member_months=sum(c["member_months"] for c in cells), members=int(members or 0),
        eligible_member_months=int(eligible or 0), target_cents=sum(c["target_cents"] for c in cells),
        months_without_target=sum(c["months_without_target"] for c in cells),
        actual_ffs_cents=sum(c["actual_ffs_cents"] for c in cells), cells=tuple(cells),
        truncated_amount_cents=truncated,
    )


def _truncation_months(months):
    """`settlement_months` rows as `allpayer.core.tcoc.member_year_cost` reads them."""
    months = months.drop("cell_id", "target_pmpm")
    if "year" not in months.columns:
        months = months.mutate(year=months.month.year().cast("int32"))
    if "person_id" not in months.columns:
        months = months.mutate(person_id=months.member_id)
    return months


def _truncation(months, program):
    """`allpayer.core.tcoc.truncation` over `months` (`settlement_months` rows), or None when the
    program has no truncation."""
    from allpayer.core import tcoc

    settings = tcoc.truncation_settings(program)
    if not settings:
        return None
    return tcoc.truncation(tcoc.member_year_cost(_truncation_months(months)), **settings)


def _truncation_summary(months, program):
    """`allpayer.core.tcoc.truncation`'s summary over `months` (`settlement_months` rows), or None
    when the program has no truncation."""
    tr = _truncation(months, program)
    return None if tr is None else tr.summary


def attributed_truncation(con, program, year: int, *, by_group: bool = False):
    """The amount above the per-member truncation threshold, over the attributed months only
    (``allpayer.core.tcoc.truncation`` on those months' costs); None when the program has no
    truncation. With `by_group`, a dict by truncation group (Medicare enrollment type)."""
    summary = _truncation_summary(settlement_months(con, program, year), program)
    if summary is None:
        return None
    if by_group:
        g = summary.group_by("truncation_group").aggregate(v=summary.truncated_amount_cents.sum())
        return {r["truncation_group"]: int(r["v"] or 0) for r in _rows(con, g)}
    r = _rows(con, summary.aggregate(v=summary.truncated_amount_cents.sum()))[0]
    return int(r["v"] or 0)


def program_inputs(con, program, year: int, *, actual_override: int | None = None,
                   participant_revenue_cents: int | None = None, paid_through=None) -> tuple[SettlementInputs, list[str]]:
    """The settlement inputs of one program and year, and notes on what was not available.

    Every amount covers the program's attributed member months (:func:`population`)."""
    pid = program.program_id
    notes: list[str] = []
    pop = population(con, program, year, truncation=True)
    if pop.not_attributed_member_months:
        notes.append(f"{pop.not_attributed_member_months:,} eligible member months not attributed: outside the "
                     "settlement on both sides")
    if pop.months_without_target:
        notes.append(f"{pop.months_without_target:,} attributed member months have no target PMPM (no rate cell or "
                     "no target for their cell and month): they add cost but no target")
    truncated = pop.truncated_amount_cents  # attributed_truncation's number, from the population's query
    quality_score = gate = None
    unmeasured = "quality not yet measured (no quality_program_scores row): assumed full credit"
    if _has(con, "quality_program_scores"):
        qs = con.table("quality_program_scores")
        qs = qs.filter((qs.program_id == pid) & (qs.performance_year == year))
        cols = [c for c in ("quality_score", "gate_met", "measured") if c in qs.columns]
        r = _rows(con, qs.select(*cols).limit(1))
        if r and r[0].get("quality_score") is not None and r[0].get("measured", True) is not False:
            quality_score = Decimal(str(r[0]["quality_score"]))
            gate = r[0].get("gate_met")
        # a row without a score (not measured) is treated like no row: full credit, said on the line
        elif r:
            unmeasured = ("quality not yet measured (the quality stage scored none of the program's measures; see "
                          "quality_scores' notes): assumed full credit")
    if quality_score is None:
        notes.append(unmeasured)
    fixed_actual = None
    fixed_note = None
    fixed_parts: tuple[tuple[str, int], ...] = ()
    if _has(con, "tcoc_fixed_payment"):
        tf = _year_filter(con.table("tcoc_fixed_payment"), year)
        col = next((c for c in FIXED_TCOC_COLUMNS if c in tf.columns), None)
        if col is not None:
            tf = tf.filter(tf.program_id == pid)
            aggs = {"n": tf.count(), "v": tf[col].sum()}
            if "member_months" in tf.columns:
                aggs["mm"] = tf.member_months.sum()
            part_columns = [c for c in FIXED_PAYMENT_PARTS if c in tf.columns]
            aggs.update({c: tf[c].sum() for c in part_columns})
            r = _rows(con, tf.aggregate(**aggs))[0]
            fixed_actual = int(r["v"]) if r["n"] else None
            if fixed_actual is not None:
                fixed_parts = tuple((c, int(r[c] or 0)) for c in part_columns)
            if fixed_actual is not None and r.get("mm") is not None:
                if int(r["mm"]) != pop.attributed_member_months:
                    raise SettlementError(
                        f"{pid}: the fixed-payment TCOC covers {int(r['mm']):,} member months but the program has "
                        f"{pop.attributed_member_months:,} attributed member months in {year}: re-run the payments "
                        "for the year after the core run")
                fixed_note = f"over the same {pop.attributed_member_months:,} attributed member months"
    withheld = None
    if _has(con, "fpp_payments"):
        fw = con.table("fpp_payments")
        if "withhold_cents" in fw.columns:
            fw = fw.filter((fw.program_id == pid) & (fw.month.year() == year))
            r = _rows(con, fw.aggregate(n=fw.count(), v=fw.withhold_cents.sum()))[0]
            withheld = int(r["v"]) if r["n"] else None
    fpp_perf = fpp_paid = None
    if _has(con, "fixed_payment_performance"):
        fp = _year_filter(con.table("fixed_payment_performance"), year)
        fp = fp.filter((fp.program_id == pid) & (fp.hospital_id == "ALL"))
        r = _rows(con, fp.aggregate(n=fp.count(), perf=fp.performance_cents.sum(), paid=fp.fpp_paid_cents.sum()))[0]
        if r["n"]:
            fpp_perf, fpp_paid = int(r["perf"]), int(r["paid"])
    revenue, revenue_note = participant_revenue(con, program, year, supplied_cents=participant_revenue_cents,
                                                paid_through=paid_through)
    if revenue is None and revenue_note:
        notes.append(f"participant revenue {revenue_note}")
    inputs = SettlementInputs(
        target_cents=pop.target_cents,
        actual_cents=pop.actual_ffs_cents if actual_override is None else int(actual_override),
        member_months=pop.attributed_member_months,
        members=pop.members,
        truncated_amount_cents=truncated,
        fixed_payment_actual_cents=fixed_actual,
        fpp_paid_cents=fpp_paid,
        fixed_payment_performance_cents=fpp_perf,
        quality_score=quality_score,
        quality_gate_met=gate,
        participant_revenue_cents=revenue,
        participant_revenue_note=revenue_note,
        withheld_cents=withheld,
        eligible_member_months=pop.eligible_member_months,
        months_without_target=pop.months_without_target,
        fixed_payment_note=fixed_note,
        fixed_payment_parts=fixed_parts,
    )
    return inputs, notes


def _uses_revenue(program) -> bool:
    caps = program.settlement.caps
    return caps is not None and any(lim.of == "revenue" for lim in (*caps.savings, *caps.losses))


REVENUE_DEFINITION = (
    "Parts A and B fee-for-service paid (medical claim lines, netted, paid_amount, payment_arrangement ffs, claims "
    "paid through the core run's date) by the program's payer for services in the performance year, billed "
    "through the TIN of a roster participant (participation participant for that payer, in effect on the "
    "service date) or, for institutional claims, under a participant's CCN; every beneficiary counts, not only "
    "the attributed ones (MSSP 'ACO participant revenue', 42 CFR 425.20, the base of the BASIC track loss "
    "sharing limit, 42 CFR 425.605(d))"
)


def participant_revenue_expr(con, program, year: int, paid_through=None):
    """One row: ``revenue_cents`` and ``claim_lines``, the participants' FFS revenue of the year
    (:data:`REVENUE_DEFINITION`). Lines matching both a TIN and a CCN count once."""
    from allpayer.core.claims import medical_claim_lines, served_between

    ml = served_between(medical_claim_lines(con.table("medical_claim"), paid_through), dt.date(year, 1, 1),
                        dt.date(year, 12, 31))
    ml = ml.filter((ml.payer == program.payer) & (ml.payment_arrangement == "ffs"))
    ml = ml.select("claim_id", "claim_line_number", "claim_type", "service_date", "billing_tin", "facility_ccn",
                   "paid_cents")
    ro = con.table("provider_roster")
    ro = ro.filter((ro.payer == program.payer) & (ro.participation == "participant"))
    ro = ro.mutate(_end=ro.effective_end_date.fill_null(ibis.date(9999, 12, 31)))
    tins = ro.filter(ro.tin.notnull()).select(_tin="tin", _start="effective_start_date", _end="_end").distinct()
    ccns = ro.filter(ro.ccn.notnull()).select(_ccn="ccn", _start="effective_start_date", _end="_end").distinct()
    by_tin = [ml.billing_tin == tins._tin, ml.service_date >= tins._start, ml.service_date <= tins._end]
    by_ccn = [ml.facility_ccn == ccns._ccn, ml.service_date >= ccns._start, ml.service_date <= ccns._end,
              ml.claim_type == "institutional"]
    tin_lines = ml.semi_join(tins, by_tin)
    ccn_lines = ml.anti_join(tins, by_tin).semi_join(ccns, by_ccn)
    both = tin_lines.union(ccn_lines, distinct=False)
    return both.aggregate(revenue_cents=both.paid_cents.sum(), claim_lines=both.count())


def participant_revenue(con, program, year: int, *, supplied_cents: int | None = None,
                        paid_through=None, needed: bool = False) -> tuple[int | None, str]:
    """The participants' revenue for the revenue caps, and where it came from: a figure supplied
    for the run (`supplied_cents`, e.g. ``allpayer settle --participant-revenue``), else the terms'
    ``settlement.participant_revenue``, else computed from the loaded claims
    (:func:`participant_revenue_expr`) when a cap of the program is ``of: revenue`` (or `needed`)."""
    from allpayer.money import dollars_to_cents

    if supplied_cents is not None:
        return int(supplied_cents), "supplied for this run (--participant-revenue)"
    term = program.settlement.participant_revenue
    if term is not None:
        return dollars_to_cents(term.value), "from the terms (settlement.participant_revenue)"
    if not (needed or _uses_revenue(program)):
        return None, ""
    missing = [t for t in ("medical_claim", "provider_roster") if not _has(con, t)]
    if missing:
        return None, f"not computed: no {' or '.join(missing)} table"
    r = _rows(con, participant_revenue_expr(con, program, year, paid_through))[0]
    lines = int(r["claim_lines"] or 0)
    note = f"computed from {lines:,} claim lines: {REVENUE_DEFINITION}"
    if paid_through is not None:
        note += f"; claims paid through {paid_through}"
    return int(r["revenue_cents"] or 0), note


def _member_month_targets(con, program, year: int):
    """Program member months with their cell's target PMPM (exact decimal)."""
    pid = program.program_id
    mm = _program_months(con, program, year)
    mm = assign_cells(mm, program)
    tg = con.table("targets")
    tg = tg.filter((tg.program_id == pid) & (tg.performance_year == year))
    tg = tg.select(_t_cell="cell_id", _t_month="month", target_pmpm="target_pmpm")
    return mm.left_join(tg, [mm.cell_id == tg._t_cell, mm.month == tg._t_month]).drop("_t_cell", "_t_month")


@dataclass(frozen=True)
class ParticipantBase:
    """A risk-bearing participant's weight and limit base for one program."""

    participant_id: str
    hsa: str
    attributed_member_months: int
    weight: Decimal
    target_cents: int
    actual_cents: int
    limit_base_cents: int
    fixed_payment_performance_cents: int | None


def participant_bases(con, program, year: int) -> list[ParticipantBase]:
    """Per risk-bearing participant: attributed member months x target PMPM (the weight of
    ``attributed_mm_x_target_pmpm``), its HSA's target and actual TCOC, and the FFS cost of its
    attributed lives (the limit base for ``limit_base: ffs_revenue``).

    Participants are HSAs (``risk_bearers: hsas``, id ``hsa-<hsa>``) or the participating hospitals
    of each HSA (``hospitals`` and ``participants``; id = the hospital's ``organization_id`` in the
    roster, as the payments stage names hospitals; a hospital counts where the roster lists it as a
    participant for the program's payer in effect during the year; an HSA with two hospitals
    splits its amounts evenly between them by largest remainder)."""
    pid = program.program_id
    t = _member_month_targets(con, program, year)
    att = con.table("attribution")
    att = att.filter((att.program_id == pid) & (att.performance_year == year) & att.attributed & att.eligible)
    att = att.select(_a_member="member_id", _a_month="month", hsa="hsa").distinct()
    j = t.join(att, [t.member_id == att._a_member, t.month == att._a_month])
    g = j.group_by("hsa").aggregate(
        mm=j.count(),
        weight=j.target_pmpm.sum(),
        actual=j.ffs_paid_cents.sum(),
    )
    rows = [r for r in _rows(con, g.order_by("hsa")) if r["hsa"] is not None]
    fpp_by_hospital: dict[str, int] = {}
    if _has(con, "fixed_payment_performance"):
        fp = _year_filter(con.table("fixed_payment_performance"), year)
        fp = fp.filter((fp.program_id == pid) & (fp.hospital_id != "ALL"))
        for r in _rows(con, fp.group_by("hospital_id").aggregate(v=fp.performance_cents.sum())):
            fpp_by_hospital[r["hospital_id"]] = int(r["v"])
    hospitals: dict[str, list[str]] = {}
    if program.settlement.distribution is not None and program.settlement.distribution.risk_bearers != "hsas":
        ro = con.table("provider_roster")
        # participation is per payer and effective period (the roster's grain): the program's payer,
        # in effect during the performance year
        ro = ro.filter((ro.practice_type == "hospital") & (ro.participation == "participant")
                       & (ro.payer == program.payer) & (ro.effective_start_date <= ibis.date(year, 12, 31))
                       & (ro.effective_end_date.fill_null(ibis.date(9999, 12, 31)) >= ibis.date(year, 1, 1)))
        ro = ro.mutate(hospital_id=ro.organization_id.fill_null(ro.practice_id))
        for r in _rows(con, ro.select("hsa", "hospital_id").distinct().order_by(["hsa", "hospital_id"])):
            hospitals.setdefault(r["hsa"], []).append(r["hospital_id"])
    out: list[ParticipantBase] = []
    for r in rows:
        weight = Decimal(str(r["weight"] or 0))
        # target of the HSA's attributed months = sum of their cells' PMPMs, in cents (half up)
        target = int((weight * 100).quantize(Decimal(1), rounding="ROUND_HALF_UP"))
        actual = int(r["actual"] or 0)
        ids = hospitals.get(r["hsa"]) if hospitals else None
        if not ids:
            ids = [f"hsa-{r['hsa']}"]
        n = len(ids)
        mm_parts = largest_remainder(int(r["mm"]), [1] * n)
        target_parts = largest_remainder(target, [1] * n)
        actual_parts = largest_remainder(actual, [1] * n)
        for i, pid_ in enumerate(ids):
            out.append(ParticipantBase(
                participant_id=pid_, hsa=r["hsa"], attributed_member_months=mm_parts[i],
                weight=weight / n, target_cents=target_parts[i], actual_cents=actual_parts[i],
                limit_base_cents=actual_parts[i], fixed_payment_performance_cents=fpp_by_hospital.get(pid_),
            ))
    return out


@dataclass(frozen=True)
class EmployerBase:
    """One employer's part of a program's settlement population (``employer_id`` None: the
    attributed months of members with no employer group on the month).

    ``target_cents``: its part of the program target (each cell's target split over employers by
    largest remainder); ``actual_cents``: the FFS-basis TCOC of its months;
    ``truncated_amount_cents``: its part of its members' amounts above the program's truncation
    threshold. `allpayer.settlement.run.employer_figures` turns these into the actual the program's
    statement counts."""

    employer_id: str | None
    members: int
    member_months: int
    target_cents: int
    actual_cents: int
    truncated_amount_cents: int = 0


def _employer_months(con, program, year: int):
    """`settlement_months` with the ``employer_id`` of each month: the employer of the member's
    group on that month (the latest-starting ``employer_group`` row; NULL when none)."""
    t = settlement_months(con, program, year)
    e = employer_of_group_months(con.table("employer_group"), t.select("group_id", "month"))
    e = e.select(_g_group=e.group_id, _g_month=e.month, employer_id=e.employer_id)
    j = t.left_join(e, [t.group_id == e._g_group, t.month == e._g_month])
    return j.drop("_g_group", "_g_month")


def employer_truncation(months, program):
    """Per employer (``employer_id``, NULL for months without one): ``truncated_amount_cents``, its
    part of the amounts above the truncation threshold; None when the program has no truncation.

    The truncation is the program's (:func:`_truncation` over all its attributed months: the same
    thresholds, the same member-years). A member-year's truncated amount goes to the employers of
    its months in proportion to its FFS cost in each (negative costs weigh 0), by largest
    remainder (:func:`allpayer.core.tcoc.split_truncated_amounts`: ties to the lower employer id,
    the months without one last), so the parts add up to the member's amount and the employers'
    parts to the program's."""
    from allpayer.core import tcoc

    tr = _truncation(months.drop("employer_id"), program)
    if tr is None:
        return None
    seg = tcoc.member_year_cost(_truncation_months(months), segment_by=["employer_id"])
    parts = tcoc.split_truncated_amounts(tr.member_years, seg, "employer_id")
    return parts.group_by("employer_id").aggregate(truncated_amount_cents=parts.truncated_amount_cents.sum().cast("int64"))


def employer_bases(con, program, year: int) -> list[EmployerBase]:
    """Per employer of a commercial or self-funded program (and one row, ``employer_id`` None, for
    the attributed months without an employer): members, attributed member months, its part of the
    target, its FFS-basis TCOC and its part of the truncated amount, all computed as the program's
    statement computes them, so that they add up to the program's:

    - target: each rate cell's target is rounded once over all its attributed months
      (:func:`cell_target_cents`, ``settlement.rounding``), as :func:`population` does, and split
      over the employers by their members' months x the cell's PMPM (largest remainder);
    - truncation: :func:`employer_truncation`."""
    if not _has(con, "employer_group"):
        return []
    j = _employer_months(con, program, year)
    cells = j.group_by(["employer_id", "cell_id"]).aggregate(pmpm_sum=j.target_pmpm.sum())
    emp = j.group_by("employer_id").aggregate(members=j.member_id.nunique(), mm=j.count(),
                                              actual=j.ffs_paid_cents.sum())
    cut = employer_truncation(j, program)
    if cut is not None:
        cut = cut.rename(_c_employer="employer_id")
        emp = emp.left_join(cut, emp.employer_id.fill_null("") == cut._c_employer.fill_null("")).drop("_c_employer")
    order = [ibis.asc(emp.employer_id.isnull()), "employer_id"]
    employers = _rows(con, emp.order_by(order))
    ids = [r["employer_id"] for r in employers]
    targets = dict.fromkeys(ids, 0)
    by_cell: dict[str | None, dict[str | None, Decimal]] = {}
    for r in _rows(con, cells.order_by(["cell_id", "employer_id"])):
        by_cell.setdefault(r["cell_id"], {})[r["employer_id"]] = Decimal(str(r["pmpm_sum"] or 0))
    mode = program.settlement.rounding
    for cell in by_cell.values():
        members = [e for e in ids if e in cell]
        weights = [cell[e] for e in members]
        total = cell_target_cents(sum(weights, Decimal(0)), mode)
        if total and sum(weights) > 0:
            for e, part in zip(members, largest_remainder(total, weights)):
                targets[e] += part
    return [EmployerBase(r["employer_id"], int(r["members"]), int(r["mm"]), targets[r["employer_id"]],
                         int(r["actual"] or 0), int(r.get("truncated_amount_cents") or 0)) for r in employers]


def monthly_paid(con, program, year: int) -> list[dict]:
    """The program's FFS-basis cost of its attributed member months by service month (payer,
    month, ffs_paid_cents)."""
    mm = settlement_months(con, program, year)
    g = mm.group_by(["payer", "month"]).aggregate(ffs_paid_cents=mm.ffs_paid_cents.sum())
    return _rows(con, g.order_by(["payer", "month"]))


__all__ = ["program_inputs", "population", "Population", "settlement_months", "attributed_truncation",
           "participant_revenue", "participant_revenue_expr", "REVENUE_DEFINITION", "cell_target_cents",
           "participant_bases", "ParticipantBase", "employer_bases", "employer_truncation", "EmployerBase",
           "monthly_paid"]
