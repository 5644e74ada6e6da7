"""Member months: one row per person, payer, plan and calendar month of eligibility.

Grain of `eligibility_months`: (person_id, payer, plan, month). A person counts in a month when
any of its enrollment spans covers at least one day of that month and the person was alive on the
first day of the month or died in it (the month of death counts; later months do not). A member
month is one person's (domain.md §1): a payer that reissues a member id (a new card number after a
plan or group change) sends two spans of one person under two member ids, and a month they share
is one month, carrying the span in force on the month's first covered day (see
:func:`eligibility_months`).

Rate cell columns are derived per month: `age` (whole years on the first day of the month),
`age_band` (bands are a parameter), `sex`, `aid_category` (Medicaid) and `enrollment_type`
(Medicare: esrd, disabled, aged_dual, aged_nondual, the MSSP's four enrollment types).
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import ibis
import ibis.expr.types as ir

DEFAULT_AGE_BANDS: tuple[int, ...] = (0, 1, 19, 45, 65, 75, 85)
"""Lower bounds of the default age bands: 0, 1-18, 19-44, 45-64, 65-74, 75-84, 85+."""


def month_starts(start: dt.date, end: dt.date) -> list[dt.date]:
    """First days of the calendar months from `start`'s month to `end`'s month, inclusive.

    >>> month_starts(dt.date(2024, 11, 15), dt.date(2025, 2, 1))
    [datetime.date(2024, 11, 1), datetime.date(2024, 12, 1), datetime.date(2025, 1, 1), datetime.date(2025, 2, 1)]
    """
    if end < start:
        raise ValueError(f"empty period: {start} .. {end}")
    out, y, m = [], start.year, start.month
    while (y, m) <= (end.year, end.month):
        out.append(dt.date(y, m, 1))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def month_end(d: dt.date) -> dt.date:
    """The last day of `d`'s calendar month.

    >>> month_end(dt.date(2024, 2, 10)), month_end(dt.date(2023, 12, 31))
    (datetime.date(2024, 2, 29), datetime.date(2023, 12, 31))
    """
    return (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def months_table(start: dt.date, end: dt.date) -> ir.Table:
    """An Ibis table with one row per month: `month` (first day) and `month_end` (last day)."""
    starts = month_starts(start, end)
    ends = [month_end(s) for s in starts]
    return ibis.memtable(
        {"month": starts, "month_end": ends},
        schema=ibis.schema({"month": "date", "month_end": "date"}),
    )


def age_band_expr(age: ir.IntegerValue, bands: Sequence[int] = DEFAULT_AGE_BANDS) -> ir.StringValue:
    """Label an age with its band, e.g. '19-44' or '85+'. `bands` are ascending lower bounds."""
    bands = list(bands)
    if bands != sorted(set(bands)) or bands[0] != 0:
        raise ValueError(f"age bands must be ascending lower bounds starting at 0, got {bands}")
    case = ibis.cases(
        *[
            (age < hi, f"{lo}-{hi - 1}" if hi - 1 > lo else f"{lo}")
            for lo, hi in zip(bands[:-1], bands[1:])
        ],
        else_=f"{bands[-1]}+",
    )
    return case


def age_on(birth_date: ir.DateValue, on: ir.DateValue) -> ir.IntegerValue:
    """Whole years of age on a date (birthdays on 29 February count from 1 March in other years)."""
    years = on.year() - birth_date.year()
    had_birthday = (on.month() > birth_date.month()) | (
        (on.month() == birth_date.month()) & (on.day() >= birth_date.day())
    )
    return (years - ibis.ifelse(had_birthday, 0, 1)).cast("int32")


def enrollment_type_expr(elig: ir.Table) -> ir.StringValue:
    """MSSP enrollment type from Medicare status and dual status codes.

    medicare_status_code: 10/11 aged, 20/21 disabled, 11/21/31 with ESRD, 31 ESRD only.
    dual_status_code: 01-08 full or partial dual (02, 04, 08 full benefit); 00/NA/empty not dual.
    Non-Medicare enrollments get NULL.
    """
    status = elig.medicare_status_code.fill_null("")
    dual = elig.dual_status_code.fill_null("00")
    is_dual = dual.isin(["01", "02", "03", "04", "05", "06", "08"])
    return ibis.cases(
        (elig.payer_type != "medicare", ibis.null("string")),
        (status.isin(["11", "21", "31"]), "esrd"),
        (status == "20", "disabled"),
        (is_dual, "aged_dual"),
        else_="aged_nondual",
    )


_NULL_DATE = dt.date(1, 1, 1)


def _sort_keys(col: ir.Value) -> list[ir.Value]:
    """Window order keys for `col` that every backend sorts alike: whether it is NULL (backends
    place NULLs differently), then the value with NULL replaced by a constant of its type."""
    typ = col.type()
    if typ.is_null():  # a column without values (e.g. all NULL in a small input) orders nothing
        return []
    if typ.is_string():
        filled = col.fill_null("")
    elif typ.is_date():
        filled = col.fill_null(_NULL_DATE)
    elif typ.is_boolean():
        filled = col.cast("int8").fill_null(0)
    elif typ.is_integer():
        filled = col.cast("int64").fill_null(0)
    elif typ.is_numeric():
        filled = col.fill_null(0)
    else:
        raise TypeError(f"no sort key for {typ}")
    return [col.isnull().cast("int8"), filled]


def eligibility_months(
    eligibility: ir.Table,
    start: dt.date,
    end: dt.date,
    age_bands: Sequence[int] = DEFAULT_AGE_BANDS,
) -> ir.Table:
    """Expand enrollment spans into one row per person, payer, plan and month in [start, end].

    Spans of one person in one payer's plan that share a month (overlapping spans, a member id
    the payer reissued, a change of employer group within the plan) give one row for it: the row
    of the span in force on the month's first covered day (the span covering its earliest day),
    and among spans covering that day the row first in sort order of its columns (member_id
    first): a total order, so every backend keeps the same row. The month's member_id, group_id
    and rate cell columns are that span's.
    """
    months = months_table(start, end)
    # A person with two spans in one plan that share a month counts once in it: keep the row of
    # the span in force on the month's first covered day, then the row that sorts first on a total
    # order so the choice is deterministic on every backend. Every output column is a sort key, so
    # two rows that tie are identical and either may be kept.
    # Only a person, payer and plan with more than one span can have a month twice: the spans of
    # the others expand into their months as they are (a count over the spans, not the months,
    # finds them), and of the rest only the months covered by more than one span need the window.
    # (Rows with a NULL key are left out, by these joins on the key as by the months' count.)
    span_key = ["person_id", "payer", "plan"]
    spans = eligibility.group_by(span_key).aggregate(_spans=eligibility.count())
    e = eligibility.join(spans, span_key)
    single_span = _month_rows(e.filter(e._spans == 1), months, age_bands).drop(_FIRST_DAY)
    rows = _month_rows(e.filter(e._spans > 1), months, age_bands)
    key = [*span_key, "month"]
    counts = rows.group_by(key).aggregate(_spans=rows.count())
    rows = rows.join(counts, key)
    single = rows.filter(rows._spans == 1).drop("_spans", _FIRST_DAY)
    several = rows.filter(rows._spans > 1).drop("_spans")
    w = ibis.window(
        group_by=[several[c] for c in key],
        order_by=[several[_FIRST_DAY],
                  *[k for c in several.columns if c not in (*key, _FIRST_DAY) for k in _sort_keys(several[c])]],
    )
    first = several.mutate(_rn=ibis.row_number().over(w)).filter(lambda t: t._rn == 0).drop("_rn", _FIRST_DAY)
    return ibis.union(single_span, single, first, distinct=False)


_FIRST_DAY = "_first_day"
"""The first day of a month that a span covers (:func:`_month_rows`), which orders the spans of a
person's month in :func:`eligibility_months`."""


def _month_rows(e: ir.Table, months: ir.Table, age_bands: Sequence[int]) -> ir.Table:
    """One row per enrollment span of `e` and month of `months` it covers while the member lived,
    with ``_first_day`` (:data:`_FIRST_DAY`), the first day of the month the span covers."""
    joined = e.join(
        months,
        [
            e.enrollment_start_date <= months.month_end,
            e.enrollment_end_date >= months.month,
        ],
    )
    alive = joined.death_date.isnull() | (joined.death_date >= joined.month)
    joined = joined.filter(alive)
    age = age_on(joined.birth_date, joined.month)
    return joined.select(
        "person_id",
        "member_id",
        "payer",
        "payer_type",
        "plan",
        group_id=joined.group_id,
        month=joined.month,
        sex=joined.gender,
        birth_date=joined.birth_date,
        age=age,
        age_band=age_band_expr(age, age_bands),
        aid_category=joined.aid_category,
        enrollment_type=enrollment_type_expr(joined),
        data_sharing_opt_out=joined.data_sharing_opt_out.fill_null(False),
        death_date=joined.death_date,
        **{_FIRST_DAY: ibis.greatest(joined.enrollment_start_date, joined.month)},
    )
