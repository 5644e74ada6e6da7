"""The report model shared by every audience, and small helpers over the run's tables."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

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


@dataclass
class Report:
    kind: str
    org: str
    year: int
    run_id: str
    title: str
    subtitle: str
    totals: list[tuple[str, str]] = field(default_factory=list)  # (label, display value)
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return f"{self.kind}-{safe_name(self.org)}-{self.year}"


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


def rows(expr) -> list[dict]:
    """A small (already aggregated) Ibis expression as a list of dicts."""
    return expr.to_pyarrow().to_pylist()


def has(con, *names: str) -> bool:
    tables = set(con.list_tables())
    return all(n in tables for n in names)


def require(con, *names: str) -> None:
    missing = [n for n in names if n not in set(con.list_tables())]
    if missing:
        raise ReportError(
            f"the database has no {', '.join(missing)} table(s): run the stages that write them first "
            f"(allpayer run / payments / settle)"
        )


def of_year(t, year: int, column: str = "performance_year"):
    return t.filter(t[column] == year)


def latest_run_id(con) -> str:
    r = con.table("runs")
    got = rows(r.order_by(ibis.desc(r.seq)).limit(1).select("run_id"))
    if not got:
        raise ReportError("the database has no published run")
    return got[0]["run_id"]


def months_of(year: int) -> list[dt.date]:
    return [dt.date(year, m, 1) for m in range(1, 13)]
