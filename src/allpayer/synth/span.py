"""The generated period and day arithmetic (dates are int32 days since 1970-01-01).

>>> s = Span.of((2022, 2023, 2024))
>>> s.start, s.end, s.paid_through
(datetime.date(2022, 1, 1), datetime.date(2024, 12, 31), datetime.date(2025, 3, 31))
>>> int(s.month_start(np.array([0, 12, -1]))[2] - s.start_day)
-31
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from allpayer.errors import AllpayerError

EPOCH = dt.date(1970, 1, 1)
DEFAULT_YEARS: tuple[int, ...] = (2022, 2023, 2024)
"""The default span: 24-month attribution lookback, a base year and prior-year diagnoses."""
RUN_OUT_MONTHS = 3


def day_number(d: dt.date) -> int:
    return (d - EPOCH).days


def to_date(day: int) -> dt.date:
    return EPOCH + dt.timedelta(days=int(day))


@dataclass(frozen=True)
class Span:
    """Service dates from 1 January of the first year to 31 December of the last; paid dates run
    three months longer (the run-out)."""

    years: tuple[int, ...]

    @classmethod
    def of(cls, years) -> "Span":
        ys = tuple(sorted(int(y) for y in years))
        if not ys:
            raise AllpayerError("--years needs at least one year")
        if len(set(ys)) != len(ys) or ys != tuple(range(ys[0], ys[0] + len(ys))):
            raise AllpayerError(f"--years must be consecutive years without repeats, got {' '.join(map(str, years))}")
        if ys[0] < 2000 or ys[-1] > 2100:
            raise AllpayerError(f"--years must lie between 2000 and 2100, got {' '.join(map(str, ys))}")
        return cls(ys)

    @property
    def start(self) -> dt.date:
        return dt.date(self.years[0], 1, 1)

    @property
    def end(self) -> dt.date:
        return dt.date(self.years[-1], 12, 31)

    @property
    def paid_through(self) -> dt.date:
        return dt.date(self.years[-1] + 1, RUN_OUT_MONTHS + 1, 1) - dt.timedelta(days=1)

    @property
    def start_day(self) -> int:
        return day_number(self.start)

    @property
    def end_day(self) -> int:
        return day_number(self.end)

    @property
    def paid_through_day(self) -> int:
        return day_number(self.paid_through)

    @property
    def n_months(self) -> int:
        return 12 * len(self.years)

    def month_start(self, m: np.ndarray) -> np.ndarray:
        """Day number of the first day of month `m` counted from the span's first month (0)."""
        base = np.datetime64(f"{self.years[0]:04d}-01", "M")
        return (base + np.asarray(m, dtype=np.int64)).astype("datetime64[D]").astype(np.int64).astype(np.int32)

    def month_of(self, days: np.ndarray) -> np.ndarray:
        """Month index (0 = the span's first month) of day numbers."""
        base = np.datetime64(f"{self.years[0]:04d}-01", "M")
        d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
        return (d.astype("datetime64[M]") - base).astype(np.int64)

    def year_start_day(self, year: int) -> int:
        return day_number(dt.date(year, 1, 1))
