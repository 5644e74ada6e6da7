"""Shared pieces of the payment stages: periods, PMPM arithmetic, rate tables, ledger accounts.

Money stays in integer cents. A PMPM from the terms is held exactly as millionths of a dollar
(``*_micro``, an int64); an amount is ``member months x PMPM`` rounded half-up to whole cents on
one named step (:func:`pmpm_cents`). Rate tables built from dated terms have one row per
(cell, month), so a PMPM that changes mid-year applies from its month.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable, Sequence

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from allpayer.errors import AllpayerError
from allpayer.money import to_decimal

MICRO = 1_000_000
"""PMPMs are held as integer millionths of a dollar."""


ANY_PARTICIPATION = ("participant", "preferred", "non_participating")
"""Every roster participation status: a payment follows a roster row's ``payment_model`` in its
effective period, whatever its participation status."""


def covered_months(roster: ir.Table, payer: str, months: Sequence[dt.date]) -> ir.Table:
    """(practice_id, month): the months of `months` that `roster`'s rows (already narrowed to a
    payment model) of `payer` cover from the first day to the last, whatever their participation
    status, as attribution reads a practice's participation
    (`allpayer.core.attribution.practice_participation`)."""
    from allpayer.core.attribution import practice_participation
    from allpayer.core.member_months import month_end

    ends = [month_end(m) for m in months]
    mt = rate_table([{"month": m, "month_last_day": e} for m, e in zip(months, ends)],
                    {"month": "date", "month_last_day": "date"})
    pp = practice_participation(roster, payer, mt, ANY_PARTICIPATION)
    return pp.filter(pp.participating).select("practice_id", "month")


class PaymentsError(AllpayerError):
    """A payment run that cannot proceed (bad period, missing tables)."""


@dataclass(frozen=True)
class PaymentPeriod:
    """The months a payment run covers: a month, a quarter or a year (label as in the ledger)."""

    label: str
    year: int
    months: tuple[dt.date, ...]
    kind: str  # 'month' | 'quarter' | 'year'

    @property
    def first(self) -> dt.date:
        return self.months[0]

    @property
    def last(self) -> dt.date:
        return self.months[-1]


_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


def parse_period(month: str | None = None, quarter: str | None = None, year: str | int | None = None) -> PaymentPeriod:
    """One of ``--month YYYY-MM``, ``--quarter YYYY-Qn``, ``--year YYYY`` as a `PaymentPeriod`.

    >>> parse_period(quarter="2024-Q2").months[0]
    datetime.date(2024, 4, 1)
    >>> parse_period(month="2024-13")
    Traceback (most recent call last):
    ...
    allpayer.payments.common.PaymentsError: --month takes YYYY-MM, got '2024-13'
    """
    given = [(k, v) for k, v in (("month", month), ("quarter", quarter), ("year", year)) if v is not None]
    if len(given) != 1:
        raise PaymentsError("give exactly one of --month YYYY-MM, --quarter YYYY-Qn or --year YYYY")
    kind, value = given[0]
    value = str(value).strip()
    if kind == "month":
        m = _MONTH.match(value)
        if not m:
            raise PaymentsError(f"--month takes YYYY-MM, got {value!r}")
        y, mm = int(m.group(1)), int(m.group(2))
        return PaymentPeriod(value, y, (dt.date(y, mm, 1),), "month")
    if kind == "quarter":
        m = _QUARTER.match(value)
        if not m:
            raise PaymentsError(f"--quarter takes YYYY-Qn, got {value!r}")
        y, q = int(m.group(1)), int(m.group(2))
        return PaymentPeriod(value, y, tuple(dt.date(y, 3 * q - 2 + i, 1) for i in range(3)), "quarter")
    m = _YEAR.match(value)
    if not m:
        raise PaymentsError(f"--year takes YYYY, got {value!r}")
    y = int(m.group(1))
    return PaymentPeriod(value, y, tuple(dt.date(y, i, 1) for i in range(1, 13)), "year")


def month_label(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}"


def quarter_of(d: dt.date) -> int:
    return (d.month - 1) // 3 + 1


def to_micro(value: object) -> int:
    """A dollar amount or PMPM (Decimal or string) as integer millionths of a dollar.

    >>> to_micro("1.75"), to_micro(Decimal("4.2049999"))
    (1750000, 4205000)
    """
    return int((to_decimal(value) * MICRO).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def pmpm_cents(member_months: ir.IntegerValue, micro: ir.IntegerValue) -> ir.IntegerValue:
    """``member months x PMPM`` in cents, rounded half-up (half away from zero, as
    `allpayer.money` rounds: a negative amount, e.g. from a negative historical rate, rounds as
    its positive does, with the sign).

    Step ``pmpm_amount``: cents = floor((|MM x micro| + 5,000) / 10,000), with the product's sign.
    """
    product = member_months.cast("int64") * micro.cast("int64")
    up = (product.abs() + 5_000) // 10_000
    return ibis.ifelse(product < 0, -up, up).cast("int64")


def py_pmpm_cents(member_months: int, micro: int) -> int:
    """The same rounding in Python (for checks and small tables)."""
    product = int(member_months) * int(micro)
    up = (abs(product) + 5_000) // 10_000
    return -up if product < 0 else up


def rate_table(rows: Iterable[dict], schema: dict[str, str]) -> ir.Table:
    """A small Ibis table from Python rows (rates from terms, allocations of a few totals)."""
    rows = list(rows)
    sch = ibis.schema(schema)
    data = pa.table({c: [r.get(c) for r in rows] for c in sch.names}, schema=sch.to_pyarrow())
    return ibis.memtable(data)


def dated_by_month(dated, months: Sequence[dt.date]) -> list[tuple[dt.date, Decimal]]:
    """The value of a dated parameter in each month (the value that holds on the 1st)."""
    return [(m, dated.at(m)) for m in months]


# -- ledger accounts --------------------------------------------------------------------------


def payer_account(payer: str) -> str:
    return f"payer:{payer}"


def aco_account(aco_id: str) -> str:
    return f"aco:{aco_id}"


def reserve_account(aco_id: str) -> str:
    return f"aco_reserve:{aco_id}"


def hospital_account(hospital_id: str) -> str:
    return f"hospital:{hospital_id}"


def practice_account(practice_id: str) -> str:
    return f"practice:{practice_id}"


def employer_account(employer_id: str) -> str:
    return f"employer:{employer_id}"


def rows_of(con, expr: ir.Table) -> list[dict]:
    """Rows of a small aggregated expression as dicts (never used on member- or claim-level tables)."""
    return con.to_pyarrow(expr).to_pylist()


def attributed_months(attribution: ir.Table, member_months: ir.Table, program, months: Sequence[dt.date]) -> ir.Table:
    """Attributed and eligible member months of `program` in `months`, with the rate cell.

    Grain (program_id, member_id, month). Columns: program_id, member_id, person_id, month,
    practice_id, hsa, group_id, cell_id ('unassigned' when the member month fits no rate cell).
    """
    return attributed_months_all(attribution, member_months, [program], months)


def attributed_months_all(attribution: ir.Table, member_months: ir.Table, programs: Sequence,
                          months: Sequence[dt.date]) -> ir.Table:
    """:func:`attributed_months` of several programs in one query: one pass over ``attribution``
    and ``member_months`` for all of them (the rate cell is chosen by program), the same rows as
    the union of the programs' own :func:`attributed_months`.

    Grain (program_id, member_id, month); columns as :func:`attributed_months`.
    """
    from allpayer.core.targets import cell_id_expr

    pids = [p.program_id for p in programs]
    a = attribution.filter(
        attribution.program_id.isin(pids)
        & attribution.attributed
        & attribution.eligible
        & attribution.month.isin(list(months))
    )
    mm = member_months.filter(member_months.program_id.isin(pids) & member_months.month.isin(list(months)))
    cell = ibis.cases(
        *[(mm.program_id == p.program_id, cell_id_expr(mm, p.target.rate_cells)) for p in programs],
        else_=ibis.null("string"),
    )
    mm = mm.mutate(cell_id=cell.fill_null("unassigned"))
    mm = mm.select(_program_id="program_id", _member_id="member_id", _month="month", _cell_id="cell_id",
                   _group_id="group_id")
    j = a.left_join(mm, [a.program_id == mm._program_id, a.member_id == mm._member_id, a.month == mm._month])
    return j.select(
        program_id=j.program_id,
        member_id=j.member_id,
        person_id=j.person_id,
        month=j.month,
        practice_id=j.practice_id,
        hsa=j.hsa,
        group_id=j._group_id,
        cell_id=j._cell_id.fill_null("unassigned"),
    )
