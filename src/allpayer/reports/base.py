"""The report model shared by every audience, and small helpers over the run's tables."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator, Sequence

import ibis

from allpayer.errors import AllpayerError
from allpayer.money import cents_to_dollars

HIDDEN = "suppressed"  # a count from 1 to 10, a cell hidden so that none can be derived, and values of either


class ReportError(AllpayerError):
    """A report cannot be built (unknown organization, missing tables, no data for the period)."""


@dataclass
class Table:
    """One table of a report. `rows` hold display strings; `key` names the CSV section."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Chart:
    key: str
    title: str
    svg: str


@dataclass(frozen=True)
class Period:
    """The months a report covers: a performance year, a quarter, a month, or the year to date
    through a month. All lie within one performance year.

    >>> Period.parse("2024-Q2").months()[0], Period.parse("2024-Q2").label
    (datetime.date(2024, 4, 1), '2024-Q2')
    >>> Period.parse("2024-05-YTD").first, Period.parse("2024-05-YTD").last
    (1, 5)
    """

    year: int
    first: int = 1
    last: int = 12
    kind: str = "year"  # year, quarter, month, ytd

    @classmethod
    def parse(cls, text: str | int) -> "Period":
        t = str(text).strip().upper()
        m = re.fullmatch(r"(\d{4})", t)
        if m:
            return cls(int(m[1]))
        m = re.fullmatch(r"(\d{4})-Q([1-4])", t)
        if m:
            q = int(m[2])
            return cls(int(m[1]), 3 * q - 2, 3 * q, "quarter")
        m = re.fullmatch(r"(\d{4})-(\d{2})(-YTD)?", t)
        if m and 1 <= int(m[2]) <= 12:
            mo = int(m[2])
            return cls(int(m[1]), 1, mo, "ytd") if m[3] else cls(int(m[1]), mo, mo, "month")
        raise ReportError(f"--period {text!r}: give a year (2024), a quarter (2024-Q2), a month (2024-05) or the "
                          f"year to date through a month (2024-05-YTD)")

    @property
    def is_year(self) -> bool:
        return self.first == 1 and self.last == 12

    @property
    def label(self) -> str:
        if self.is_year:
            return str(self.year)
        if self.kind == "quarter":
            return f"{self.year}-Q{self.last // 3}"
        if self.kind == "ytd":
            return f"{self.year}-{self.last:02d}-YTD"
        return f"{self.year}-{self.first:02d}"

    @property
    def words(self) -> str:
        """For titles: '2024', 'Q2 2024', 'May 2024', '2024 year to date through May'."""
        if self.is_year:
            return str(self.year)
        if self.kind == "quarter":
            return f"Q{self.last // 3} {self.year}"
        name = dt.date(self.year, self.last, 1).strftime("%B")
        return f"{self.year} year to date through {name}" if self.kind == "ytd" else f"{name} {self.year}"

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.first, 1)

    @property
    def end(self) -> dt.date:
        """The first day of the last month."""
        return dt.date(self.year, self.last, 1)

    def months(self) -> list[dt.date]:
        return [dt.date(self.year, m, 1) for m in range(self.first, self.last + 1)]

    def contains(self, month: dt.date) -> bool:
        return month.year == self.year and self.first <= month.month <= self.last

    def quarters(self) -> list[str]:
        """The quarters ('2024-Q2') the period overlaps."""
        return [f"{self.year}-Q{q}" for q in range((self.first - 1) // 3 + 1, (self.last - 1) // 3 + 2)]

    def year_only(self, what: str) -> None:
        if not self.is_year:
            raise ReportError(f"--period {self.label}: {what} covers a whole performance year; use --period {self.year}")


def as_period(p: "Period | int | str") -> "Period":
    return p if isinstance(p, Period) else Period.parse(p)


def in_period(t, period: "Period", column: str = "month"):
    """Rows of `t` whose month lies in the period (by performance year and month)."""
    t = t.filter(t.performance_year == period.year) if "performance_year" in t.columns else t
    if period.is_year and "performance_year" in t.columns:
        return t
    return t.filter((t[column] >= ibis.literal(period.start)) & (t[column] <= ibis.literal(period.end)))


@dataclass
class Report:
    kind: str
    org: str
    year: int
    run_id: str
    title: str
    subtitle: str
    period: Period | None = None
    totals: list[tuple[str, str]] = field(default_factory=list)  # (label, display value)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)

    @property
    def period_label(self) -> str:
        return self.period.label if self.period is not None else str(self.year)

    @property
    def slug(self) -> str:
        return f"{self.kind}-{safe_name(self.org)}-{self.period_label}"


def safe_name(s: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(s))


def usd(cents: int | None) -> str:
    """Cents as dollars for display: -$1,234.50; '' for None."""
    if cents is None:
        return ""
    c = int(cents)
    sign = "-" if c < 0 else ""
    return f"{sign}${cents_to_dollars(abs(c)):,.2f}"


def count(n: int | None) -> str:
    return "" if n is None else f"{int(n):,}"


def pct(rate: Any, places: int = 1) -> str:
    """A fraction as a percent, rounded half-up: Decimal('0.0351') -> '3.5%'."""
    if rate is None:
        return ""
    d = (Decimal(str(rate)) * 100).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{d}%"


def pmpm_cents(total_cents: int, member_months: int) -> int | None:
    """Per member per month, rounded half-up to a cent."""
    if not member_months:
        return None
    q = (Decimal(int(total_cents)) / Decimal(int(member_months))).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(q)


def month_label(d: dt.date) -> str:
    return d.strftime("%Y-%m")


class _Memo:
    active: dict | None = None


@contextlib.contextmanager
def batch() -> Iterator[None]:
    """Render many reports of one snapshot: inside, `rows` answers a query it has answered before
    from memory (queries are keyed by their expression), and `rows_by` runs a query once for every
    organization and hands each report its part. Outside, both query the database every time."""
    prev, _Memo.active = _Memo.active, {}
    try:
        yield
    finally:
        _Memo.active = prev


def rows(expr, key: Any = None) -> list[dict]:
    """A small (already aggregated) Ibis expression as a list of dicts (read-only: shared in a batch).

    `expr` may be a function that builds the expression and `key` a name for it (with everything
    that shapes it: period, column): in a batch the expression is then built only once."""
    memo = _Memo.active
    if memo is None:
        return _build(expr).to_pyarrow().to_pylist()
    k = ("rows", key if key is not None else _build(expr).op())
    if k not in memo:
        memo[k] = _build(expr).to_pyarrow().to_pylist()
    return memo[k]


def _build(expr):
    return expr if isinstance(expr, ibis.Expr) else expr()


def rows_by(expr, column: str, value: Any, order_by: Sequence[str] = (), key: Any = None) -> list[dict]:
    """The rows of `expr` whose `column` equals `value`, ordered by `order_by`. `expr` is built for
    every organization at once (grouped by `column` where it aggregates, or by several
    organization columns at once): in a `batch` it runs once, whichever column it is split by, and
    is split by `column` once; outside, it is filtered to `value` in the database. As in `rows`,
    `expr` may be a function and `key` its name."""
    def ordered():
        e = _build(expr)
        return e.order_by(list(order_by)) if order_by else e

    memo = _Memo.active
    if memo is None:
        e = _build(expr)
        e = e.filter(e[column] == value)
        return (e.order_by(list(order_by)) if order_by else e).to_pyarrow().to_pylist()
    name = key if key is not None else _build(expr).op()
    k = ("by", name, column, tuple(order_by))
    if k not in memo:
        groups: dict = {}
        for r in rows(ordered, ("ordered", name, tuple(order_by))):
            if r[column] is not None:  # as in the database, where no value equals NULL
                groups.setdefault(r[column], []).append(r)
        memo[k] = groups
    return memo[k].get(value, [])


def sums_by(expr, column: str, value: Any, keys: Sequence[str], sums: Sequence[str], key: Any = None) -> dict:
    """The rows of `expr` whose `column` equals `value` (`rows_by`), summed over the other columns:
    a dict from the tuple of `keys` to a dict of the `sums`. `expr` may be grouped finer than
    `column` (by several organization columns at once, so that one query serves the reports of
    each kind: in a `batch`, `rows_by` runs it once for every column)."""
    out: dict = {}
    for r in rows_by(expr, column, value, key=key):
        acc = out.setdefault(tuple(r[k] for k in keys), {c: 0 for c in sums})
        for c in sums:
            acc[c] += int(r[c] or 0)
    return out


def table(con, name: str):
    """``con.table(name)``; in a `batch` each table is looked up once (a lookup reads its schema)."""
    memo = _Memo.active
    if memo is None:
        return con.table(name)
    key = ("table", id(con), name)
    if key not in memo:
        memo[key] = con.table(name)
    return memo[key]


def _tables(con) -> set[str]:
    memo = _Memo.active
    if memo is None:
        return set(con.list_tables())
    key = ("tables", id(con))
    if key not in memo:
        memo[key] = set(con.list_tables())
    return memo[key]


def has(con, *names: str) -> bool:
    tables = _tables(con)
    return all(n in tables for n in names)


def require(con, *names: str) -> None:
    missing = [n for n in names if n not in _tables(con)]
    if missing:
        raise ReportError(
            f"the database has no {', '.join(missing)} table(s): run the stages that write them first "
            f"(allpayer run / payments / settle)"
        )


def of_year(t, year: int, column: str = "performance_year"):
    return t.filter(t[column] == year)


def latest_version(got: list[dict]) -> list[dict]:
    """The rows of the latest settlement version among `got` (rows with ``run_id`` and ``version``):
    the version written by the latest run, ties broken by the version's name."""
    if not got:
        return []
    version = max(got, key=lambda r: (r["run_id"], r["version"]))["version"]
    return [r for r in got if r["version"] == version]


def high_cost_threshold(con, year: int) -> int | None:
    """The high-cost threshold (cents) of the core run that wrote `year`'s ``high_cost_claimants``:
    from its rows, or, when no member reached it, from that run's recorded parameters. None when
    the year has no such run."""
    import json

    if not has(con, "high_cost_claimants", "tcoc_member_month", "runs"):
        return None
    hc = of_year(table(con, "high_cost_claimants"), year, "year")
    got = rows(hc.aggregate(t=hc.threshold_cents.max()))
    if got and got[0]["t"] is not None:
        return int(got[0]["t"])
    mm = of_year(table(con, "tcoc_member_month"), year)
    r = table(con, "runs")
    runs_ = rows(r.filter(r.run_id.isin(mm.select("run_id").distinct().run_id)).select("parameters"))
    for run in runs_:
        params = run["parameters"]
        params = json.loads(params) if isinstance(params, str) else (params or {})
        if params.get("high_cost_threshold_cents") is not None:
            return int(params["high_cost_threshold_cents"])
    return None


def latest_run_id(con) -> str:
    r = table(con, "runs")
    got = rows(r.order_by(ibis.desc(r.seq)).limit(1).select("run_id"))
    if not got:
        raise ReportError("the database has no published run")
    return got[0]["run_id"]


def months_of(year: int) -> list[dt.date]:
    return [dt.date(year, m, 1) for m in range(1, 13)]
