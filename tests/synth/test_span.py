import datetime as dt

import numpy as np
import pytest

from allpayer.errors import AllpayerError
from allpayer.synth.span import DEFAULT_YEARS, Span, day_number, to_date


def test_default_span_has_a_three_month_run_out():
    s = Span.of(DEFAULT_YEARS)
    assert (s.start, s.end, s.paid_through) == (dt.date(2022, 1, 1), dt.date(2024, 12, 31), dt.date(2025, 3, 31))
    assert s.n_months == 36


def test_years_are_sorted_and_must_be_consecutive():
    assert Span.of([2024, 2023]).years == (2023, 2024)
    for bad in ([], [2022, 2024], [2022, 2022], [1899]):
        with pytest.raises(AllpayerError):
            Span.of(bad)


def test_month_arithmetic():
    s = Span.of([2022, 2023])
    starts = s.month_start(np.array([-1, 0, 1, 13, 24]))
    assert [to_date(d) for d in starts] == [dt.date(2021, 12, 1), dt.date(2022, 1, 1), dt.date(2022, 2, 1),
                                          dt.date(2023, 2, 1), dt.date(2024, 1, 1)]
    days = np.array([day_number(dt.date(2021, 12, 31)), day_number(dt.date(2022, 3, 15)), day_number(dt.date(2023, 12, 31))])
    assert s.month_of(days).tolist() == [-1, 2, 23]
