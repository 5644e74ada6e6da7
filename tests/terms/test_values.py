"""Scalar value types: exact rates, money, weights, dates, counts, flags and identifiers."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
from pydantic import TypeAdapter, ValidationError

from allpayer.terms.values import CellId, Count, Factor, Flag, Ident, IsoDate, Label, Money, Rate, SignedRate, Text, Weight


def _ok(tp, value):
    return TypeAdapter(tp).validate_python(value)


def _err(tp, value) -> str:
    with pytest.raises(ValidationError) as info:
        TypeAdapter(tp).validate_python(value)
    return info.value.errors()[0]["msg"]


@pytest.mark.parametrize(
    "text, expected",
    [("0", Decimal("0")), ("1", Decimal("1")), ("0.03", Decimal("0.03")), (" 0.5 ", Decimal("0.5")), (".25", Decimal("0.25"))],
)
def test_rate_parses_exact_decimals(text, expected):
    value = _ok(Rate, text)
    assert value == expected and isinstance(value, Decimal)


def test_rate_keeps_the_written_digits():
    assert str(_ok(Rate, "0.030")) == "0.030"


@pytest.mark.parametrize(
    "value, message",
    [
        (0.03, 'got the bare number 0.03: write rates as quoted strings ("0.03"); a YAML float is inexact'),
        (1, 'got the bare number 1: write rates as quoted strings ("1")'),
        (True, "expected a rate written as a quoted string, got true"),
        ("3%", 'not a percentage: write 3% as "0.03"'),
        ("1.5", "expected a rate between 0 and 1"),
        ("-0.1", "expected a rate between 0 and 1"),
        ("1e-2", 'expected a rate written as a plain decimal string such as "0.03"'),
        ("NaN", "plain decimal string"),
        ("abc", "plain decimal string"),
        ([1], "expected a rate written as a quoted string, got list"),
    ],
)
def test_rate_refuses(value, message):
    assert message in _err(Rate, value)


def test_signed_rate_allows_negative_trend_but_not_minus_one():
    assert _ok(SignedRate, "-0.02") == Decimal("-0.02")
    assert "greater than -1 and less than 1" in _err(SignedRate, "-1")
    assert "greater than -1 and less than 1" in _err(SignedRate, "1.2")


def test_money_whole_cents_non_negative():
    assert _ok(Money, "4.20") == Decimal("4.20")
    assert _ok(Money, "8400000") == Decimal("8400000")
    assert "at most two decimals" in _err(Money, "1.755")
    assert "non-negative dollar amount" in _err(Money, "-1.00")
    assert 'write money amounts as quoted strings ("150")' in _err(Money, 150)


def test_factor_may_exceed_one():
    assert _ok(Factor, "1.20") == Decimal("1.20")
    assert "non-negative" in _err(Factor, "-0.5")


@pytest.mark.parametrize("text, expected", [("1/3", Fraction(1, 3)), ("2 / 3", Fraction(2, 3)), ("0.6", Fraction(3, 5)), ("1", Fraction(1))])
def test_weight_decimal_or_fraction(text, expected):
    assert _ok(Weight, text) == expected


def test_weight_refusals():
    assert "denominator 0" in _err(Weight, "1/0")
    assert "between 0 and 1" in _err(Weight, "4/3")
    assert "bare number" in _err(Weight, 0.5)


def test_dates_are_dates_never_numbers_or_datetimes():
    assert _ok(IsoDate, "2022-07-01") == dt.date(2022, 7, 1)
    assert _ok(IsoDate, dt.date(2022, 7, 1)) == dt.date(2022, 7, 1)
    assert "expected a date YYYY-MM-DD, got 20220701" in _err(IsoDate, 20220701)
    assert "month must be in 1..12" in _err(IsoDate, "2022-13-01")
    assert "without a time" in _err(IsoDate, dt.datetime(2022, 1, 1, 12))
    assert "expected a date" in _err(IsoDate, "01/07/2022")


def test_counts_flags_and_text_are_strict():
    assert _ok(Count, 24) == 24
    assert "whole number, got 24.0" in _err(Count, 24.0)
    assert "whole number, got True" in _err(Count, True)
    assert "at least 0" in _err(Count, -1)
    assert _ok(Flag, False) is False
    assert "true or false, got 'yes'" in _err(Flag, "yes")
    assert "non-empty text" in _err(Text, "  ")


def test_identifiers_labels_and_cell_ids():
    assert _ok(Ident, "vt-2022-medicaid") == "vt-2022-medicaid"
    assert "quote it" in _err(Ident, 470001)
    assert "expected an identifier" in _err(Ident, "two words")
    assert _ok(Label, "65+") == "65+"
    assert "no '/'" in _err(Label, "a/b")
    assert _ok(CellId, "18-44/female") == "18-44/female"
    assert "rate cell id" in _err(CellId, "18-44//female")
