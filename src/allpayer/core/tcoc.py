"""Total cost of care (TCOC): cost per member, program and month, truncation, completion,
utilization, high-cost claimants, leakage and aggregates.

Every function here is a pure function from Ibis tables (plus parameters) to Ibis tables; nothing
loops over members or claims, and money stays in integer cents. Tables and rules are described in
``docs/tcoc_and_targets.md``; in short:

- :func:`cost_lines` narrows net medical (and pharmacy) claim lines to the cost columns, with the
  TCOC category and the fee-for-service (FFS) basis amount: ``ffs_paid_cents`` is what the payer
  paid for FFS lines plus the FFS-priced value of shadow claims (``payment_arrangement`` fpp, cpr or
  capitated, paid 0): their net allowed amount (``shadow_priced_cents``).
- :func:`member_month_cost`: one row per program member month with its cost, in total and by TCOC
  category (inpatient, outpatient, ed, professional, pharmacy, other). Costs of months outside a
  member's program months stay out of the program and are shown by :func:`cost_reconciliation`.
- :func:`member_year_cost`, :func:`truncation_thresholds`, :func:`truncate`: annualized cost
  (cost x 12 / eligible months) capped at a threshold per year and truncation group (enrollment
  type), the cap scaled back to the eligible fraction; a percentile threshold is the exact
  nearest-rank value over members, in cents.
- :func:`completion`: a paid-lag triangle, chain-ladder development factors and a completion
  factor per incurred month; :func:`apply_completion` adds an IBNR estimate next to (never into)
  the paid amounts.
- :func:`utilization_events`, :func:`utilization_rates`: admissions, ED visits and 30-day
  readmissions, per 1,000 member-years.
- :func:`high_cost_claimants`, :func:`leakage`, :func:`tcoc_aggregate`.

Exact arithmetic. PMPM, per-1,000 rates and factors are DECIMAL(38, 10) values computed from
integers with :func:`div_round` (exact integer division and rounding, which DuckDB and Spark agree
on: no floating-point result is ever kept), and money is rounded to cents only on named columns,
half-up unless a rounding mode is given.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence

import ibis
import ibis.expr.types as ir

from allpayer.backend import checkpoint
from allpayer.core.member_months import month_end
from allpayer.core.programs import employer_of_group_months
from allpayer.errors import RunError

# ------------------------------------------------------------------------------------------------
# exact arithmetic

INT = "decimal(38, 0)"
"""Integer type of intermediate products (cents x scale factors can exceed int64)."""

SCALE = 10
"""Decimal places kept on PMPM values, rates and factors."""

ROUNDING = ("half_up", "half_even", "down", "up")


def int_literal(value: int) -> ir.Value:
    """An exact integer literal of type DECIMAL(38, 0)."""
    return ibis.literal(Decimal(int(value)), INT)


def _is_column_of(value: ir.Value, t: ir.Table) -> bool:
    from ibis.expr.operations.relations import Field

    op = value.op()
    return isinstance(op, Field) and op.rel == t.op()


def _exact_quotient(a: ir.Value, d: ir.Value, mode: str) -> ir.Value:
    """``a / d`` rounded with `mode`, for a >= 0 and d > 0 integer-valued DECIMAL(38, 0) columns.

    The remainder ``a % d`` is exact; ``(a - r) / d`` is a whole number, estimated in floating
    point and corrected once with an exact product, so the quotient is exact."""
    r = a % d
    whole = a - r
    qe = (whole / d).cast(INT)
    q = qe + ((whole - qe * d) / d).cast(INT)
    two = int_literal(2)
    if mode == "half_up":
        inc = r * two >= d
    elif mode == "half_even":
        inc = (r * two > d) | ((r * two == d) & (q % two == int_literal(1)))
    elif mode == "up":
        inc = r > int_literal(0)
    else:
        return q
    return q + ibis.ifelse(inc, int_literal(1), int_literal(0))


def div_round(t: ir.Table, out: str, num: ir.Value, den: ir.Value, mode: str = "half_up", *,
              convert=None) -> ir.Table:
    """Add column `out`: the integer ``num / den`` rounded with `mode`, computed exactly.

    `num` and `den` are integer-valued expressions of `t` (int64 or DECIMAL(38, 0)); the result is
    DECIMAL(38, 0) (or `convert` applied to it). Modes follow :mod:`allpayer.money`: ``half_up``
    (ties away from zero), ``half_even``, ``down`` (toward zero), ``up`` (away from zero). A zero
    or NULL denominator gives NULL. Only exact integer operations decide the result (remainder,
    products, comparisons), so it is the same on DuckDB (which divides decimals as DOUBLE) and on
    Spark.

    >>> t = ibis.memtable({"n": [7, -7, 5, 15, 1]}, schema={"n": "int64"})
    >>> t = div_round(t, "q", t.n, ibis.literal(2), "half_up")
    >>> [int(q) for q in ibis.duckdb.connect().to_pyarrow(t.q).to_pylist()]
    [4, -4, 3, 8, 1]
    """
    if mode not in ROUNDING:
        raise ValueError(f"unknown rounding mode {mode!r}: expected one of {', '.join(ROUNDING)}")
    keep = [c for c in t.columns if c != out]
    p = f"_dr_{out}_"
    n, d = num.cast(INT), den.cast(INT)
    t = t.mutate(**{f"{p}a": n.abs(), f"{p}neg": n < 0, f"{p}d": ibis.ifelse(d == int_literal(0), ibis.null(INT), d)})
    mag = _exact_quotient(t[f"{p}a"], t[f"{p}d"], mode)
    value = mag * ibis.ifelse(t[f"{p}neg"], int_literal(-1), int_literal(1))
    if convert is None:
        return t.select(*keep, **{out: value})
    t = t.mutate(**{f"{p}q": value})
    return t.select(*keep, **{out: convert(t[f"{p}q"])})


def units_to_decimal(units: ir.Value, scale: int = SCALE) -> ir.DecimalValue:
    """An integer count of 10^-`scale` units as DECIMAL(38, `scale`), exactly.

    Built as text (integer part, point, `scale` digits) and cast, so no decimal arithmetic is
    involved (DuckDB and Spark scale decimal products differently)."""
    a = units.cast(INT).abs()
    p = int_literal(10**scale)
    frac = a % p
    whole = _exact_quotient(a, p, "down")
    digits = (frac + p).cast("string").substr(1, scale)
    text = ibis.ifelse(units < 0, "-", "") + whole.cast("string") + "." + digits
    return text.cast(f"decimal(38, {scale})")


def with_ratio(t: ir.Table, out: str, num: ir.Value, den: ir.Value, *, scale: int = SCALE,
               mode: str = "half_up") -> ir.Table:
    """Add `out` = num / den as DECIMAL(38, `scale`), rounded once (NULL when den is 0)."""
    return div_round(t, out, num.cast(INT) * int_literal(10**scale), den, mode,
                     convert=lambda units: units_to_decimal(units, scale))


def with_per_member(t: ir.Table, out: str, cents: ir.Value, member_months: ir.Value, *, months: int = 1,
                    scale: int = SCALE) -> ir.Table:
    """Add `out`: dollars per member month (x `months`: 12 gives per member per year), exact to
    `scale` decimals: ``cents x months / 100 / member_months``."""
    return with_ratio(t, out, cents.cast(INT) * int_literal(months), member_months.cast(INT) * int_literal(100),
                      scale=scale)


def decimal_units(value: Decimal, scale: int = SCALE) -> int:
    """A Decimal as an integer number of 10^-`scale` units; refuses values with more decimals.

    >>> decimal_units(Decimal("1.03"))
    10300000000
    """
    scaled = Decimal(value).scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {scale} decimals")
    return int(scaled)


def month_index(d: ir.DateValue) -> ir.IntegerValue:
    """Months since year 0 (``year x 12 + month - 1``): differences are calendar-month lags."""
    return d.year().cast("int64") * 12 + d.month().cast("int64") - 1


def _month_of(d: ir.DateValue) -> ir.DateValue:
    return ibis.date(d.year(), d.month(), 1)


# ------------------------------------------------------------------------------------------------
# cost lines and member-month cost

TCOC_CATEGORIES: tuple[str, ...] = ("inpatient", "outpatient", "ed", "professional", "pharmacy", "other")
"""TCOC reporting categories. snf, home_health, hospice and dme claim lines report as ``other``."""

CATEGORY_OF_SERVICE: dict[str, str] = {
    "inpatient": "inpatient",
    "snf": "other",
    "home_health": "other",
    "hospice": "other",
    "ed": "ed",
    "outpatient": "outpatient",
    "professional": "professional",
    "dme": "other",
    "pharmacy": "pharmacy",
}

SHADOW_ARRANGEMENTS: tuple[str, ...] = ("fpp", "cpr", "capitated")
"""Payment arrangements of shadow claims: paid 0 by the payer, allowed priced at FFS."""

BASES: tuple[str, ...] = ("ffs_paid", "paid", "allowed")
"""Amounts a TCOC can be measured on: FFS basis (paid + priced shadow claims), paid, allowed."""

COST_COLUMNS: tuple[str, ...] = (
    "allowed_cents",
    "paid_cents",
    "shadow_priced_cents",
    "excluded_payment_cents",
    "ffs_paid_cents",
)

CATEGORY_COLUMNS: tuple[str, ...] = tuple(
    f"{cat}_{amount}_cents" for cat in TCOC_CATEGORIES for amount in ("allowed", "ffs_paid")
)

COST_LINE_SCHEMA = {
    "source": "string",
    "claim_id": "string",
    "claim_line_number": "int64",
    "person_id": "string",
    "member_id": "string",
    "payer": "string",
    "plan": "string",
    "service_date": "date",
    "service_month": "date",
    "service_category": "string",
    "tcoc_category": "string",
    "payment_arrangement": "string",
    "allowed_cents": "int64",
    "paid_cents": "int64",
    "shadow_priced_cents": "int64",
    "excluded_payment_cents": "int64",
    "ffs_paid_cents": "int64",
}


@dataclass(frozen=True)
class TcocScope:
    """What a program's TCOC counts: TCOC categories (MSSP: Parts A and B, so no pharmacy).

    Payments that are not part of the cost (MSSP: IME, DSH and uncompensated-care amounts) are
    removed line by line with the `payment_exclusions` table of :func:`cost_lines`.
    """

    categories: tuple[str, ...] = TCOC_CATEGORIES
    label: str = "all services"

    def __post_init__(self) -> None:
        bad = [c for c in self.categories if c not in TCOC_CATEGORIES]
        if bad or not self.categories:
            raise ValueError(f"unknown TCOC categories {bad}: expected some of {', '.join(TCOC_CATEGORIES)}")


MEDICARE_PARTS_A_B = TcocScope(
    categories=("inpatient", "outpatient", "ed", "professional", "other"), label="Medicare Parts A and B"
)


def scope_for(kind: str) -> TcocScope:
    """The default TCOC scope of a program kind: Parts A and B for Medicare, all services otherwise."""
    return MEDICARE_PARTS_A_B if kind == "medicare" else TcocScope()


def _tcoc_category(service_category: ir.StringValue) -> ir.StringValue:
    return ibis.cases(
        *[(service_category == k, v) for k, v in CATEGORY_OF_SERVICE.items()],
        else_="other",
    )


def cost_lines(
    medical_lines: ir.Table | None,
    pharmacy_lines: ir.Table | None = None,
    payment_exclusions: ir.Table | None = None,
) -> ir.Table:
    """Net claim lines narrowed to cost columns, medical and pharmacy in one table.

    Input: :func:`allpayer.core.claims.medical_claim_lines` and/or ``pharmacy_claim_lines``.
    `payment_exclusions` (optional): ``claim_id``, ``claim_line_number``, ``excluded_cents``
    (amounts inside the paid amount that the TCOC leaves out, e.g. IME/DSH/uncompensated care).

    Grain: (source, claim_id, claim_line_number). Columns: see ``COST_LINE_SCHEMA``:
    ``shadow_priced_cents`` = allowed for shadow claims (else 0); ``ffs_paid_cents`` = paid +
    shadow priced - excluded payments; ``tcoc_category`` from the service category.
    """
    parts = []
    if medical_lines is not None:
        m = medical_lines
        shadow = m.payment_arrangement.isin(SHADOW_ARRANGEMENTS)
        parts.append(
            m.select(
                source=ibis.literal("medical"),
                claim_id=m.claim_id.cast("string"),
                claim_line_number=m.claim_line_number.cast("int64"),
                person_id=m.person_id,
                member_id=m.member_id,
                payer=m.payer,
                plan=m.plan,
                service_date=m.service_date,
                service_month=m.service_month,
                service_category=m.service_category,
                payment_arrangement=m.payment_arrangement,
                allowed_cents=m.allowed_cents.cast("int64"),
                paid_cents=m.paid_cents.cast("int64"),
                shadow_priced_cents=ibis.ifelse(shadow, m.allowed_cents, 0).cast("int64"),
            )
        )
    if pharmacy_lines is not None:
        r = pharmacy_lines
        parts.append(
            r.select(
                source=ibis.literal("pharmacy"),
                claim_id=r.claim_id.cast("string"),
                claim_line_number=r.claim_line_number.cast("int64"),
                person_id=r.person_id,
                member_id=r.member_id,
                payer=r.payer,
                plan=r.plan,
                service_date=r.service_date,
                service_month=r.service_month,
                service_category=ibis.literal("pharmacy"),
                payment_arrangement=ibis.literal("ffs"),
                allowed_cents=r.allowed_cents.cast("int64"),
                paid_cents=r.paid_cents.cast("int64"),
                shadow_priced_cents=ibis.literal(0).cast("int64"),
            )
        )
    if not parts:
        raise ValueError("cost_lines needs medical or pharmacy lines")
    lines = parts[0] if len(parts) == 1 else parts[0].union(parts[1], distinct=False)
    if payment_exclusions is not None:
        x = payment_exclusions.group_by(
            _x_claim_id=payment_exclusions.claim_id.cast("string"),
            _x_line=payment_exclusions.claim_line_number.cast("int64"),
        ).aggregate(_x_cents=payment_exclusions.excluded_cents.cast("int64").sum())
        lines = lines.left_join(
            x, [(lines.source == "medical"), lines.claim_id == x._x_claim_id, lines.claim_line_number == x._x_line]
        )
        lines = lines.mutate(excluded_payment_cents=lines._x_cents.fill_null(0).cast("int64"))
        lines = lines.drop("_x_claim_id", "_x_line", "_x_cents")
    else:
        lines = lines.mutate(excluded_payment_cents=ibis.literal(0).cast("int64"))
    lines = lines.mutate(
        tcoc_category=_tcoc_category(lines.service_category),
        ffs_paid_cents=(lines.paid_cents + lines.shadow_priced_cents - lines.excluded_payment_cents).cast("int64"),
    )
    return lines.select(*COST_LINE_SCHEMA)



def _scope_test(t: ir.Table, scope: TcocScope | Mapping[str, TcocScope] | None) -> ir.BooleanValue:
    """Whether each line's TCOC category counts in its program's scope (programs missing from a
    mapping: all services); NULL for a NULL category.

    Each scope is written as ``|cat|cat|`` and the test is one substring search, so the category
    is read once. DuckDB copies a column's defining expression into every comparison that reads
    it (on lines that are not stored, the category is a CASE over the service category, itself a
    CASE: with one comparison per category, the leakage of a handful of such lines took 26 s
    instead of 1), and it runs ``category IN (five or more names)`` as a join per line."""
    if scope is None:
        scope = TcocScope()

    def listed(s: TcocScope) -> ir.StringValue:
        return ibis.literal("|" + "|".join(s.categories) + "|")

    if isinstance(scope, TcocScope):
        categories = listed(scope)
    else:
        default = listed(TcocScope())
        categories = ibis.cases(*[(t.program_id == pid, listed(s)) for pid, s in sorted(scope.items())],
                                else_=default) if scope else default
    return categories.contains("|" + t.tcoc_category + "|")


PROGRAM_MONTH_KEYS: tuple[str, ...] = ("program_id", "person_id", "member_id", "payer", "plan", "month",
                                       "plans_in_month")
"""What ties a claim line or an event to a program member month (with its service month): the
person, payer and month, and a plan of the month (its ``plan``, or one of its ``plans_in_month``
when the person held several of the program's plans in it; a table without that column: none).
A member month is one person's (``allpayer.core.member_months.eligibility_months``), so the claims
filed under any member id of the person count in it; ``member_id`` is the month's own, which an
event takes."""


def _program_month_keys(program_months: ir.Table, prefix: str, unique_months: bool) -> ir.Table:
    """`PROGRAM_MONTH_KEYS` of `program_months`, each named `prefix` + key, made distinct unless the
    caller vouches that they are unique already (`unique_months`: see :func:`program_lines`), with
    `prefix` + ``line_plan``: a plan whose lines count in the member month. A month of one plan
    has one row (its plan); a month of several (``plans_in_month``, rare) one row per plan held,
    so that lines join it on equal keys alone (a join condition testing the list would not be a
    hash join: at state scale every line against every member month)."""
    pm = program_months
    if "plans_in_month" not in pm.columns:
        pm = pm.mutate(plans_in_month=ibis.null("string"))
    pm = pm.select(**{prefix + k: k for k in PROGRAM_MONTH_KEYS})
    pm = pm if unique_months else pm.distinct()
    plans = pm[prefix + "plans_in_month"]
    one = pm.filter(plans.isnull()).mutate(**{prefix + "line_plan": pm[prefix + "plan"]})
    several = pm.filter(plans.notnull())
    several = several.mutate(**{prefix + "line_plan": several[prefix + "plans_in_month"].re_split(r"\|").unnest()})
    several = several.filter(several[prefix + "line_plan"] != "")
    return ibis.union(one, several, distinct=False)


def _in_program_month(pm: ir.Table, prefix: str, person_id: ir.Value, payer: ir.Value, plan: ir.Value,
                      month: ir.Value) -> list[ir.BooleanValue]:
    """The join conditions of a line's or event's keys to the keys :func:`_program_month_keys` gave
    `pm`: its person, payer, plan and month, the plan one whose lines count in the month."""
    return [
        pm[prefix + "person_id"] == person_id,
        pm[prefix + "payer"] == payer,
        pm[prefix + "line_plan"] == plan,
        pm[prefix + "month"] == month,
    ]


def program_lines(
    lines: ir.Table,
    program_months: ir.Table,
    scope: TcocScope | Mapping[str, TcocScope] | None = None,
    *,
    unique_months: bool = False,
) -> ir.Table:
    """Cost lines with the program whose member month they fall in.

    A line belongs to a program when its person_id, payer and service month are those of one of
    the program's member months and its plan is the month's plan, or one of the month's
    ``plans_in_month`` (a person who changed plan within the month has one member month, in
    which the claims of both plans count once; so do the claims filed under each member id of a
    person whose id the payer reissued within the month). Grain: (source, claim_id,
    claim_line_number, program_id); lines in no program month keep a NULL program_id. Adds ``program_id``,
    ``in_scope`` (category counted by the program's scope) and ``disposition``: ``in_program``,
    ``out_of_scope`` or ``outside_program_months``.

    `unique_months`: the caller vouches that `program_months` has one row per (program_id,
    person_id, month), as :func:`allpayer.core.programs.program_months` and
    :func:`allpayer.core.targets.base_population_months` build them; the lines then join them as
    they are. Otherwise their keys are made distinct first (a repeated member month would count
    its lines twice), which at state scale is a grouping of millions of rows.
    """
    return _program_lines(lines, program_months, scope, unique_months).drop("_pm_plan")


def _program_lines(lines: ir.Table, program_months: ir.Table, scope, unique_months: bool) -> ir.Table:
    """:func:`program_lines`, with ``_pm_plan``, the plan of the member month a line joined."""
    pm = _program_month_keys(program_months, "_pm_", unique_months)
    j = lines.left_join(pm, _in_program_month(pm, "_pm_", lines.person_id, lines.payer, lines.plan,
                                              lines.service_month))
    j = j.mutate(program_id=j._pm_program_id).drop(*[f"_pm_{k}" for k in (*PROGRAM_MONTH_KEYS, "line_plan")
                                                     if k != "plan"])
    in_scope = _scope_test(j, scope)
    j = j.mutate(in_scope=j.program_id.notnull() & in_scope)
    return j.mutate(
        disposition=ibis.cases(
            (j.program_id.isnull(), "outside_program_months"),
            (j.in_scope, "in_program"),
            else_="out_of_scope",
        )
    )


def _line_count(t: ir.Table) -> ir.IntegerValue:
    """How many cost lines a group of `t` holds: its rows, or the sum of their ``claim_lines`` when
    they are lines already summed (:func:`summed_cost_lines`)."""
    return t.claim_lines.sum() if "claim_lines" in t.columns else t.count()


def _cost_aggregates(t: ir.Table, columns: Sequence[str]) -> dict[str, ir.Value]:
    """The sums (and line count) named in `columns` of a group of cost lines. A category amount
    sums a CASE (NULL outside the category) rather than a filtered sum: the same value, and on
    DuckDB the cheaper of the two (the member-month sums of 100,000 members: 3.1 against 3.6 CPU s)."""
    aggs: dict[str, ir.Value] = {c: t[c].sum() for c in COST_COLUMNS if c in columns}
    if "claim_lines" in columns:
        aggs["claim_lines"] = _line_count(t)
    for cat in TCOC_CATEGORIES:
        for amount in ("allowed", "ffs_paid"):
            name = f"{cat}_{amount}_cents"
            if name in columns:
                aggs[name] = ibis.ifelse(t.tcoc_category == cat, t[f"{amount}_cents"], ibis.null("int64")).sum()
    return aggs


MEMBER_MONTH_AMOUNTS: tuple[str, ...] = (*COST_COLUMNS, *CATEGORY_COLUMNS, "claim_lines")
"""The amount columns of :func:`member_month_cost`, in cents, and its count of lines."""

PROGRAM_LINE_COLUMNS: tuple[str, ...] = (
    "person_id", "payer", "plan", "service_month", "tcoc_category", *COST_COLUMNS,
)
"""The columns of :func:`cost_lines` that :func:`member_month_cost` and :func:`cost_reconciliation`
read."""

SUMMED_LINE_KEYS: tuple[str, ...] = ("person_id", "payer", "plan", "service_month", "tcoc_category")
"""What tells cost lines apart for :func:`member_month_cost` and :func:`cost_reconciliation`."""


def summed_cost_lines(lines: ir.Table) -> ir.Table:
    """:func:`cost_lines` summed per person, payer, plan, service month and TCOC category, with
    ``claim_lines``, how many lines each row stands for: what a run stores. The member-month costs
    and the reconciliation read these rows exactly as they read the lines (amounts are whole cents,
    so sums of sums are the sums; a sum over lines that are all NULL stays NULL), so a union of
    several parts' sums (the run sums medical and pharmacy lines apart) reads the same too."""
    return lines.group_by(list(SUMMED_LINE_KEYS)).aggregate(
        claim_lines=lines.count(), **{c: lines[c].sum() for c in COST_COLUMNS}
    )


def member_month_cost(
    lines: ir.Table,
    program_months: ir.Table,
    scope: TcocScope | Mapping[str, TcocScope] | None = None,
    *,
    amounts: Sequence[str] = MEMBER_MONTH_AMOUNTS,
    unique_months: bool = False,
) -> ir.Table:
    """Cost of each program member month, in total and by TCOC category.

    `lines`: :func:`cost_lines`. `program_months`: :func:`allpayer.core.programs.program_months`
    (or any table with program_id, person_id, member_id, payer, plan, month). `scope`: one
    :class:`TcocScope` for all programs, or one per program id (others: all services).
    `amounts`: the columns of ``MEMBER_MONTH_AMOUNTS`` to compute (default all), e.g. only the
    cost basis that a target reads: each sum is a large share of the query.
    `unique_months`: as :func:`program_lines`.

    Grain: (program_id, person_id, month), and so (program_id, member_id, month): every program
    member month, with zero cost when it has no claims. Columns: the program-month columns,
    ``year``, ``claim_lines``, ``allowed_cents``, ``paid_cents``, ``shadow_priced_cents``,
    ``excluded_payment_cents``, ``ffs_paid_cents`` and ``<category>_allowed_cents`` /
    ``<category>_ffs_paid_cents`` for each TCOC category.
    """
    unknown = [c for c in amounts if c not in MEMBER_MONTH_AMOUNTS]
    if unknown or not amounts:
        raise ValueError(f"unknown member-month amounts {unknown}: expected some of {', '.join(MEMBER_MONTH_AMOUNTS)}")
    pl = _program_lines(lines, program_months, scope, unique_months)
    pl = pl.filter(pl.in_scope)
    costs = pl.group_by(
        _c_program_id=pl.program_id, _c_person_id=pl.person_id, _c_payer=pl.payer, _c_plan=pl._pm_plan,
        _c_month=pl.service_month,
    ).aggregate(**_cost_aggregates(pl, amounts))
    pm = program_months
    j = pm.left_join(
        costs,
        [
            pm.program_id == costs._c_program_id,
            pm.person_id == costs._c_person_id,
            pm.payer == costs._c_payer,
            pm.plan == costs._c_plan,
            pm.month == costs._c_month,
        ],
    )
    j = j.drop("_c_program_id", "_c_person_id", "_c_payer", "_c_plan", "_c_month")
    filled = {c: j[c].fill_null(0).cast("int64") for c in MEMBER_MONTH_AMOUNTS if c in amounts}
    return j.mutate(year=j.month.year().cast("int32"), **filled)


def cost_reconciliation(
    lines: ir.Table,
    program_months: ir.Table,
    scope: TcocScope | Mapping[str, TcocScope] | None = None,
    *,
    unique_months: bool = False,
) -> ir.Table:
    """Where every cost line went: into a program's TCOC, out of its scope, or outside any program
    member month (e.g. claims in months the member was not in a program).

    Grain: (payer, service_year, program_id, disposition); program_id is NULL for lines outside
    program months. Columns: ``claim_lines``, ``allowed_cents``, ``paid_cents``,
    ``shadow_priced_cents``, ``excluded_payment_cents``, ``ffs_paid_cents``. Summed over
    dispositions the amounts equal the input lines' amounts (a line counts once per program).
    `unique_months`: as :func:`program_lines`.
    """
    pl = program_lines(lines, program_months, scope, unique_months=unique_months)
    return pl.group_by(
        payer=pl.payer,
        service_year=pl.service_month.year().cast("int32"),
        program_id=pl.program_id,
        disposition=pl.disposition,
    ).aggregate(claim_lines=_line_count(pl), **{c: pl[c].sum() for c in COST_COLUMNS})


# ------------------------------------------------------------------------------------------------
# member-year cost and truncation


def _basis_column(basis: str) -> str:
    if basis not in BASES:
        raise RunError(f"unknown cost basis {basis!r}: expected one of {', '.join(BASES)}")
    return f"{basis}_cents"


def member_year_cost(member_month_cost: ir.Table, segment_by: Sequence[str] = ()) -> ir.Table:
    """Each member's cost per program and year, split by truncation group (and `segment_by`).

    The truncation group is the Medicare enrollment type (esrd, disabled, aged_dual,
    aged_nondual) or ``all`` for other payers: a member who changes enrollment type has one row per
    type, each annualized on its own months (MSSP). `segment_by` adds columns of the member-month
    table to the grain (e.g. a rate cell).

    Grain: (program_id, member_id, year, truncation_group, *segment_by). Columns: ``person_id``,
    ``eligible_months``, and the cost and category columns of the input, summed.
    """
    m = member_month_cost
    group = ibis.coalesce(m.enrollment_type, ibis.literal("all")) if "enrollment_type" in m.columns else ibis.literal("all")
    m = m.mutate(truncation_group=group)
    keys = ["program_id", "member_id", "year", "truncation_group", *segment_by]
    sums = [c for c in ("claim_lines", *COST_COLUMNS, *CATEGORY_COLUMNS) if c in m.columns]
    return m.group_by(keys).aggregate(
        person_id=m.person_id.min(),
        eligible_months=m.count(),
        **{c: m[c].sum() for c in sums},
    )


THRESHOLD_SCHEMA = {"year": "int32", "truncation_group": "string", "threshold_cents": "int64"}


def threshold_table(rows: Mapping[tuple[int, str], object]) -> ir.Table:
    """A supplied threshold table from ``{(year, truncation_group): dollars}`` (group ``all``
    applies to every group without its own row).

    >>> from decimal import Decimal
    >>> t = threshold_table({(2024, "all"): Decimal("150000.00")})
    >>> ibis.duckdb.connect().to_pyarrow(t).to_pylist()
    [{'year': 2024, 'truncation_group': 'all', 'threshold_cents': 15000000}]
    """
    from allpayer.money import dollars_to_cents

    keys = sorted(rows)
    return ibis.memtable(
        {
            "year": [k[0] for k in keys],
            "truncation_group": [k[1] for k in keys],
            "threshold_cents": [dollars_to_cents(rows[k]) for k in keys],
        },
        schema=ibis.schema(THRESHOLD_SCHEMA),
    )


def _percentile_parts(p: Decimal) -> tuple[int, int]:
    p = Decimal(p)
    if not Decimal(0) < p <= Decimal(1):
        raise RunError(f"truncation percentile {p} is outside (0, 1]")
    num, den = p.as_integer_ratio()
    return num, den


def with_annualized(member_years: ir.Table, basis: str = "ffs_paid") -> ir.Table:
    """Add ``cost_cents`` (the `basis` amount) and ``annualized_cents``: cost x 12 / eligible
    months, rounded half-up to cents (kept when already there)."""
    if "annualized_cents" in member_years.columns:
        return member_years
    col = _basis_column(basis)
    t = member_years.mutate(cost_cents=member_years[col])
    return div_round(t, "annualized_cents", t.cost_cents.cast(INT) * int_literal(12), t.eligible_months).mutate(
        annualized_cents=lambda x: x.annualized_cents.cast("int64")
    )


def truncation_thresholds(
    member_years: ir.Table,
    *,
    basis: str = "ffs_paid",
    percentile: Decimal | str | None = None,
    thresholds: ir.Table | int | None = None,
    combine: str = "max",
) -> ir.Table:
    """The truncation threshold of each (program_id, year, truncation_group).

    `thresholds`: supplied dollar thresholds, one integer number of cents for every group or a
    table ``year, truncation_group, threshold_cents`` (:func:`threshold_table`; a ``all`` row covers
    groups without their own row). `percentile` (e.g. ``"0.99"``): the nearest-rank percentile of
    the members' annualized costs in the group: sort the annualized cents ascending and take the
    value at rank ``ceil(p x N)`` (N = member rows in the group), an exact whole number of cents.
    With both, `combine` picks the larger (``max``, domain.md R2.5) or the smaller (``min``).

    Columns: program_id, year, truncation_group, members, percentile, percentile_rank,
    percentile_threshold_cents, dollar_threshold_cents, threshold_cents, threshold_rule
    (``dollar``, ``percentile`` or NULL when there is no threshold).
    """
    if percentile is None and thresholds is None:
        raise RunError("truncation needs a dollar threshold, a percentile, or both")
    if combine not in ("max", "min"):
        raise RunError(f"unknown truncation combine {combine!r}: expected max or min")
    t = with_annualized(member_years, basis)
    keys = ["program_id", "year", "truncation_group"]
    groups = t.group_by(keys).aggregate(members=t.count())

    if percentile is not None:
        num, den = _percentile_parts(Decimal(str(percentile)))
        # nearest rank k = max(1, ceil(p x N)): the k-th smallest value, found without dividing:
        # k x den >= num x N and (k - 1) x den < num x N.
        w = ibis.window(
            group_by=[t.program_id, t.year, t.truncation_group],
            order_by=[t.annualized_cents, t.member_id, *[t[c] for c in t.columns if c not in (*keys, "member_id") and c.endswith("_id")]],
        )
        ranked = t.mutate(_rank=(ibis.row_number().over(w) + 1).cast("int64"))
        ranked = ranked.select(
            _k_program_id="program_id", _k_year="year", _k_group="truncation_group", _rank="_rank",
            _value="annualized_cents",
        )
        groups = groups.left_join(
            ranked,
            [
                groups.program_id == ranked._k_program_id,
                groups.year == ranked._k_year,
                groups.truncation_group == ranked._k_group,
                (ranked._rank.cast(INT) * int_literal(den) >= groups.members.cast(INT) * int_literal(num))
                & (((ranked._rank - 1).cast(INT) * int_literal(den) < groups.members.cast(INT) * int_literal(num))
                   | (ranked._rank == 1)),
            ],
        )
        groups = groups.mutate(
            percentile=ibis.literal(str(Decimal(str(percentile)))),
            percentile_rank=groups._rank,
            percentile_threshold_cents=groups._value.cast("int64"),
        ).drop("_k_program_id", "_k_year", "_k_group", "_rank", "_value")
    else:
        groups = groups.mutate(
            percentile=ibis.null("string"),
            percentile_rank=ibis.null("int64"),
            percentile_threshold_cents=ibis.null("int64"),
        )

    if thresholds is None:
        groups = groups.mutate(dollar_threshold_cents=ibis.null("int64"))
    elif isinstance(thresholds, int):
        groups = groups.mutate(dollar_threshold_cents=ibis.literal(int(thresholds), "int64"))
    else:
        s = thresholds.select(
            _s_year=thresholds.year.cast("int32"),
            _s_group=thresholds.truncation_group,
            _s_cents=thresholds.threshold_cents.cast("int64"),
        )
        own = s.filter(s._s_group != "all")
        every = s.filter(s._s_group == "all").select(_a_year="_s_year", _a_cents="_s_cents")
        groups = groups.left_join(own, [groups.year == own._s_year, groups.truncation_group == own._s_group])
        groups = groups.left_join(every, [groups.year == every._a_year])
        groups = groups.mutate(dollar_threshold_cents=ibis.coalesce(groups._s_cents, groups._a_cents)).drop(
            "_s_year", "_s_group", "_s_cents", "_a_year", "_a_cents"
        )

    d, pc = groups.dollar_threshold_cents, groups.percentile_threshold_cents
    if combine == "max":
        pick_pct = pc.notnull() & (d.isnull() | (pc > d))
    else:
        pick_pct = pc.notnull() & (d.isnull() | (pc < d))
    rule = ibis.cases((pick_pct, "percentile"), (d.notnull(), "dollar"), else_=ibis.null("string"))
    groups = groups.mutate(threshold_rule=rule)
    groups = groups.mutate(
        threshold_cents=ibis.cases(
            (groups.threshold_rule == "percentile", pc), (groups.threshold_rule == "dollar", d), else_=ibis.null("int64")
        )
    )
    return groups.select(
        "program_id", "year", "truncation_group", "members", "percentile", "percentile_rank",
        "percentile_threshold_cents", "dollar_threshold_cents", "threshold_cents", "threshold_rule",
    )


def truncate(member_years: ir.Table, thresholds: ir.Table, *, basis: str = "ffs_paid") -> ir.Table:
    """Cap each member-year's annualized cost at its group's threshold, scaled back.

    A row exceeds when ``cost x 12 > threshold x eligible_months`` (exact integers); its truncated
    cost is then ``threshold x eligible_months / 12`` rounded half-up to cents, else its cost.

    Grain: that of `member_years`. Adds ``cost_cents`` (the basis amount), ``annualized_cents``,
    ``threshold_cents``, ``threshold_rule``, ``exceeds_threshold``, ``truncated_cost_cents`` and
    ``truncated_amount_cents`` (cost minus truncated cost, never negative).
    """
    t = with_annualized(member_years, basis)
    th = thresholds.select(
        _t_program_id="program_id", _t_year="year", _t_group="truncation_group",
        threshold_cents="threshold_cents", threshold_rule="threshold_rule",
    )
    t = t.left_join(th, [t.program_id == th._t_program_id, t.year == th._t_year, t.truncation_group == th._t_group])
    t = t.drop("_t_program_id", "_t_year", "_t_group")
    exceeds = t.threshold_cents.notnull() & (
        t.cost_cents.cast(INT) * int_literal(12) > t.threshold_cents.cast(INT) * t.eligible_months.cast(INT)
    )
    t = t.mutate(exceeds_threshold=exceeds.fill_null(False))
    t = div_round(t, "_scaled_cap", t.threshold_cents.cast(INT) * t.eligible_months.cast(INT), ibis.literal(12))
    t = t.mutate(
        truncated_cost_cents=ibis.ifelse(t.exceeds_threshold, t._scaled_cap.cast("int64"), t.cost_cents)
    ).drop("_scaled_cap")
    return t.mutate(truncated_amount_cents=t.cost_cents - t.truncated_cost_cents)


@dataclass(frozen=True)
class Truncation:
    """Truncated member-years, the thresholds used and a summary per group."""

    member_years: ir.Table
    thresholds: ir.Table
    summary: ir.Table


def truncation(
    member_years: ir.Table,
    *,
    basis: str = "ffs_paid",
    percentile: Decimal | str | None = None,
    thresholds: ir.Table | int | None = None,
    combine: str = "max",
) -> Truncation:
    """Thresholds (:func:`truncation_thresholds`), truncated member-years (:func:`truncate`) and a
    summary with grain (program_id, year, truncation_group): members, member_months, cost_cents,
    truncated_cost_cents, truncated_amount_cents, truncated_members, threshold_cents, threshold_rule.
    """
    annualized = with_annualized(member_years, basis)
    th = truncation_thresholds(annualized, basis=basis, percentile=percentile, thresholds=thresholds, combine=combine)
    my = truncate(annualized, th, basis=basis)
    s = my.group_by("program_id", "year", "truncation_group").aggregate(
        members=my.count(),
        member_months=my.eligible_months.sum(),
        cost_cents=my.cost_cents.sum(),
        truncated_cost_cents=my.truncated_cost_cents.sum(),
        truncated_amount_cents=my.truncated_amount_cents.sum(),
        truncated_members=my.exceeds_threshold.cast("int64").sum(),
    )
    thc = th.select(
        _h_program_id="program_id", _h_year="year", _h_group="truncation_group",
        threshold_cents="threshold_cents", threshold_rule="threshold_rule",
    )
    s = s.left_join(thc, [s.program_id == thc._h_program_id, s.year == thc._h_year, s.truncation_group == thc._h_group])
    s = s.drop("_h_program_id", "_h_year", "_h_group")
    return Truncation(member_years=my, thresholds=th, summary=s)


def split_truncated_amounts(member_years: ir.Table, segments: ir.Table, segment: str, *,
                            basis: str = "ffs_paid") -> ir.Table:
    """Each member-year's amount above its threshold split over its `segment` values.

    `member_years`: :func:`truncate`'s rows (or :attr:`Truncation.member_years`); `segments`:
    :func:`member_year_cost` of the same member months with ``segment_by=[segment]`` (e.g. a rate
    cell or an employer). A member-year's ``truncated_amount_cents`` goes to its segments in
    proportion to its `basis` cost in each (negative costs weigh 0), by largest remainder: the
    floor of each exact share, then one cent each to the largest remainders (ties to the lower
    segment value, NULL last), so the parts add up to the member-year's amount.

    Grain: (program_id, member_id, year, truncation_group, `segment`) of the member-years with an
    amount truncated. Column: ``truncated_amount_cents``.
    """
    col = _basis_column(basis)
    keys = ["program_id", "member_id", "year", "truncation_group"]
    my = member_years.filter(member_years.truncated_amount_cents > 0)
    my = my.select(*[my[k].name(f"_t_{k}") for k in keys], _cut="truncated_amount_cents")
    j = segments.join(my, [segments[k] == my[f"_t_{k}"] for k in keys])
    j = j.mutate(_w=ibis.greatest(j[col], 0).cast(INT))
    member = ibis.window(group_by=[j[k] for k in keys])
    j = j.mutate(_total=j._w.sum().over(member), _num=j._w * j._cut.cast(INT))
    j = div_round(j, "_floor", j._num, j._total, "down")
    j = j.mutate(_rem=j._num - j._floor * j._total)
    j = j.mutate(_left=j._cut.cast(INT) - j._floor.sum().over(member))
    ranked = ibis.window(group_by=[j[k] for k in keys],
                         order_by=[ibis.desc(j._rem), j[segment].isnull(), j[segment].fill_null("")])
    j = j.mutate(_part=j._floor + ibis.ifelse(ibis.row_number().over(ranked) < j._left, 1, 0))
    return j.select(*keys, segment, truncated_amount_cents=j._part.cast("int64"))


TRUNCATED_POPULATIONS: dict[str, tuple[str, ...]] = {
    "base": ("base", "base_and_performance"),
    "performance": ("performance", "base_and_performance"),
}
"""The values of ``target.truncation.apply_to`` that truncate each population's costs."""


def truncation_settings(program, basis_date: dt.date | None = None, *,
                        population: str = "performance") -> dict[str, object]:
    """Keyword arguments of :func:`truncation` from a program's ``target.truncation`` terms, for
    the costs of `population` (``performance``: the performance year's actual; ``base``: the
    base years the target is built on).

    The dollar threshold is the dated value on `basis_date` (default: the effective start).
    Returns ``{}`` when the program has no truncation, or when its ``apply_to`` leaves
    `population` out (``apply_to: base`` does not truncate the performance year).
    """
    from allpayer.money import dollars_to_cents

    tr = program.target.truncation
    if tr is None or tr.apply_to not in TRUNCATED_POPULATIONS[population]:
        return {}
    when = basis_date or program.effective.start
    out: dict[str, object] = {"combine": tr.combine}
    if tr.threshold is not None:
        out["thresholds"] = dollars_to_cents(tr.threshold.at(when))
    if tr.percentile is not None:
        out["percentile"] = tr.percentile.value
    return out


# ------------------------------------------------------------------------------------------------
# completion factors (IBNR)


def claim_payment_rows(
    medical_claim: ir.Table | None,
    pharmacy_claim: ir.Table | None = None,
    *,
    basis: str = "ffs_paid",
    incurred_between: tuple[dt.date, dt.date] | None = None,
) -> ir.Table:
    """Raw claim rows (each adjustment row on its own paid date) as payments for a lag triangle.

    Columns: source, payer, plan, incurred_month (the row's service month), paid_date, paid_month,
    amount_cents (on `basis`: ffs_paid = paid, or allowed for shadow claims; paid; allowed).
    `incurred_between`: (first, last) service dates; the rows served outside are left out before
    anything is computed of them (:func:`completion_window` gives what :func:`completion` reads).
    """
    from allpayer.core.claims import cents, served_between

    _basis_column(basis)
    parts = []
    if medical_claim is not None:
        m = medical_claim
        service = m.claim_line_start_date.fill_null(m.claim_start_date) if "claim_line_start_date" in m.columns else m.claim_start_date
        shadow = m.payment_arrangement.isin(SHADOW_ARRANGEMENTS)
        paid, allowed = cents(m.paid_amount), cents(m.allowed_amount)
        amount = {"paid": paid, "allowed": allowed, "ffs_paid": ibis.ifelse(shadow, allowed, paid)}[basis]
        parts.append(m.select(source=ibis.literal("medical"), payer=m.payer, plan=m.plan, service=service,
                              paid_date=m.paid_date, amount_cents=amount.cast("int64")))
    if pharmacy_claim is not None:
        r = pharmacy_claim
        amount = cents(r.allowed_amount) if basis == "allowed" else cents(r.paid_amount)
        parts.append(r.select(source=ibis.literal("pharmacy"), payer=r.payer, plan=r.plan, service=r.dispensing_date,
                              paid_date=r.paid_date, amount_cents=amount.cast("int64")))
    if not parts:
        raise ValueError("claim_payment_rows needs medical or pharmacy claims")
    if incurred_between is not None:
        parts = [served_between(part, *incurred_between, column="service") for part in parts]
    rows = parts[0] if len(parts) == 1 else parts[0].union(parts[1], distinct=False)
    return rows.mutate(incurred_month=_month_of(rows.service), paid_month=_month_of(rows.paid_date)).drop("service")


def completion_window(paid_through: dt.date, history_months: int = 24) -> tuple[dt.date, dt.date]:
    """The service dates :func:`completion` reads with the same `paid_through` and
    `history_months`: from the first day of the earliest incurred month to `paid_through`."""
    valuation = dt.date(paid_through.year, paid_through.month, 1)
    return _month_list(valuation, history_months)[0], paid_through


def _month_list(last: dt.date, count: int) -> list[dt.date]:
    out, y, m = [], last.year, last.month
    for _ in range(count):
        out.append(dt.date(y, m, 1))
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
    return sorted(out)


@dataclass(frozen=True)
class Completion:
    """Paid-lag triangle, development factors and completion per incurred month (see
    :func:`completion`)."""

    triangle: ir.Table
    factors: ir.Table
    by_month: ir.Table
    valuation_month: dt.date
    max_lag: int


def completion(
    payments: ir.Table,
    paid_through: dt.date,
    *,
    max_lag: int = 12,
    history_months: int = 24,
    group_by: Sequence[str] = ("payer",),
) -> Completion:
    """Chain-ladder completion factors from a paid-lag triangle.

    `payments`: :func:`claim_payment_rows`. `paid_through` must be the last day of a month (the
    valuation month). Rows paid after it are ignored. Lags are whole calendar months from the
    incurred month to the paid month; lags of `max_lag` or more are pooled in lag `max_lag`, which
    is treated as complete (tail factor 1); a row paid before its incurred month counts at lag 0.

    - ``triangle``: grain (*group_by, incurred_month, lag) for the `history_months` incurred months
      up to the valuation month: paid_cents, cumulative_cents, observed (the cell is on or before
      the valuation diagonal).
    - ``factors``: grain (*group_by, lag) for lags 0..max_lag: age_to_age_factor (lag -> lag + 1,
      volume weighted: sum of cumulative paid at lag + 1 over sum at lag, over incurred months
      observed at lag + 1; 1 when there is nothing to divide), numerator_cents, denominator_cents,
      incurred_months, cumulative_development_factor (product of the age-to-age factors from the
      lag to the tail, rounded to 10 decimals at each step) and completion_factor (its inverse).
    - ``by_month``: grain (*group_by, incurred_month): latest_lag, paid_to_date_cents,
      development_factor, completion_factor, ibnr_cents (paid to date x (development factor - 1),
      half-up to cents) and estimated_incurred_cents (paid plus IBNR, kept as separate columns).
    """
    if max_lag < 1 or history_months < 1:
        raise RunError("completion needs max_lag >= 1 and history_months >= 1")
    next_day = paid_through + dt.timedelta(days=1)
    if next_day.day != 1:
        before = paid_through.replace(day=1) - dt.timedelta(days=1)
        raise RunError(f"paid-through date {paid_through} is not the last day of a month: completion "
                       f"factors need whole paid months (use {before}, the month end before it)")
    valuation = dt.date(paid_through.year, paid_through.month, 1)
    months = _month_list(valuation, history_months)
    keys = list(group_by)
    v_index = valuation.year * 12 + valuation.month - 1

    p = payments.filter((payments.paid_date <= ibis.literal(paid_through))
                        & (payments.incurred_month >= ibis.literal(months[0]))
                        & (payments.incurred_month <= ibis.literal(valuation)))
    lag = month_index(p.paid_month) - month_index(p.incurred_month)
    p = p.mutate(lag=ibis.least(ibis.greatest(lag, 0), max_lag).cast("int64"))
    cells = p.group_by([*keys, "incurred_month", "lag"]).aggregate(paid_cents=p.amount_cents.sum())

    grid_months = ibis.memtable({"incurred_month": months}, schema={"incurred_month": "date"})
    grid_lags = ibis.memtable({"lag": list(range(max_lag + 1))}, schema={"lag": "int64"})
    groups = p.select(*keys).distinct()
    grid = groups.cross_join(grid_months).cross_join(grid_lags)
    c = cells.rename({f"_c_{k}": k for k in (*keys, "incurred_month", "lag")})
    tri = grid.left_join(c, [*(grid[k] == c[f"_c_{k}"] for k in keys), grid.incurred_month == c._c_incurred_month,
                             grid.lag == c._c_lag])
    tri = tri.select(*keys, "incurred_month", "lag", paid_cents=tri.paid_cents.fill_null(0).cast("int64"))
    w = ibis.window(group_by=[*(tri[k] for k in keys), tri.incurred_month], order_by=[tri.lag], rows=(None, 0))
    latest = (ibis.literal(v_index) - month_index(tri.incurred_month)).cast("int64")
    tri = tri.mutate(cumulative_cents=tri.paid_cents.sum().over(w).cast("int64"), latest_lag=latest)
    tri = tri.mutate(observed=(tri.lag <= tri.latest_lag))
    tri = checkpoint(tri, "completion_triangle")  # Spark: computed once, not once per branch that reads it
    triangle = tri.order_by([*keys, "incurred_month", "lag"])

    # age-to-age factors: pairs (lag, lag + 1) observed at lag + 1
    nxt = tri.select(*[tri[k].name(f"_n_{k}") for k in keys], _n_month=tri.incurred_month, _n_lag=tri.lag - 1,
                     _n_cum=tri.cumulative_cents)
    pairs = tri.filter((tri.lag < max_lag) & (tri.lag + 1 <= tri.latest_lag))
    pairs = pairs.join(nxt, [*(pairs[k] == nxt[f"_n_{k}"] for k in keys), pairs.incurred_month == nxt._n_month,
                             pairs.lag == nxt._n_lag])
    sums = pairs.group_by([*keys, "lag"]).aggregate(
        numerator_cents=pairs._n_cum.sum(), denominator_cents=pairs.cumulative_cents.sum(), incurred_months=pairs.count()
    )
    flags = groups.cross_join(grid_lags)
    s = sums.rename({f"_s_{k}": k for k in (*keys, "lag")})
    f = flags.left_join(s, [*(flags[k] == s[f"_s_{k}"] for k in keys), flags.lag == s._s_lag])
    f = f.select(
        *keys, "lag",
        numerator_cents=f.numerator_cents.fill_null(0).cast("int64"),
        denominator_cents=f.denominator_cents.fill_null(0).cast("int64"),
        incurred_months=f.incurred_months.fill_null(0).cast("int64"),
    )
    f = div_round(f, "_f_units", f.numerator_cents.cast(INT) * int_literal(10**SCALE), f.denominator_cents)
    usable = (f.lag < max_lag) & (f.denominator_cents > 0) & f._f_units.notnull()
    f = f.mutate(
        factor_units=ibis.ifelse(usable, f._f_units, int_literal(10**SCALE)),
        factor_rule=ibis.cases((f.lag >= max_lag, "tail"), (usable, "volume_weighted"), else_="no_data"),
    ).drop("_f_units")
    f = checkpoint(f, "completion_factors")  # Spark: computed once, not once per branch that reads it

    # cumulative development factors: products from the tail back, one column per lag
    wide = f.group_by(keys).aggregate(
        **{f"_f{j}": f.factor_units.max(where=f.lag == j) for j in range(max_lag)}
    ) if keys else f.aggregate(**{f"_f{j}": f.factor_units.max(where=f.lag == j) for j in range(max_lag)})
    wide = wide.mutate(**{f"_cdf{max_lag}": int_literal(10**SCALE)})
    for j in range(max_lag - 1, -1, -1):
        # factors are positive: round half-up of (f x cdf) / 10^10, exact, in one projection
        wide = wide.mutate(**{f"_cdf{j}": _exact_quotient(wide[f"_f{j}"] * wide[f"_cdf{j + 1}"], int_literal(10**SCALE),
                                                           "half_up")})
    wide = checkpoint(wide, "completion_cdf")  # Spark: computed once, not once per lag
    longs = [wide.select(*keys, lag=ibis.literal(j, "int64"), cdf_units=wide[f"_cdf{j}"]) for j in range(max_lag + 1)]
    cdf = longs[0]
    for other in longs[1:]:
        cdf = cdf.union(other, distinct=False)
    cd = cdf.rename({f"_d_{k}": k for k in (*keys, "lag")})
    f = f.left_join(cd, [*(f[k] == cd[f"_d_{k}"] for k in keys), f.lag == cd._d_lag]).drop(
        *[f"_d_{k}" for k in (*keys, "lag")]
    )
    f = div_round(f, "_cf_units", int_literal(10 ** (2 * SCALE)), f.cdf_units)
    factors = f.select(
        *keys, "lag", "numerator_cents", "denominator_cents", "incurred_months", "factor_rule",
        age_to_age_factor=units_to_decimal(f.factor_units),
        cumulative_development_factor=units_to_decimal(f.cdf_units),
        completion_factor=units_to_decimal(f._cf_units),
        cdf_units=f.cdf_units,
    ).order_by([*keys, "lag"])

    # by incurred month: paid to date, development factor at the latest lag, IBNR
    ptd = tri.group_by([*keys, "incurred_month"]).aggregate(
        paid_to_date_cents=tri.paid_cents.sum(), latest_lag=tri.latest_lag.max()
    )
    ptd = ptd.mutate(_lag=ibis.least(ptd.latest_lag, max_lag))
    fx = factors.select(*[factors[k].name(f"_x_{k}") for k in keys], _x_lag=factors.lag, _x_cdf=factors.cdf_units,
                        development_factor=factors.cumulative_development_factor,
                        completion_factor=factors.completion_factor)
    bm = ptd.left_join(fx, [*(ptd[k] == fx[f"_x_{k}"] for k in keys), ptd._lag == fx._x_lag])
    bm = div_round(bm, "_ibnr", bm.paid_to_date_cents.cast(INT) * (bm._x_cdf - int_literal(10**SCALE)),
                   int_literal(10**SCALE))
    bm = bm.mutate(ibnr_cents=bm._ibnr.cast("int64"))
    by_month = bm.select(
        *keys, "incurred_month", "latest_lag", "paid_to_date_cents", "development_factor", "completion_factor",
        "ibnr_cents", estimated_incurred_cents=bm.paid_to_date_cents + bm.ibnr_cents, cdf_units=bm._x_cdf,
    ).order_by([*keys, "incurred_month"])
    return Completion(triangle=triangle, factors=factors.drop("cdf_units"), by_month=by_month,
                      valuation_month=valuation, max_lag=max_lag)


def apply_completion(
    costs: ir.Table,
    completion_result: Completion,
    *,
    amount: str = "ffs_paid_cents",
    month: str = "month",
    group_by: Sequence[str] = ("payer",),
) -> ir.Table:
    """Add an IBNR estimate to monthly costs, next to the paid amount (never into it).

    `costs` has `group_by` columns (those of the completion), a `month` column and an `amount`
    column of cents. Adds ``development_factor``, ``completion_factor``, ``ibnr_cents`` (amount x
    (development factor - 1), half-up to cents), ``estimated_incurred_cents`` (amount + IBNR) and
    ``completion_rule``: ``estimated`` (factor applied), ``complete`` (incurred before the triangle's
    months: development assumed finished) or ``after_valuation`` (no estimate, IBNR 0).
    """
    bm = completion_result.by_month
    keys = list(group_by)
    x = bm.select(*[bm[k].name(f"_y_{k}") for k in keys], _y_month=bm.incurred_month, _y_cdf=bm.cdf_units,
                  _y_dev=bm.development_factor, _y_cf=bm.completion_factor)
    t = costs.left_join(x, [*(costs[k] == x[f"_y_{k}"] for k in keys), costs[month] == x._y_month])
    valuation = ibis.literal(completion_result.valuation_month)
    rule = ibis.cases(
        (t._y_cdf.notnull(), "estimated"),
        (t[month] > valuation, "after_valuation"),
        else_="complete",
    )
    t = t.mutate(completion_rule=rule, _cdf=t._y_cdf.fill_null(int_literal(10**SCALE)))
    t = div_round(t, "_ibnr", t[amount].cast(INT) * (t._cdf - int_literal(10**SCALE)), int_literal(10**SCALE))
    one = ibis.literal(Decimal(1), f"decimal(38, {SCALE})")
    t = t.mutate(
        development_factor=t._y_dev.fill_null(one),
        completion_factor=t._y_cf.fill_null(one),
        ibnr_cents=t._ibnr.cast("int64"),
    )
    t = t.mutate(estimated_incurred_cents=t[amount] + t.ibnr_cents)
    return t.drop(*[c for c in t.columns if c.startswith("_y_")], "_cdf", "_ibnr")


# ------------------------------------------------------------------------------------------------
# utilization

TRANSFER_DISPOSITIONS: tuple[str, ...] = ("02",)
"""Discharge dispositions that are transfers to another acute hospital (not an index stay)."""

EXPIRED_DISPOSITIONS: tuple[str, ...] = ("20", "40", "41", "42")
"""Discharge dispositions meaning the patient died (no readmission can follow)."""

PLANNED_ADMIT_TYPES: tuple[str, ...] = ("3",)
"""Admission type codes treated as planned (3 = elective): such admissions are not readmissions."""

EVENT_COUNTS = {"admission": "admissions", "ed_visit": "ed_visits", "readmission": "readmissions"}
"""Event types of :func:`utilization_events` and their count columns in :func:`utilization_rates`."""


def _facility_type(bill: ir.StringValue) -> ir.StringValue:
    b = bill.fill_null("")
    b3 = ibis.ifelse(b.length() == 4, b.substr(1, 3), b)
    return b3.substr(0, 2)


def inpatient_stays(medical_lines: ir.Table) -> ir.Table:
    """Inpatient stays from institutional claims with bill type 11x.

    A claim counts when it is not denied and its net allowed amount is positive. Claims of the same
    person with the same admission date (``admission_date``, else the claim start) are one stay
    (interim bills). Grain: (person_id, admission_date). Columns: member_id, payer, plan (of the
    stay's last-discharged claim), discharge_date (latest ``discharge_date`` or claim end),
    discharge_disposition_code and admit_type_code (of that claim), claims, first_claim_id,
    allowed_cents.
    """
    m = medical_lines
    m = m.filter((m.claim_type == "institutional") & (_facility_type(m.bill_type_code) == "11"))
    status = m.claim_status.fill_null("paid") if "claim_status" in m.columns else ibis.literal("paid")
    m = m.mutate(_denied=status == "denied")
    claims = m.group_by("claim_id").aggregate(
        person_id=m.person_id.max(),
        member_id=m.member_id.max(),
        payer=m.payer.max(),
        plan=m.plan.max(),
        admission_date=m.admission_date.fill_null(m.claim_start_date).min(),
        discharge_date=m.discharge_date.fill_null(m.claim_end_date).max(),
        discharge_disposition_code=m.discharge_disposition_code.max(),
        admit_type_code=m.admit_type_code.max(),
        allowed_cents=m.allowed_cents.sum(),
        denied=m._denied.max(),
    )
    claims = claims.filter(~claims.denied & (claims.allowed_cents > 0))
    w = ibis.window(
        group_by=[claims.person_id, claims.admission_date],
        order_by=[ibis.desc(claims.discharge_date), ibis.desc(claims.claim_id)],
    )
    claims = claims.mutate(
        _rn=ibis.row_number().over(w),
        claims=claims.count().over(ibis.window(group_by=[claims.person_id, claims.admission_date])),
        first_claim_id=claims.claim_id.min().over(ibis.window(group_by=[claims.person_id, claims.admission_date])),
        stay_allowed_cents=claims.allowed_cents.sum().over(ibis.window(group_by=[claims.person_id, claims.admission_date])),
    )
    last = claims.filter(claims._rn == 0)
    return last.select(
        "person_id", "admission_date", "member_id", "payer", "plan", "discharge_date", "discharge_disposition_code",
        "admit_type_code", "claims", "first_claim_id", allowed_cents=last.stay_allowed_cents.cast("int64"),
    )


def _program_join(events: ir.Table, program_months: ir.Table, date_col: str,
                  unique_months: bool = False) -> ir.Table:
    pm = _program_month_keys(program_months, "_p_", unique_months)
    month = _month_of(events[date_col])
    # The program months on the left: the events (admissions, visits: far fewer rows) are the
    # side a hash join is built on when joins are planned as written (`backend.joins_as_written`).
    j = pm.join(events, _in_program_month(pm, "_p_", events.person_id, events.payer, events.plan, month))
    cols = {c: j[c] for c in events.columns}
    cols.update(program_id=j._p_program_id, member_id=j._p_member_id, month=j._p_month)
    return j.select(**cols)


EVENT_SCHEMA = (
    "program_id", "member_id", "person_id", "month", "event", "event_date", "claim_id", "claims",
    "prior_discharge_date", "days_since_discharge", "rule",
)


def utilization_events(
    medical_lines: ir.Table,
    program_months: ir.Table,
    *,
    readmission_days: int = 30,
    planned_admit_types: Sequence[str] = PLANNED_ADMIT_TYPES,
    transfer_dispositions: Sequence[str] = TRANSFER_DISPOSITIONS,
    unique_months: bool = False,
    months_between: tuple[dt.date, dt.date] | None = None,
) -> ir.Table:
    """Utilization events of program members, one row each, with the rule that made it.

    - ``admission``: an inpatient stay (:func:`inpatient_stays`), in the month of admission.
    - ``ed_visit``: one per person and service date with an ED line (facility or professional:
      both claims of one visit count once), from claims not denied with positive net allowed.
    - ``readmission``: a stay admitted within `readmission_days` days after an earlier stay's
      discharge (same person, any payer) whose discharge was not a transfer
      (`transfer_dispositions`, 02) nor death; admissions of a planned type (`planned_admit_types`:
      3, elective) are not readmissions. Shows the prior discharge and the days between.

    An event counts for the program whose member month (person_id, payer, plan, month of the event)
    it falls in, under that month's member_id. Grain: (program_id, member_id, event, event_date).
    Columns: ``EVENT_SCHEMA``.
    `unique_months`: as :func:`program_lines`. `months_between`: (first, last) dates that every
    month of `program_months` lies between, when the caller knows them: the ED lines served
    outside are left before they are classified and grouped (a visit counts in the month of its
    service date, so they could not count). The stays are built from every line (an earlier
    discharge may make a readmission).
    """
    from allpayer.core.claims import served_between

    stays = inpatient_stays(medical_lines)
    adm = _program_join(stays, program_months, "admission_date", unique_months)
    admissions = adm.select(
        "program_id", "member_id", "person_id", "month",
        event=ibis.literal("admission"), event_date=adm.admission_date, claim_id=adm.first_claim_id,
        claims=adm.claims.cast("int64"), prior_discharge_date=ibis.null("date"),
        days_since_discharge=ibis.null("int64"), rule=ibis.literal("bill type 11x stay"),
    )

    # readmissions: the latest qualifying earlier discharge of the same person
    idx = stays.filter(
        ~stays.discharge_disposition_code.fill_null("").isin([*transfer_dispositions, *EXPIRED_DISPOSITIONS])
    ).select(_i_person="person_id", _i_admit="admission_date", _i_discharge="discharge_date")
    cand = stays.filter(~stays.admit_type_code.fill_null("").isin(list(planned_admit_types)))
    pairs = cand.join(
        idx,
        [
            cand.person_id == idx._i_person,
            idx._i_admit < cand.admission_date,
            idx._i_discharge <= cand.admission_date,
            (idx._i_discharge + ibis.interval(days=readmission_days)) >= cand.admission_date,
        ],
    )
    readm = pairs.group_by(
        "person_id", "admission_date", "member_id", "payer", "plan", "first_claim_id", "claims"
    ).aggregate(prior_discharge_date=pairs._i_discharge.max())
    readm = _program_join(readm, program_months, "admission_date", unique_months)
    readmissions = readm.select(
        "program_id", "member_id", "person_id", "month",
        event=ibis.literal("readmission"), event_date=readm.admission_date, claim_id=readm.first_claim_id,
        claims=readm.claims.cast("int64"), prior_discharge_date=readm.prior_discharge_date,
        days_since_discharge=readm.admission_date.delta(readm.prior_discharge_date, unit="day").cast("int64"),
        rule=ibis.literal(f"admitted within {readmission_days} days of a discharge"),
    )

    m = medical_lines
    if months_between is not None:
        first, last = months_between
        first = dt.date(first.year, first.month, 1)
        last = month_end(last)
        m = served_between(m, first, last)
    m = m.filter(m.service_category == "ed")
    status = m.claim_status.fill_null("paid") if "claim_status" in m.columns else ibis.literal("paid")
    m = m.mutate(_denied=status == "denied")
    ed_claims = m.group_by("claim_id", "person_id", "member_id", "payer", "plan", "service_date").aggregate(
        allowed=m.allowed_cents.sum(), denied=m._denied.max()
    )
    ed_claims = ed_claims.filter(~ed_claims.denied & (ed_claims.allowed > 0))
    visits = ed_claims.group_by("person_id", "payer", "plan", "service_date").aggregate(
        claim_id=ed_claims.claim_id.min(), claims=ed_claims.count()
    )
    visits = _program_join(visits, program_months, "service_date", unique_months)
    ed = visits.select(
        "program_id", "member_id", "person_id", "month",
        event=ibis.literal("ed_visit"), event_date=visits.service_date, claim_id=visits.claim_id,
        claims=visits.claims.cast("int64"), prior_discharge_date=ibis.null("date"),
        days_since_discharge=ibis.null("int64"), rule=ibis.literal("ED line, one per person and date"),
    )
    return admissions.union(readmissions, distinct=False).union(ed, distinct=False)


PERIODS = ("month", "year", "ytd")


def _period_keys(t: ir.Table, period: str, month: str = "month") -> dict[str, ir.Value]:
    if period not in PERIODS:
        raise RunError(f"unknown period {period!r}: expected one of {', '.join(PERIODS)}")
    if period == "year":
        return {"year": t[month].year().cast("int32")}
    return {"year": t[month].year().cast("int32"), "month": t[month]}


def _ytd(t: ir.Table, keys: Sequence[str], columns: Sequence[str]) -> ir.Table:
    w = ibis.window(group_by=[t[k] for k in (*keys, "year")], order_by=[t.month], rows=(None, 0))
    return t.mutate(**{c: t[c].sum().over(w).cast("int64") for c in columns})


def utilization_rates(
    events: ir.Table,
    program_months: ir.Table,
    *,
    period: str = "month",
    by: Sequence[str] = ("program_id",),
) -> ir.Table:
    """Counts and rates per 1,000 member-years of each event type.

    Grain: (*by, year[, month]) for `period` ``month``, ``year`` or ``ytd`` (year to date through
    each month). Columns: member_months, admissions, ed_visits, readmissions and
    ``<event>_per_1000`` = count x 12,000 / member months, DECIMAL(38, 10).
    """
    keys = list(by)
    pm = program_months
    pk = _period_keys(pm, "month" if period == "ytd" else period)
    mmt = pm.group_by([*(pm[k] for k in keys), *(v.name(n) for n, v in pk.items())]).aggregate(member_months=pm.count())
    ek = _period_keys(events, "month" if period == "ytd" else period)
    agg = {count: (events.event == e).cast("int64").sum() for e, count in EVENT_COUNTS.items()}
    ev = events.group_by([*(events[k] for k in keys), *(v.name(n) for n, v in ek.items())]).aggregate(**agg)
    names = [*keys, *pk.keys()]
    e2 = ev.rename({f"_e_{n}": n for n in names})
    j = mmt.left_join(e2, [mmt[n] == e2[f"_e_{n}"] for n in names]).drop(*[f"_e_{n}" for n in names])
    counts = tuple(EVENT_COUNTS.values())
    j = j.mutate(**{c: j[c].fill_null(0).cast("int64") for c in counts}, member_months=j.member_months.cast("int64"))
    if period == "ytd":
        j = _ytd(j, keys, ("member_months", *counts))
    for c in counts:
        j = with_ratio(j, f"{c}_per_1000", j[c].cast(INT) * int_literal(12000), j.member_months)
    return j.order_by(names)


# ------------------------------------------------------------------------------------------------
# high-cost claimants


def high_cost_claimants(member_years: ir.Table, threshold_cents: int, *, basis: str = "ffs_paid") -> ir.Table:
    """Members whose cost in a program and year reaches `threshold_cents` (before truncation).

    Grain: (program_id, member_id, year). Columns: person_id, eligible_months, cost_cents and the
    category amounts on the basis (when `member_years` has them), threshold_cents, rank (1 = costliest; ties by member_id),
    program_cost_cents (all members of the program and year) and share_of_program_cost
    (DECIMAL(38, 10)).
    """
    col = _basis_column(basis)
    my = member_years
    cat_cols = [c for c in (f"{cat}_{basis}_cents" for cat in TCOC_CATEGORIES) if c in my.columns]
    per = my.group_by("program_id", "member_id", "year").aggregate(
        person_id=my.person_id.min(),
        eligible_months=my.eligible_months.sum(),
        cost_cents=my[col].sum(),
        **{c: my[c].sum() for c in cat_cols},
    )
    totals = per.group_by(_t_program_id=per.program_id, _t_year=per.year).aggregate(program_cost_cents=per.cost_cents.sum())
    per = per.join(totals, [per.program_id == totals._t_program_id, per.year == totals._t_year]).drop("_t_program_id", "_t_year")
    hc = per.filter(per.cost_cents >= int(threshold_cents))
    w = ibis.window(group_by=[hc.program_id, hc.year], order_by=[ibis.desc(hc.cost_cents), hc.member_id])
    hc = hc.mutate(rank=(ibis.row_number().over(w) + 1).cast("int64"), threshold_cents=ibis.literal(int(threshold_cents), "int64"))
    hc = with_ratio(hc, "share_of_program_cost", hc.cost_cents, hc.program_cost_cents)
    return hc.order_by(["program_id", "year", "rank"])


# ------------------------------------------------------------------------------------------------
# leakage

PARTICIPATING = ("participant", "preferred")


def participation_periods(provider_roster: ir.Table) -> ir.Table:
    """The periods in which each participating identifier is in network, by payer.

    One row per payer, kind (``npi`` or ``tin``), value and period (start, end; an open end is
    9999-12-31) from the roster's ``participant`` and ``preferred`` rows, overlapping periods of an
    identifier merged (a TIN has a row for each of its NPIs), so that the periods of one identifier
    do not overlap and a date falls in at most one of them.
    """
    r = provider_roster.filter(provider_roster.participation.isin(PARTICIPATING))
    end = r.effective_end_date.fill_null(ibis.date(9999, 12, 31))
    ids = ibis.union(
        r.select(payer=r.payer, kind=ibis.literal("npi"), value=r.npi, start=r.effective_start_date, end=end),
        r.select(payer=r.payer, kind=ibis.literal("tin"), value=r.tin, start=r.effective_start_date, end=end),
        distinct=True,
    )
    ids = ids.filter(ids.value.notnull() & ids.start.notnull())
    # gaps and islands: a period opens an island unless an earlier-starting period of the same
    # identifier reaches its start
    keys, order = ["payer", "kind", "value"], ["start", "end"]
    before = ibis.window(group_by=keys, order_by=order, rows=(None, -1))
    ids = ids.mutate(_reach=ids.end.max().over(before))
    ids = ids.mutate(_opens=ibis.ifelse(ids._reach.isnull() | (ids.start > ids._reach), 1, 0))
    running = ibis.window(group_by=keys, order_by=order, rows=(None, 0))
    ids = ids.mutate(_island=ids._opens.sum().over(running))
    return ids.group_by([*keys, "_island"]).aggregate(
        start=ids.start.min(), end=ids.end.max()
    ).drop("_island")


def leakage_lines(medical_lines: ir.Table, provider_roster: ir.Table, program_months: ir.Table,
                  scope: TcocScope | Mapping[str, TcocScope] | None = None, *,
                  unique_months: bool = False) -> ir.Table:
    """Each in-program medical line, marked in or out of network.

    A line is in network when, on its service date and for its payer, the provider roster has a
    participating (``participant`` or ``preferred``) row for its billing NPI, its facility NPI or
    its billing TIN (tested in that order: ``matched_by`` names the first that matched).
    Grain: (claim_id, claim_line_number, program_id). Columns: program_id, member_id, month,
    tcoc_category, allowed_cents, matched_by (NULL: out of network), out_of_network.
    `unique_months`: as :func:`program_lines`.
    """
    m = medical_lines
    none = ibis.null("string")
    lines = m.select(
        claim_id=m.claim_id.cast("string"),
        claim_line_number=m.claim_line_number.cast("int64"),
        person_id=m.person_id,
        member_id=m.member_id,
        payer=m.payer,
        plan=m.plan,
        service_date=m.service_date,
        service_month=m.service_month,
        tcoc_category=_tcoc_category(m.service_category),
        allowed_cents=m.allowed_cents.cast("int64"),
        billing_npi=m.billing_npi if "billing_npi" in m.columns else none,
        facility_npi=m.facility_npi if "facility_npi" in m.columns else none,
        billing_tin=m.billing_tin if "billing_tin" in m.columns else none,
    )
    pl = program_lines(lines, program_months, scope, unique_months=unique_months)
    pl = pl.filter(pl.in_scope)
    periods = participation_periods(provider_roster)
    # Each identifier is tested in order with a left join to its kind's periods: they do not
    # overlap, so a line meets at most one period per test and keeps its grain.
    tests = (("billing_npi", "npi"), ("facility_npi", "npi"), ("billing_tin", "tin"))
    t = pl
    for i, (col, kind) in enumerate(tests):
        k = periods.filter(periods.kind == kind)
        k = k.select(**{f"_p{i}_payer": k.payer, f"_p{i}_value": k.value, f"_p{i}_start": k.start,
                        f"_p{i}_end": k.end})
        t = t.left_join(k, [t.payer == k[f"_p{i}_payer"], t[col] == k[f"_p{i}_value"],
                            k[f"_p{i}_start"] <= t.service_date, k[f"_p{i}_end"] >= t.service_date])
    t = t.mutate(matched_by=ibis.cases(
        *[(t[f"_p{i}_value"].notnull(), col) for i, (col, _kind) in enumerate(tests)], else_=ibis.null("string")
    ))
    t = t.mutate(out_of_network=t.matched_by.isnull())
    return t.select(
        "program_id", "claim_id", "claim_line_number", "member_id", "payer", "plan", "service_date",
        month=t.service_month, tcoc_category=t.tcoc_category, allowed_cents=t.allowed_cents,
        billing_npi=t.billing_npi, facility_npi=t.facility_npi, billing_tin=t.billing_tin,
        matched_by=t.matched_by, out_of_network=t.out_of_network,
    )


def leakage(leak_lines: ir.Table, *, period: str = "year") -> ir.Table:
    """Out-of-network (leakage) allowed spending by program, period and TCOC category.

    `leak_lines`: :func:`leakage_lines`. Grain: (program_id, year[, month], tcoc_category).
    Columns: allowed_cents, in_network_allowed_cents, out_of_network_allowed_cents,
    out_of_network_lines, leakage_share (out of network / allowed, DECIMAL(38, 10)).
    """
    t = leak_lines
    pk = _period_keys(t, "month" if period == "ytd" else period)
    g = t.group_by([t.program_id, *(v.name(n) for n, v in pk.items()), t.tcoc_category]).aggregate(
        allowed_cents=t.allowed_cents.sum(),
        in_network_allowed_cents=t.allowed_cents.sum(where=~t.out_of_network).fill_null(0),
        out_of_network_allowed_cents=t.allowed_cents.sum(where=t.out_of_network).fill_null(0),
        out_of_network_lines=t.out_of_network.cast("int64").sum(),
    )
    cols = ("allowed_cents", "in_network_allowed_cents", "out_of_network_allowed_cents", "out_of_network_lines")
    if period == "ytd":
        w = ibis.window(group_by=[g.program_id, g.year, g.tcoc_category], order_by=[g.month], rows=(None, 0))
        g = g.mutate(**{c: g[c].sum().over(w).cast("int64") for c in cols})
    g = with_ratio(g, "leakage_share", g.out_of_network_allowed_cents, g.allowed_cents)
    return g.order_by(["program_id", *pk.keys(), "tcoc_category"])


# ------------------------------------------------------------------------------------------------
# aggregates

LEVELS = ("program", "hsa", "practice", "employer")

AGGREGATE_AMOUNTS = ("allowed_cents", "paid_cents", "shadow_priced_cents", "excluded_payment_cents", "ffs_paid_cents")


def _level_columns(
    mmc: ir.Table, level: str, attribution: ir.Table | None, employer_group: ir.Table | None
) -> tuple[ir.Table, list[str]]:
    if level not in LEVELS:
        raise RunError(f"unknown aggregate level {level!r}: expected one of {', '.join(LEVELS)}")
    if level == "program":
        return mmc, []
    if level in ("hsa", "practice"):
        if attribution is None:
            raise RunError(f"aggregates by {level} need an attribution table (program_id, member_id, month, practice_id, hsa)")
        col = "hsa" if level == "hsa" else "practice_id"
        a = attribution.select(_a_program_id="program_id", _a_member_id="member_id", _a_month="month", **{col: col})
        a = a.distinct()
        j = mmc.left_join(a, [mmc.program_id == a._a_program_id, mmc.member_id == a._a_member_id, mmc.month == a._a_month])
        return j.drop("_a_program_id", "_a_member_id", "_a_month"), [col]
    if employer_group is None:
        raise RunError("aggregates by employer need the employer_group table")
    # A member month's employer depends on its group and month only: it is chosen once per
    # (group, month) present, and each member month joins to its choice on equal keys. (Chosen
    # member month by member month, a window over every row took 6.2 of the summary's 15.9 CPU
    # seconds at 650,000 members.)
    c = employer_of_group_months(employer_group, mmc.select("group_id", "month"))
    c = c.select(_k_group_id=c.group_id, _k_month=c.month, employer_id=c.employer_id)
    j = mmc.left_join(c, [mmc.group_id == c._k_group_id, mmc.month == c._k_month])
    return j.drop("_k_group_id", "_k_month"), ["employer_id"]


def tcoc_aggregate(
    member_month_cost: ir.Table,
    *,
    level: str = "program",
    period: str = "year",
    attribution: ir.Table | None = None,
    employer_group: ir.Table | None = None,
) -> ir.Table:
    """TCOC totals, PMPM and per member per year, by program and level, per period.

    `level`: ``program``, ``hsa`` or ``practice`` (from `attribution`: program_id, member_id, month,
    practice_id, hsa; member months without one report under NULL) or ``employer`` (the member's
    group in `employer_group` on the month). `period`: ``month``, ``year`` or ``ytd``.

    Grain: (program_id, payer, level column, year[, month]) (a program has one payer; the payer
    column lets :func:`apply_completion` join). ``level`` names the level (``program``, ``hsa``,
    ``practice`` or ``employer``), so tables that stack several levels tell a program total from
    the HSA or practice row of members with none. Columns: member_months, claim_lines, the amounts (``AGGREGATE_AMOUNTS``) and category amounts in cents, and exact DECIMAL(38, 10)
    ``ffs_paid_pmpm``, ``allowed_pmpm``, ``paid_pmpm``, ``ffs_paid_pmpy``, ``allowed_pmpy``.
    A PMPM times member months rounds back to its cent total.
    """
    t, level_cols = _level_columns(member_month_cost, level, attribution, employer_group)
    if "payer" in t.columns:
        level_cols = ["payer", *level_cols]  # one payer per program: kept to join completion factors
    pk = _period_keys(t, "month" if period == "ytd" else period)
    sums = (*AGGREGATE_AMOUNTS, *CATEGORY_COLUMNS, "claim_lines")
    g = t.group_by([t.program_id, *(t[c] for c in level_cols), *(v.name(n) for n, v in pk.items())]).aggregate(
        member_months=t.count(), **{c: t[c].sum() for c in sums}
    )
    g = g.mutate(**{c: g[c].cast("int64") for c in (*sums, "member_months")})
    if period == "ytd":
        g = _ytd(g, ["program_id", *level_cols], ("member_months", *sums))
    for amount in ("ffs_paid", "allowed", "paid"):
        g = with_per_member(g, f"{amount}_pmpm", g[f"{amount}_cents"], g.member_months)
    for amount in ("ffs_paid", "allowed"):
        g = with_per_member(g, f"{amount}_pmpy", g[f"{amount}_cents"], g.member_months, months=12)
    g = g.mutate(level=ibis.literal(level))
    g = g.select("program_id", "level", *[c for c in g.columns if c not in ("program_id", "level")])
    return g.order_by(["program_id", *level_cols, *pk.keys()])


__all__ = [
    "TCOC_CATEGORIES",
    "TcocScope",
    "MEDICARE_PARTS_A_B",
    "scope_for",
    "cost_lines",
    "program_lines",
    "member_month_cost",
    "cost_reconciliation",
    "member_year_cost",
    "threshold_table",
    "truncation_thresholds",
    "truncate",
    "truncation",
    "Truncation",
    "truncation_settings",
    "split_truncated_amounts",
    "claim_payment_rows",
    "completion",
    "Completion",
    "apply_completion",
    "inpatient_stays",
    "utilization_events",
    "utilization_rates",
    "high_cost_claimants",
    "participation_periods",
    "leakage_lines",
    "leakage",
    "tcoc_aggregate",
    "div_round",
    "with_ratio",
    "with_per_member",
    "units_to_decimal",
]
