"""Settlement versions and the in-year forecast range.

A settlement has versions: ``forecast`` (in year, on incomplete claims), ``initial`` (after the
run-out), ``final`` and ``restated``. Each is tied to the run that computed it and to the claims
paid-through date of the core run it read. Publishing a version replaces that version's rows for
that year; every run's lines also stay in ``settlement_line_history`` so two runs can be diffed.

The forecast completes the actual TCOC with chain-ladder development factors: each service
month's FFS cost times the cumulative development factor at its lag (months from the service
month to the valuation month), rounded to cents. The range comes from the spread of the
development itself: in the paid-lag triangle each incurred month has its own link ratio from one
lag to the next; the low (high) cumulative factor multiplies the smallest (largest) observed link
ratio of every lag, never below 1. The settlement is run on the low, point and high actuals;
since a higher actual never raises the settlement, the high actual gives the low end of the range.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import ibis

from allpayer.errors import AllpayerError

VERSIONS = ("forecast", "initial", "final", "restated")

ONE = Decimal(1)
SCALE = Decimal("1e-10")


class VersionError(AllpayerError):
    """A settlement version cannot be made or compared."""


def check_version(version: str) -> str:
    if version not in VERSIONS:
        raise VersionError(f"unknown settlement version {version!r}: expected one of {', '.join(VERSIONS)}")
    return version


def runout_end(program) -> dt.date:
    """The last day of the claims run-out after the program's year (``settlement.runout_months``
    months after the effective end, to the end of that month)."""
    end = program.effective.end
    months = int(program.settlement.runout_months.value)
    first = dt.date(end.year + (end.month - 1 + months + 1) // 12, (end.month - 1 + months + 1) % 12 + 1, 1)
    return first - dt.timedelta(days=1)


def runout_note(program, version: str, paid_through: dt.date | None) -> str | None:
    """What the settlement's claims cutoff is against the contract's run-out: a settlement after the
    year (``initial``, ``final``, ``restated``) should read claims paid through the run-out's end.
    The note says when it reads fewer months (the settlement will move as claims arrive) or more
    (claims paid after the run-out are counted)."""
    if paid_through is None:
        return None
    months = int(program.settlement.runout_months.value)
    end = runout_end(program)
    text = f"claims paid through {paid_through}; the contract's run-out ({months} months) ends {end}"
    if version == "forecast" or paid_through == end:
        return text
    short = (end.year - paid_through.year) * 12 + end.month - paid_through.month
    if paid_through < end:
        return (f"{text}: this {version} settlement reads claims paid {max(short, 1)} month(s) before the run-out "
                "ends, so it will move as the rest are paid")
    return (f"{text}: this {version} settlement counts claims paid up to {max(-short, 1)} month(s) after the "
            "run-out; run the year with --paid-through at the run-out's end to settle on the contract's claims")


def core_run_of(con, year: int) -> dict:
    """The core run whose ``tcoc_member_month`` rows of `year` the settlement reads: its id, claims
    paid-through date and ``through`` (the last month of a year-to-date run, else None)."""
    if "tcoc_member_month" not in con.list_tables():
        raise VersionError(f"no tcoc_member_month table: run `allpayer run --year {year}` first")
    mm = con.table("tcoc_member_month")
    ids = con.to_pyarrow(mm.filter(mm.performance_year == year).select("run_id").distinct()).to_pylist()
    if not ids:
        raise VersionError(f"no core results for {year}: run `allpayer run --year {year}` first")
    r = con.table("runs")
    rows = con.to_pyarrow(r.filter(r.run_id.isin([i["run_id"] for i in ids]))
                          .order_by(ibis.desc(r.seq)).select("run_id", "paid_through", "parameters")).to_pylist()
    if not rows:
        raise VersionError(f"the core run of {year} has no run record")
    core = rows[0]
    parameters = core.pop("parameters")
    through = (json.loads(parameters) if isinstance(parameters, str) else parameters or {}).get("through")
    return {**core, "through": dt.date.fromisoformat(through) if through else None}


def year_end_core_run(core: dict, year: int, version: str) -> dict:
    """`core` (from `core_run_of`) when `version` may settle on it: a settlement after the year
    (initial, final, restated) needs the whole year, not a year-to-date run's months."""
    if core["through"] is not None and version != "forecast":
        raise VersionError(
            f"the core run {core['run_id']} of {year} runs through {core['through']:%Y-%m} (--through): the {version} "
            f"settlement needs the whole year; run `allpayer run --year {year}` without --through first")
    return core


def _months_between(a: dt.date, b: dt.date) -> int:
    return (b.year - a.year) * 12 + (b.month - a.month)


@dataclass(frozen=True)
class ForecastActual:
    paid_cents: int
    point_cents: int
    low_cents: int
    high_cents: int
    valuation_month: dt.date
    notes: tuple[str, ...]


def development_bounds(triangle_rows: list[dict], max_lag: int) -> tuple[list[Decimal], list[Decimal]]:
    """Low and high cumulative development factors by lag (index = lag, last = tail 1) from
    triangle rows (incurred_month, lag, cumulative_cents, observed) of one payer.

    >>> rows = [{"incurred_month": m, "lag": l, "cumulative_cents": c, "observed": True}
    ...         for m, l, c in [(1, 0, 100), (1, 1, 150), (2, 0, 100), (2, 1, 200)]]
    >>> low, high = development_bounds(rows, 1)
    >>> low, high
    ([Decimal('1.5000000000'), Decimal('1')], [Decimal('2.0000000000'), Decimal('1')])
    """
    cum: dict[tuple, int] = {}
    for r in triangle_rows:
        if r["observed"]:
            cum[(r["incurred_month"], int(r["lag"]))] = int(r["cumulative_cents"])
    lo_link: dict[int, Decimal] = {}
    hi_link: dict[int, Decimal] = {}
    for (m, lag), c in cum.items():
        nxt = cum.get((m, lag + 1))
        if nxt is None or c <= 0 or lag >= max_lag:
            continue
        ratio = max(Decimal(nxt) / Decimal(c), ONE)
        lo_link[lag] = min(lo_link.get(lag, ratio), ratio)
        hi_link[lag] = max(hi_link.get(lag, ratio), ratio)
    low = [ONE] * (max_lag + 1)
    high = [ONE] * (max_lag + 1)
    for lag in range(max_lag - 1, -1, -1):
        low[lag] = (low[lag + 1] * lo_link.get(lag, ONE)).quantize(SCALE, ROUND_HALF_UP)
        high[lag] = (high[lag + 1] * hi_link.get(lag, ONE)).quantize(SCALE, ROUND_HALF_UP)
    return low, high


def forecast_actual(con, program, year: int, paid_through: dt.date, *, max_lag: int = 12) -> ForecastActual:
    """The program's FFS-basis actual completed to ultimate, with its low-high range."""
    from allpayer.core import tcoc
    from allpayer.pipeline import valuation_date
    from allpayer.settlement.inputs import monthly_paid

    valuation = valuation_date(paid_through)
    vmonth = valuation.replace(day=1)
    notes: list[str] = []
    months = monthly_paid(con, program, year)
    cf = con.table("completion_factors") if "completion_factors" in con.list_tables() else None
    point_cdf: dict[tuple[str, int], Decimal] = {}
    if cf is not None:
        cf = cf.filter(cf.performance_year == year)
        for r in con.to_pyarrow(cf.select("payer", "lag", "cumulative_development_factor")).to_pylist():
            point_cdf[(r["payer"], int(r["lag"]))] = Decimal(str(r["cumulative_development_factor"]))
    else:
        notes.append("no completion_factors table: the forecast is the paid amount")
    med = con.table("medical_claim")
    rx = con.table("pharmacy_claim") if "pharmacy_claim" in con.list_tables() else None
    payers = sorted({m["payer"] for m in months})
    med = med.filter(med.payer.isin(payers))
    if rx is not None:
        rx = rx.filter(rx.payer.isin(payers))
    comp = tcoc.completion(tcoc.claim_payment_rows(med, rx, incurred_between=tcoc.completion_window(valuation)),
                           valuation, max_lag=max_lag)
    tri = con.to_pyarrow(comp.triangle.select("payer", "incurred_month", "lag", "cumulative_cents", "observed")).to_pylist()
    bounds = {}
    for payer in payers:
        bounds[payer] = development_bounds([r for r in tri if r["payer"] == payer], max_lag)
    paid = point = low = high = 0
    for m in months:
        lag = max(0, min(_months_between(m["month"], vmonth), max_lag))
        amount = int(m["ffs_paid_cents"] or 0)
        if m["month"] > vmonth:
            notes.append(f"{m['month']:%Y-%m} is after the valuation month: counted as paid")
            lag = max_lag
        f_point = point_cdf.get((m["payer"], lag), ONE)
        f_low, f_high = (b[lag] for b in bounds[m["payer"]])
        paid += amount
        point += int((amount * f_point).quantize(ONE, ROUND_HALF_UP))
        low += int((amount * min(f_low, f_point)).quantize(ONE, ROUND_HALF_UP))
        high += int((amount * max(f_high, f_point)).quantize(ONE, ROUND_HALF_UP))
    return ForecastActual(paid, point, low, high, vmonth, tuple(dict.fromkeys(notes)))


__all__ = ["VERSIONS", "check_version", "core_run_of", "year_end_core_run", "runout_end", "runout_note", "forecast_actual",
           "development_bounds", "ForecastActual", "VersionError"]
