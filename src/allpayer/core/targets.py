"""Expected total cost of care (targets) per program, rate cell and month (domain.md R2).

``trended_base`` programs:

```
base_pmpm(y, cell)   = truncated base-year cost / base-year member months          (10 decimals)
trended_pmpm(y, cell) = base_pmpm x prod_{z = y+1 .. PY} (1 + trend_z(cell))        (10 decimals)
blended_pmpm(cell)   = sum_y weight_y x trended_pmpm(y, cell)                      (10 decimals)
risk_adjusted_pmpm   = blended_pmpm x risk ratio (capped / floored per the terms)  (10 decimals)
target_pmpm(month)   = risk_adjusted_pmpm x (1 - discount on the month)            (10 decimals)
ytd_target_cents     = round(sum over months to date of target_pmpm x member months, cents)
target_cents(month)  = ytd_target_cents(month) - ytd_target_cents(previous month)
```

Every PMPM is an exact DECIMAL(38, 10) rounded half-up once per named step (products of exact
decimals, no floating point); money is rounded to cents only on ``ytd_target_cents`` (rounding
mode of ``settlement.rounding``), and monthly targets are differences of year-to-date targets, so
months add up to the year exactly and ``round(target_pmpm x member months)`` equals the dollars.
``payer_supplied`` programs take the target PMPM by cell from the terms (or a table) instead.

The stages are pure functions of Ibis tables and terms: :func:`assign_cells`,
:func:`base_population_months`, :func:`trend_factors`, :func:`risk_ratios` and
:func:`expected_cost`, which returns the working as :class:`Targets`.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
import ibis
import ibis.expr.types as ir

from allpayer.core.member_months import age_on, month_starts
from allpayer.core.programs import PLANS_IN_MONTH, one_row_per_program_month
from allpayer.core.tcoc import (
    INT,
    SCALE,
    Truncation,
    _basis_column,
    decimal_units,
    div_round,
    int_literal,
    member_year_cost,
    split_truncated_amounts,
    truncation,
    truncation_settings,
    units_to_decimal,
    with_per_member,
)
from allpayer.errors import RunError

UNIT = 10**SCALE
PMPM_TYPE = f"decimal(38, {SCALE})"

# ------------------------------------------------------------------------------------------------
# rate cells


def cell_id_expr(t: ir.Table, cells, *, sex: str = "sex") -> ir.StringValue:
    """The rate cell id of each member month (NULL when a value is not in the cell lists).

    `cells`: the program's ``target.rate_cells``. Age is taken on 1 January of the month's year
    (``age_as_of: year_start``) or on the first of the month (``month_start``), from
    ``birth_date`` (a member born after that day is age 0); gender ``unknown`` counts as ``unknown_sex_as``.
    """
    if not cells.dimensions:
        return ibis.literal("all")
    parts: list[ir.StringValue] = []
    for dim in cells.dimensions:
        if dim == "age_band":
            on = ibis.date(t.month.year(), 1, 1) if cells.age_as_of == "year_start" else t.month
            age = ibis.greatest(age_on(t.birth_date, on), 0)  # born during the year: youngest band
            bands = [(b.id, b.min_age, b.max_age) for b in cells.age_bands]
            value = ibis.cases(
                *[((age >= lo) & (age <= hi) if hi is not None else (age >= lo), bid) for bid, lo, hi in bands],
                else_=ibis.null("string"),
            )
        elif dim == "sex":
            s = t[sex]
            s = ibis.ifelse(s == "unknown", ibis.literal(cells.unknown_sex_as), s)
            value = ibis.ifelse(s.isin(list(cells.sexes)), s, ibis.null("string"))
        elif dim == "aid_category":
            a = t.aid_category
            value = ibis.ifelse(a.isin(list(cells.aid_categories)), a, ibis.null("string"))
        else:
            e = t.enrollment_type
            value = ibis.ifelse(e.isin(list(cells.enrollment_types)), e, ibis.null("string"))
        parts.append(value.cast("string"))
    out = parts[0]
    for p in parts[1:]:
        out = out + "/" + p
    return out


def assign_cells(member_months: ir.Table, program) -> ir.Table:
    """Add ``cell_id`` (the program's rate cell) to member months (see :func:`cell_id_expr`)."""
    return member_months.mutate(cell_id=cell_id_expr(member_months, program.target.rate_cells))


# ------------------------------------------------------------------------------------------------
# base population


def base_population_months(
    eligibility_months: ir.Table,
    program,
    *,
    performance_months: ir.Table | None = None,
    attribution: ir.Table | None = None,
) -> ir.Table:
    """The program's base-year member months, tagged with its program_id.

    Selection in each base year: a program with employer groups (``population.group_ids``) takes
    those groups' member months under any payer and plan (a self-funded employer keeps its history
    when it changes administrator); other programs take their payer's listed plans. Then, by
    ``target.base_population``: ``performance_year_panel`` keeps the people (person_id) of the
    performance-year panel (`performance_months`, required); ``base_year_attribution`` keeps the
    member months of `attribution` (``member_id``, ``month``) when given, else every eligible
    member month of the population (until attribution is re-run for the base year). Employer
    opt-in is not required in the base years. A person with two selected rows in one month (under
    one member id or two) keeps the row of the first plan, then payer, in sort order, with
    ``plans_in_month`` naming the plans of that payer it held, whose claims all count in the month
    (the rule of the performance-year member months:
    ``allpayer.core.programs.one_row_per_program_month``).

    Grain: (program_id, person_id, month), and so (program_id, member_id, month); the columns of
    `eligibility_months` plus program_id, product, program_kind, performance_year (the base year)
    and plans_in_month. `performance_months` and `attribution` may lack ``program_id`` (they are
    then the program's own).
    """
    return programs_base_months(eligibility_months, [program], performance_months=performance_months,
                                attribution=attribution)


def programs_base_months(
    eligibility_months: ir.Table,
    programs: Sequence,
    *,
    performance_months: ir.Table | None = None,
    attribution: ir.Table | None = None,
) -> ir.Table:
    """:func:`base_population_months` of several programs in one query, their rows together.

    The eligibility months are matched to the programs that select them by joins to small tables
    of each program's (payer, plan, base year) or (group, base year), not filtered once per
    program. The eligibility months are unique by person, payer, plan and month, so a program of
    one payer's single plan selects each person's month at most once; only the rows of programs of several
    plans or of employer groups, which may select a month twice, are ordered to keep one, as a
    performance-year member month is (``allpayer.core.programs.one_row_per_program_month``).
    `performance_months` and `attribution` carry ``program_id`` unless there is one program.
    """
    programs = list(programs)
    if not programs:
        raise RunError("base population months: no program given")
    for p in programs:
        if not p.target.base_years:
            raise RunError(f"{p.program_id}: target method {p.target.method!r} has no base years")
    tags = ("program_id", "product", "program_kind", "performance_year", PLANS_IN_MONTH)
    m = eligibility_months.drop(*[c for c in tags if c in eligibility_months.columns])
    years = sorted({b.year for p in programs for b in p.target.base_years})
    # a range the scan can test before the joins (each program's own years are joined)
    m = m.filter((m.month >= dt.date(years[0], 1, 1)) & (m.month <= dt.date(years[-1], 12, 31)))
    m = m.mutate(_base_year=m.month.year().cast("int32"))

    def one_plan(p) -> bool:
        return not p.population.group_ids and len(set(p.population.plans)) == 1

    # Two branches that share no intermediate result (DuckDB would store one read twice): the
    # programs selecting each month at most once, and the others, whose months are ordered.
    parts = []
    branches = (([p for p in programs if one_plan(p)], False), ([p for p in programs if not one_plan(p)], True))
    for branch, ordered in branches:
        if not branch:
            continue
        rows = _in_base_population(_selected_months(m, branch), branch, performance_months, attribution,
                                   single=len(programs) == 1)
        parts.append(one_row_per_program_month(rows, ordered=ordered))
    rows = ibis.union(*parts, distinct=False) if len(parts) > 1 else parts[0]

    info = {p.program_id: p for p in programs}
    product = ibis.cases(*[(rows.program_id == k, ibis.literal(v.product, "string")) for k, v in info.items()],
                         else_=ibis.null("string"))
    kind = ibis.cases(*[(rows.program_id == k, ibis.literal(v.kind, "string")) for k, v in info.items()],
                      else_=ibis.null("string"))
    values = {"program_id": rows.program_id, "product": product, "program_kind": kind,
              "performance_year": rows._base_year}
    order = [*eligibility_months.columns, *[c for c in tags if c not in eligibility_months.columns]]
    return rows.select(*[values[c].name(c) if c in values else rows[c] for c in order])


def in_attributed_panel(base_months: ir.Table, attribution: ir.Table, programs: Sequence) -> ir.Table:
    """`base_months` (:func:`programs_base_months` rows of `programs`) with the months of each
    ``performance_year_panel`` program kept only for the people its performance-year `attribution`
    lists (rows both ``attributed`` and ``eligible``: the members its settlement covers); the rows
    of the other programs as they are.

    ``performance_year_panel`` is the base of the year's own attributed members (VMNG: the
    historical claims of the prospectively attributed population, domain.md R2.2). `allpayer run`
    builds the base months before attribution, with the program's member months as the panel (every
    eligible member: more people), and narrows them with this once the roster is written."""
    programs = list(programs)
    if not any(p.target.base_population == "performance_year_panel" for p in programs):
        return base_months
    a = attribution.filter(attribution.attributed & attribution.eligible)
    return _in_base_population(base_months, programs, a, None, single=len(programs) == 1)


def _selected_months(m: ir.Table, programs: Sequence) -> ir.Table:
    """The rows of `m` (with ``_base_year``) each program selects in its base years, with its
    program_id: an employer group's months under any payer and plan, else the payer's listed plans."""
    by_plan = [(p.program_id, p.payer, plan, b.year) for p in programs if not p.population.group_ids
               for b in p.target.base_years for plan in sorted(set(p.population.plans))]
    by_group = [(p.program_id, g, b.year) for p in programs if p.population.group_ids
                for b in p.target.base_years for g in sorted(set(p.population.group_ids))]
    selected = []
    if by_plan:
        s = ibis.memtable(
            {"_s_program": [r[0] for r in by_plan], "_s_payer": [r[1] for r in by_plan],
             "_s_plan": [r[2] for r in by_plan], "_s_year": [r[3] for r in by_plan]},
            schema={"_s_program": "string", "_s_payer": "string", "_s_plan": "string", "_s_year": "int32"},
        )
        j = m.join(s, [m.payer == s._s_payer, m.plan == s._s_plan, m._base_year == s._s_year])
        selected.append(j.select(*m.columns, program_id=j._s_program))
    if by_group:
        # an employer group keeps its history when it changes administrator (payer or plan)
        s = ibis.memtable(
            {"_s_program": [r[0] for r in by_group], "_s_group": [r[1] for r in by_group],
             "_s_year": [r[2] for r in by_group]},
            schema={"_s_program": "string", "_s_group": "string", "_s_year": "int32"},
        )
        j = m.join(s, [m.group_id == s._s_group, m._base_year == s._s_year])
        selected.append(j.select(*m.columns, program_id=j._s_program))
    return ibis.union(*selected, distinct=False) if len(selected) > 1 else selected[0]


def _in_base_population(rows: ir.Table, programs: Sequence, performance_months: ir.Table | None,
                        attribution: ir.Table | None, *, single: bool) -> ir.Table:
    """`rows` (with program_id) kept by each program's ``target.base_population`` (see
    :func:`base_population_months`). With programs of several kinds the keys are left-joined (one
    row each) and each row tested against its program's, so that `rows` is read once."""
    panel_ids = [p.program_id for p in programs if p.target.base_population == "performance_year_panel"]
    attributed_ids = [p.program_id for p in programs if p.program_id not in panel_ids and attribution is not None]
    if panel_ids and performance_months is None:
        raise RunError(f"{panel_ids[0]}: base_population performance_year_panel needs the performance-year panel")

    def own(t: ir.Table, ids: list[str]) -> ir.Table:
        """`t`'s rows of the programs `ids`, with ``_k_program``."""
        if "program_id" in t.columns:
            t = t.filter(t.program_id.isin(ids))
            return t.mutate(_k_program=t.program_id)
        if not single:
            raise RunError("base population months of several programs: the table lacks program_id")
        return t.mutate(_k_program=ibis.literal(ids[0]))

    keys = []  # (program ids, key table, join conditions builder, its marker column)
    if panel_ids:
        k = own(performance_months, panel_ids)
        k = k.select(_k_program=k._k_program, _k_person=k.person_id).distinct()
        keys.append((panel_ids, k, lambda r, k: [r.program_id == k._k_program, r.person_id == k._k_person], "_k_person"))
    if attributed_ids:
        k = own(attribution, attributed_ids)
        k = k.select(_k_program2=k._k_program, _k_member=k.member_id, _k_month=k.month).distinct()
        keys.append((attributed_ids, k, lambda r, k: [r.program_id == k._k_program2, r.member_id == k._k_member,
                                                      r.month == k._k_month], "_k_member"))
    if not keys:
        return rows
    if len(keys) == 1 and len(keys[0][0]) == len(programs):
        _ids, k, on, _marker = keys[0]
        return rows.semi_join(k, on(rows, k))
    j = rows
    for _ids, k, on, _marker in keys:
        j = j.left_join(k, on(j, k))
    keep = j.program_id.notin([i for ids, *_ in keys for i in ids])
    for ids, _k, _on, marker in keys:
        keep = keep | (j.program_id.isin(ids) & j[marker].notnull())
    return j.filter(keep).select(*rows.columns)


# ------------------------------------------------------------------------------------------------
# trend, risk ratio, discount


def _growth_cap(program) -> Decimal | None:
    g = program.target.growth_constraint
    if g is None or g.national_growth is None:
        return None
    national = g.national_growth.value
    for band in g.bands:
        if band.national_growth_below is None or national < band.national_growth_below:
            return national + band.max_above_national
    return None


TREND_SCHEMA = {
    "base_year": "int32",
    "cell_id": "string",
    "weight": "string",
    "weight_num": INT,
    "weight_den": INT,
    "years": "string",
    "rates": "string",
    "trend_factor": "string",
    "trend_num": INT,
    "trend_den": INT,
    "growth_limited": "boolean",
}


def trend_rows(program) -> list[dict]:
    """Python rows of :func:`trend_factors` (one per base year and cell, from the terms)."""
    t = program.target
    py = program.performance_year
    cap = _growth_cap(program)
    weights = {b.year: Fraction(b.weight) for b in t.base_years}
    wden = math.lcm(*(w.denominator for w in weights.values()))
    out = []
    for b in t.base_years:
        for cell in program.cell_ids():
            factor = Decimal(1)
            rates, limited = [], False
            for y in range(b.year + 1, py + 1):
                by_cell = t.trend.by_cell.get(cell, {}) if t.trend else {}
                noted = by_cell.get(y) or (t.trend.rates.get(y) if t.trend else None)
                if noted is None:
                    raise RunError(f"{program.program_id}: no trend rate for {y} (cell {cell})")
                rate = noted.value
                if y == py and cap is not None and rate > cap:
                    rate, limited = cap, True
                rates.append(f"{y}:{rate}")
                factor *= Decimal(1) + rate
            factor = factor.normalize()
            exp = -min(factor.as_tuple().exponent, 0)
            out.append(
                {
                    "base_year": b.year,
                    "cell_id": cell,
                    "weight": str(b.weight),
                    "weight_num": Decimal(int(weights[b.year] * wden)),
                    "weight_den": Decimal(wden),
                    "years": f"{b.year + 1}-{py}" if b.year + 1 <= py else "",
                    "rates": ", ".join(rates),
                    "trend_factor": format(factor, "f"),
                    "trend_num": Decimal(int(factor.scaleb(exp))),
                    "trend_den": Decimal(10**exp),
                    "growth_limited": limited,
                }
            )
    return out


def trend_factors(program) -> ir.Table:
    """Trend factor of each base year and cell: the product of (1 + rate) for each year from the
    base year + 1 to the performance year (``trend.by_cell`` overrides ``trend.rates`` per year);
    the performance-year rate is limited by ``growth_constraint`` (national growth + the band's
    ``max_above_national``) when the program has one.

    Grain: (base_year, cell_id). Columns: ``TREND_SCHEMA`` (factor and weight as exact
    numerator/denominator integers and as text).
    """
    rows = trend_rows(program)
    return ibis.memtable({k: [r[k] for r in rows] for k in TREND_SCHEMA}, schema=ibis.schema(TREND_SCHEMA))


def decimal_to_units(value: ir.Value) -> ir.Value:
    """A numeric column (DECIMAL or float) as integer 10^-10 units, rounded to 10 decimals first."""
    d = value.cast(PMPM_TYPE)
    return (d * ibis.literal(Decimal(UNIT), PMPM_TYPE)).cast(INT)


def risk_ratios(program, table: ir.Table | None = None) -> ir.Table:
    """Risk ratio of each rate cell, limited by ``risk_adjustment.ratio_cap``/``ratio_floor``.

    `table`: ``cell_id`` and ``raw_ratio`` (the population ratio of member-month-weighted mean
    scores, performance year over base year, e.g. :func:`allpayer.core.risk.risk_ratio` computed
    with ``cell='cell_id'``). Method ``none``: 1 for every cell. A cell missing from the table gets
    1 with rule ``missing: 1 assumed``.

    Grain: (cell_id). Columns: raw_ratio, cap, floor, risk_ratio (DECIMAL(38, 10)), ratio_units,
    risk_rule (``none``, ``raw``, ``cap``, ``floor``, ``missing: 1 assumed``).
    """
    ra = program.target.risk_adjustment
    cells = ibis.memtable({"cell_id": program.cell_ids()}, schema={"cell_id": "string"})
    cap = None if ra.ratio_cap is None else Decimal(1) + ra.ratio_cap.value
    floor = None if ra.ratio_floor is None else Decimal(1) - ra.ratio_floor.value
    if ra.method == "none":
        t = cells.mutate(raw_units=int_literal(UNIT), risk_rule=ibis.literal("none"))
    else:
        if table is None:
            raise RunError(f"{program.program_id}: risk adjustment {ra.method!r} needs a risk ratio table (cell_id, raw_ratio)")
        r = table.select(_r_cell=table.cell_id.cast("string"), _r_units=decimal_to_units(table.raw_ratio))
        t = cells.left_join(r, cells.cell_id == r._r_cell)
        t = t.mutate(
            raw_units=t._r_units.fill_null(int_literal(UNIT)),
            risk_rule=ibis.ifelse(t._r_units.isnull(), ibis.literal("missing: 1 assumed"), ibis.literal("raw")),
        ).drop("_r_cell", "_r_units")
    units = t.raw_units
    rule = t.risk_rule
    if cap is not None:
        cu = int_literal(decimal_units(cap))
        rule = ibis.ifelse(units > cu, ibis.literal("cap"), rule)
        units = ibis.ifelse(units > cu, cu, units)
    if floor is not None:
        fu = int_literal(decimal_units(floor))
        rule = ibis.ifelse(units < fu, ibis.literal("floor"), rule)
        units = ibis.ifelse(units < fu, fu, units)
    t = t.mutate(ratio_units=units, risk_rule=rule)
    return t.select(
        "cell_id",
        raw_ratio=units_to_decimal(t.raw_units),
        cap=ibis.literal(None if cap is None else str(cap), "string"),
        floor=ibis.literal(None if floor is None else str(floor), "string"),
        risk_ratio=units_to_decimal(t.ratio_units),
        ratio_units=t.ratio_units,
        risk_rule=t.risk_rule,
    )


def performance_months_table(program) -> list[dt.date]:
    """First days of the months of the program's effective period."""
    return month_starts(program.effective.start, program.effective.end)


def discount_table(program) -> ir.Table:
    """Discount of each performance month (the dated ``target.discount`` on the first of the
    month). Columns: month, discount (text), one_minus_discount_units."""
    months = performance_months_table(program)
    values = [program.target.discount.at(max(m, program.effective.start)) for m in months]
    return ibis.memtable(
        {
            "month": months,
            "discount": [str(v) for v in values],
            "one_minus_discount_units": [Decimal(decimal_units(Decimal(1) - v)) for v in values],
        },
        schema={"month": "date", "discount": "string", "one_minus_discount_units": INT},
    )


# ------------------------------------------------------------------------------------------------
# the target


@dataclass(frozen=True)
class Targets:
    """The working of a program's expected cost.

    - ``base``: grain (program_id, base_year, cell_id): member_months, members, cost_cents,
      truncated_amount_cents, truncated_cost_cents, base_pmpm, weight, trend_factor, rates,
      trended_pmpm.
    - ``cells``: grain (program_id, cell_id): base_years_with_experience, blended_pmpm, raw_ratio,
      risk_ratio, risk_rule, risk_adjusted_pmpm, status (``ok``, ``no_base_experience``,
      ``payer_supplied``).
    - ``monthly``: grain (program_id, cell_id, month): member_months, discount, target_pmpm,
      ytd_member_months, ytd_target_cents, target_cents.
    - ``program_monthly``: grain (program_id, month): member_months,
      member_months_without_target (months of cells with no target, e.g. no base experience: they
      count in member_months but add nothing to the target), target_cents, ytd_member_months,
      ytd_target_cents, target_pmpm, ytd_target_pmpm.
    - ``unassigned``: grain (program_id, population, year): member months without a rate cell
      (they carry no target) and, for the base, their cost.
    - ``truncation``: the base-year truncation (None without one).
    """

    base: ir.Table | None
    cells: ir.Table
    monthly: ir.Table
    program_monthly: ir.Table
    unassigned: ir.Table
    truncation: Truncation | None = None


MONTHLY_SCHEMA = ibis.schema({
    "program_id": "string", "cell_id": "string", "month": "date", "member_months": "int64", "discount": "string",
    "target_pmpm": PMPM_TYPE, "ytd_member_months": "int64", "ytd_target_cents": "int64", "target_cents": "int64",
})
"""The columns of `Targets.monthly` (the run's ``targets`` table, before its year and run id)."""


BASE_COST_COLUMNS: tuple[str, ...] = (
    "program_id", "member_id", "person_id", "month", "year", "birth_date", "sex", "aid_category", "enrollment_type",
)
"""The columns of the base months' cost (beside the cost basis) that :func:`expected_cost` reads:
the keys, the year, and what a rate cell is made of (see :func:`cell_id_expr`)."""

BASE_MONTH_COLUMNS: tuple[str, ...] = (
    "program_id", "member_id", "person_id", "payer", "plan", "month", "plans_in_month", "birth_date", "sex",
    "aid_category", "enrollment_type",
)
"""What `allpayer run` keeps of the base months (:func:`programs_base_months`): the keys on which
their cost joins the claim lines (``allpayer.core.tcoc.PROGRAM_MONTH_KEYS``), and what the targets
(`BASE_COST_COLUMNS`, the year aside) and the risk ratios (person and rate cell) read."""


def _base_costs(
    program,
    base_member_month_cost: ir.Table,
    *,
    basis: str,
    thresholds: ir.Table | int | None,
) -> tuple[ir.Table, ir.Table, Truncation | None]:
    col = _basis_column(basis)
    years = [b.year for b in program.target.base_years]
    m = base_member_month_cost
    if "program_id" in m.columns:
        m = m.filter(m.program_id == program.program_id)
    m = m.filter(m.month.year().isin(years))
    m = assign_cells(m, program)
    keep = [c for c in ("program_id", "member_id", "person_id", "month", "year", "enrollment_type") if c in m.columns]
    m = m.select(*keep, "cell_id", col)
    unassigned = m.filter(m.cell_id.isnull())
    unassigned = unassigned.group_by(year=unassigned.month.year().cast("int32")).aggregate(
        member_months=unassigned.count(), cost_cents=unassigned[col].sum()
    )
    m = m.filter(m.cell_id.notnull())
    trunc: Truncation | None = None
    settings = truncation_settings(program, population="base")
    if settings:
        if thresholds is not None:
            settings["thresholds"] = thresholds
        # each member's year is capped whole (as the performance year's), then the amount above the
        # threshold is split over the cells of its months by cost
        trunc = truncation(member_year_cost(m), basis=basis, **settings)
        seg = member_year_cost(m, segment_by=("cell_id",))
        cut = split_truncated_amounts(trunc.member_years, seg, "cell_id", basis=basis)
        cut = cut.group_by(_c_year=cut.year.cast("int32"), _c_cell=cut.cell_id).aggregate(
            _c_cut=cut.truncated_amount_cents.sum())
        base = seg.group_by(base_year=seg.year.cast("int32"), cell_id=seg.cell_id).aggregate(
            member_months=seg.eligible_months.sum(),
            members=seg.member_id.nunique(),
            cost_cents=seg[col].sum(),
        )
        base = base.left_join(cut, [base.base_year == cut._c_year, base.cell_id == cut._c_cell])
        base = base.mutate(truncated_amount_cents=base._c_cut.fill_null(0)).drop("_c_year", "_c_cell", "_c_cut")
        base = base.mutate(truncated_cost_cents=base.cost_cents - base.truncated_amount_cents)
    else:
        base = m.group_by(base_year=m.month.year().cast("int32"), cell_id=m.cell_id).aggregate(
            member_months=m.count(),
            members=m.member_id.nunique(),
            cost_cents=m[col].sum(),
        )
        base = base.mutate(truncated_amount_cents=ibis.literal(0, "int64"), truncated_cost_cents=base.cost_cents)
    base = base.mutate(**{c: base[c].cast("int64") for c in
                          ("member_months", "members", "cost_cents", "truncated_amount_cents", "truncated_cost_cents")})
    return base, unassigned, trunc


def _performance_cells(program, performance_months: ir.Table) -> tuple[ir.Table, ir.Table]:
    pm = performance_months
    if "program_id" in pm.columns:
        pm = pm.filter(pm.program_id == program.program_id)
    pm = pm.filter((pm.month >= ibis.literal(program.effective.start.replace(day=1)))
                   & (pm.month <= ibis.literal(program.effective.end)))
    pm = assign_cells(pm, program)
    unassigned = pm.filter(pm.cell_id.isnull())
    unassigned = unassigned.group_by(year=unassigned.month.year().cast("int32")).aggregate(
        member_months=unassigned.count(), cost_cents=ibis.null("int64")
    )
    pm = pm.filter(pm.cell_id.notnull())
    mm = pm.group_by(_m_cell="cell_id", _m_month="month").aggregate(_m_mm=pm.count())
    return mm, unassigned


def _payer_supplied_pmpm(program, payer_targets: ir.Table | None) -> ir.Table:
    months = performance_months_table(program)
    if payer_targets is not None:
        p = payer_targets
        return p.select(cell_id=p.cell_id.cast("string"), month=p.month, pmpm_units=decimal_to_units(p.target_pmpm))
    supplied = program.target.payer_supplied_pmpm
    if not supplied:
        raise RunError(f"{program.program_id}: target method payer_supplied needs payer_supplied_pmpm or a payer target table")
    rows = [
        (cell, m, Decimal(decimal_units(supplied[cell].at(max(m, program.effective.start)))))
        for cell in program.cell_ids()
        for m in months
    ]
    return ibis.memtable(
        {"cell_id": [r[0] for r in rows], "month": [r[1] for r in rows], "pmpm_units": [r[2] for r in rows]},
        schema={"cell_id": "string", "month": "date", "pmpm_units": INT},
    )


def expected_cost(
    program,
    *,
    performance_months: ir.Table,
    base_member_month_cost: ir.Table | None = None,
    risk_ratio_table: ir.Table | None = None,
    thresholds: ir.Table | int | None = None,
    payer_targets: ir.Table | None = None,
    basis: str = "ffs_paid",
) -> Targets:
    """A program's expected TCOC by rate cell and month, monthly and year to date.

    - `performance_months`: the program's performance-year member months (e.g.
      :func:`allpayer.core.programs.program_months`, or attributed months); rows of other programs
      are ignored.
    - `base_member_month_cost`: :func:`allpayer.core.tcoc.member_month_cost` over
      :func:`base_population_months` (``trended_base`` only).
    - `risk_ratio_table`: ``cell_id``, ``raw_ratio`` (see :func:`risk_ratios`).
    - `thresholds`: supplied truncation thresholds (cents, or a table by year and truncation
      group) replacing the terms' dollar threshold; the terms' percentile still applies.
    - `payer_targets`: ``cell_id``, ``month``, ``target_pmpm`` (a payer's own targets), for
      ``payer_supplied`` programs instead of ``target.payer_supplied_pmpm``.
    - `basis`: the cost basis of the base (``ffs_paid`` default; ``paid`` or ``allowed``).

    See the module docstring for the formula and :class:`Targets` for the tables.
    """
    method = program.target.method
    pid = program.program_id
    rounding = program.settlement.rounding
    if method == "mssp_benchmark":
        raise RunError(f"{pid}: target method mssp_benchmark is computed by the MSSP settlement (allpayer.settlement.mssp)")
    cells_t = ibis.memtable({"cell_id": program.cell_ids()}, schema={"cell_id": "string"})
    trunc = None
    base_out = None
    unassigned_parts = []

    if method == "trended_base":
        if base_member_month_cost is None:
            raise RunError(f"{pid}: target method trended_base needs base-year member-month costs")
        base, base_unassigned, trunc = _base_costs(program, base_member_month_cost, basis=basis, thresholds=thresholds)
        unassigned_parts.append(base_unassigned.mutate(population=ibis.literal("base")))
        trend = trend_factors(program)
        base = base.rename(_b_year="base_year", _b_cell="cell_id")
        b = trend.left_join(base, [trend.base_year == base._b_year, trend.cell_id == base._b_cell])
        b = b.drop("_b_year", "_b_cell")
        b = b.mutate(**{c: b[c].fill_null(0).cast("int64") for c in
                        ("member_months", "members", "cost_cents", "truncated_amount_cents", "truncated_cost_cents")})
        b = div_round(b, "_base_units", b.truncated_cost_cents.cast(INT) * int_literal(10 ** (SCALE - 2)), b.member_months)
        b = div_round(b, "_trended_units", b._base_units * b.trend_num, b.trend_den)
        base_out = b.select(
            program_id=ibis.literal(pid), base_year=b.base_year, cell_id=b.cell_id, member_months=b.member_months,
            members=b.members, cost_cents=b.cost_cents, truncated_amount_cents=b.truncated_amount_cents,
            truncated_cost_cents=b.truncated_cost_cents, base_pmpm=units_to_decimal(b._base_units),
            weight=b.weight, trend_factor=b.trend_factor, rates=b.rates, growth_limited=b.growth_limited,
            trended_pmpm=units_to_decimal(b._trended_units),
        ).order_by(["base_year", "cell_id"])
        blend = b.group_by("cell_id").aggregate(
            _sum=(b._trended_units * b.weight_num).sum(),
            _den=b.weight_den.max(),
            base_years_with_experience=(b.member_months > 0).cast("int64").sum(),
        )
        blend = div_round(blend, "_blended_units", blend._sum, blend._den)
        n_years = len(program.target.base_years)
        complete = blend.base_years_with_experience == n_years
        blend = blend.mutate(
            _blended_units=ibis.ifelse(complete, blend._blended_units, ibis.null(INT)),
            status=ibis.ifelse(complete, ibis.literal("ok"), ibis.literal("no_base_experience")),
        )
        rr = risk_ratios(program, risk_ratio_table).rename(_rr_cell="cell_id")
        c = blend.join(rr, blend.cell_id == rr._rr_cell).drop("_rr_cell")
        c = div_round(c, "_ra_units", c._blended_units * c.ratio_units, int_literal(UNIT))
        cells = c.select(
            program_id=ibis.literal(pid), cell_id=c.cell_id, base_years_with_experience=c.base_years_with_experience,
            blended_pmpm=units_to_decimal(c._blended_units), raw_ratio=c.raw_ratio, risk_ratio=c.risk_ratio,
            risk_rule=c.risk_rule, risk_adjusted_pmpm=units_to_decimal(c._ra_units), status=c.status,
        )
        disc = discount_table(program)
        grid = c.select("cell_id", "_ra_units").cross_join(disc)
        grid = div_round(grid, "pmpm_units", grid._ra_units * grid.one_minus_discount_units, int_literal(UNIT))
        grid = grid.select("cell_id", "month", "discount", "pmpm_units")
    elif method == "payer_supplied":
        pmpm = _payer_supplied_pmpm(program, payer_targets)
        grid = cells_t.cross_join(
            ibis.memtable({"month": performance_months_table(program)}, schema={"month": "date"})
        )
        p2 = pmpm.select(_p_cell="cell_id", _p_month="month", _p_units="pmpm_units")
        grid = grid.left_join(p2, [grid.cell_id == p2._p_cell, grid.month == p2._p_month])
        grid = grid.select("cell_id", "month", discount=ibis.literal(None, "string"), pmpm_units=grid._p_units)
        cells = cells_t.select(
            program_id=ibis.literal(pid), cell_id=cells_t.cell_id, base_years_with_experience=ibis.null("int64"),
            blended_pmpm=ibis.null(PMPM_TYPE), raw_ratio=ibis.null(PMPM_TYPE), risk_ratio=ibis.null(PMPM_TYPE),
            risk_rule=ibis.literal("payer_supplied"), risk_adjusted_pmpm=ibis.null(PMPM_TYPE),
            status=ibis.literal("payer_supplied"),
        )
    else:  # pragma: no cover - the terms model allows no other method
        raise RunError(f"{pid}: unknown target method {method!r}")

    mm, perf_unassigned = _performance_cells(program, performance_months)
    unassigned_parts.append(perf_unassigned.mutate(population=ibis.literal("performance")))
    g = grid.left_join(mm, [grid.cell_id == mm._m_cell, grid.month == mm._m_month])
    g = g.mutate(member_months=g._m_mm.fill_null(0).cast("int64")).drop("_m_cell", "_m_month", "_m_mm")
    g = g.mutate(year=g.month.year().cast("int32"), _amount_units=g.pmpm_units * g.member_months.cast(INT))
    w = ibis.window(group_by=[g.cell_id, g.year], order_by=[g.month], rows=(None, 0))
    g = g.mutate(_ytd_units=g._amount_units.sum().over(w), ytd_member_months=g.member_months.sum().over(w).cast("int64"))
    g = div_round(g, "_ytd_cents", g._ytd_units, int_literal(10 ** (SCALE - 2)), rounding)
    wl = ibis.window(group_by=[g.cell_id, g.year], order_by=[g.month])
    g = g.mutate(ytd_target_cents=g._ytd_cents.cast("int64"))
    g = g.mutate(target_cents=(g.ytd_target_cents - g.ytd_target_cents.lag().over(wl).fill_null(0)).cast("int64"))
    monthly = g.select(
        program_id=ibis.literal(pid), cell_id=g.cell_id, month=g.month, member_months=g.member_months,
        discount=g.discount, target_pmpm=units_to_decimal(g.pmpm_units), ytd_member_months=g.ytd_member_months,
        ytd_target_cents=g.ytd_target_cents, target_cents=g.target_cents,
    ).order_by(["cell_id", "month"])

    pmo = g.group_by("month").aggregate(
        member_months=g.member_months.sum(),
        member_months_without_target=g.member_months.sum(where=g.pmpm_units.isnull()).fill_null(0),
        target_cents=g.target_cents.sum(),
        ytd_member_months=g.ytd_member_months.sum(),
        ytd_target_cents=g.ytd_target_cents.sum(),
    )
    pmo = pmo.mutate(program_id=ibis.literal(pid))
    pmo = pmo.mutate(**{c: pmo[c].cast("int64") for c in ("member_months", "member_months_without_target",
                                                          "target_cents", "ytd_member_months", "ytd_target_cents")})
    pmo = with_per_member(pmo, "target_pmpm", pmo.target_cents, pmo.member_months)
    pmo = with_per_member(pmo, "ytd_target_pmpm", pmo.ytd_target_cents, pmo.ytd_member_months)
    program_monthly = pmo.select(
        "program_id", "month", "member_months", "member_months_without_target", "target_cents", "ytd_member_months",
        "ytd_target_cents", "target_pmpm", "ytd_target_pmpm",
    ).order_by("month")

    un = unassigned_parts[0]
    for other in unassigned_parts[1:]:
        un = un.union(other, distinct=False)
    unassigned = un.select(
        program_id=ibis.literal(pid), population=un.population, year=un.year,
        member_months=un.member_months.cast("int64"), cost_cents=un.cost_cents.cast("int64"),
    )
    return Targets(base=base_out, cells=cells.order_by("cell_id"), monthly=monthly, program_monthly=program_monthly,
                   unassigned=unassigned, truncation=trunc)


def target_totals(targets: Targets) -> ir.Table:
    """One row per program: performance-year member months, target cents and target PMPM (exact),
    taken from the last month of ``program_monthly``. Columns: program_id, member_months,
    target_cents, target_pmpm."""
    p = targets.program_monthly
    t = p.group_by("program_id").aggregate(member_months=p.member_months.sum(), target_cents=p.target_cents.sum())
    t = t.mutate(member_months=t.member_months.cast("int64"), target_cents=t.target_cents.cast("int64"))
    return with_per_member(t, "target_pmpm", t.target_cents, t.member_months)


TARGET_RECONCILE_SCHEMA = ibis.schema(
    {
        "program_id": "string",
        "cell_id": "string",
        "month": "date",
        "status": "string",
        "reason": "string",
        "our_member_months": "int64",
        "payer_member_months": "int64",
        "our_target_pmpm": PMPM_TYPE,
        "our_target_pmpm_cents": "int64",
        "payer_target_pmpm": "decimal(18, 2)",
        "pmpm_difference": PMPM_TYPE,
        "our_target_cents": "int64",
        "payer_target_cents": "int64",
        "difference_cents": "int64",
    }
)
"""Columns of :func:`reconcile_targets`."""


def reconcile_targets(ours: ir.Table, payer_targets: ir.Table, program_id: str) -> ir.Table:
    """Our monthly targets against the payer's, cell by cell and month.

    `ours`: :attr:`Targets.monthly` (``program_id, cell_id, month, member_months, target_pmpm,
    target_cents``); `payer_targets`: the ``payer_target`` input (``program_id, cell_id, month,
    target_pmpm``, optional ``member_months``); rows of other programs are ignored.

    Grain: (program_id, cell_id, month) over the union of both. ``status``: ``both``,
    ``only_ours`` or ``only_payer``. ``reason``: ``match`` (our PMPM rounded half-up to cents
    equals the payer's and the member months agree where the payer states them);
    ``pmpm_differs``; ``member_months_differ``; ``no_target_computed`` (the payer has a target
    where we could not compute one, e.g. a cell without base-year experience);
    ``not_in_payer_targets``; ``not_a_program_cell_or_month`` (a payer row for a cell or month
    the program's terms do not have). ``payer_target_cents`` prices the payer's PMPM on our
    member months (exact: a two-decimal PMPM times whole months), so ``difference_cents`` is
    what the PMPM difference is worth on our population. Columns: :data:`TARGET_RECONCILE_SCHEMA`.
    """
    o = ours.filter(ours.program_id == program_id)
    o = o.select(
        o_cell=o.cell_id.cast("string"), o_month=o.month, our_member_months=o.member_months.cast("int64"),
        our_target_pmpm=o.target_pmpm.cast(PMPM_TYPE), our_target_cents=o.target_cents.cast("int64"),
    )
    p = payer_targets.filter(payer_targets.program_id == program_id)
    if "member_months" not in p.columns:
        p = p.mutate(member_months=ibis.null("int64"))
    p = p.select(
        p_cell=p.cell_id.cast("string"), p_month=p.month, payer_member_months=p.member_months.cast("int64"),
        payer_target_pmpm=p.target_pmpm.cast("decimal(18, 2)"),
    )
    j = o.outer_join(p, [o.o_cell == p.p_cell, o.o_month == p.p_month])
    j = div_round(j, "_our_cents", decimal_to_units(j.our_target_pmpm), int_literal(10 ** (SCALE - 2)), "half_up")
    j = j.mutate(
        _payer_cents=(j.payer_target_pmpm * ibis.literal(Decimal(100), "decimal(18, 2)")).cast("int64"),
    )
    ours_in, payer_in = j.o_cell.notnull(), j.p_cell.notnull()
    mm_differs = j.payer_member_months.notnull() & (j.payer_member_months != j.our_member_months)
    pmpm_differs = j._our_cents.cast("int64") != j._payer_cents
    reason = ibis.cases(
        (ours_in & payer_in & j.our_target_pmpm.isnull(), "no_target_computed"),
        (ours_in & payer_in & pmpm_differs, "pmpm_differs"),
        (ours_in & payer_in & mm_differs, "member_months_differ"),
        (ours_in & payer_in, "match"),
        (ours_in, "not_in_payer_targets"),
        else_="not_a_program_cell_or_month",
    )
    status = ibis.cases((ours_in & payer_in, "both"), (ours_in, "only_ours"), else_="only_payer")
    payer_cents = j._payer_cents * j.our_member_months
    out = j.mutate(
        program_id=ibis.literal(program_id),
        cell_id=ibis.coalesce(j.o_cell, j.p_cell),
        month=ibis.coalesce(j.o_month, j.p_month),
        status=status,
        reason=reason,
        our_target_pmpm_cents=j._our_cents.cast("int64"),
        pmpm_difference=(j.our_target_pmpm - j.payer_target_pmpm.cast(PMPM_TYPE)).cast(PMPM_TYPE),
        payer_target_cents=payer_cents.cast("int64"),
        difference_cents=(j.our_target_cents - payer_cents).cast("int64"),
    )
    return out.select(*[out[c].cast(t).name(c) for c, t in TARGET_RECONCILE_SCHEMA.items()])


__all__ = [
    "Targets",
    "assign_cells",
    "cell_id_expr",
    "base_population_months",
    "programs_base_months",
    "in_attributed_panel",
    "trend_factors",
    "risk_ratios",
    "discount_table",
    "expected_cost",
    "target_totals",
    "reconcile_targets",
]
