"""Exact money arithmetic.

Inside the engine money is an integer number of cents. Rates are `Decimal`s parsed from strings.
A product of money and a rate is rounded to whole cents at once, with an explicit rounding mode
(half-up unless the contract terms say otherwise; note that Python's own default is half-even).
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from typing import Iterable, Sequence

ROUNDING_MODES = {
    "half_up": ROUND_HALF_UP,
    "half_even": ROUND_HALF_EVEN,
    "down": ROUND_DOWN,
    "up": ROUND_UP,
}

CENT = Decimal("0.01")


def to_decimal(value: object) -> Decimal:
    """Parse a money or rate value exactly. Floats are refused: they are not exact.

    >>> to_decimal("1.10")
    Decimal('1.10')
    >>> to_decimal(3)
    Decimal('3')
    """
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(f"refusing inexact value {value!r}: write money and rates as strings")
    try:
        return Decimal(str(value).strip())
    except InvalidOperation as exc:  # pragma: no cover - message path tested via callers
        raise ValueError(f"not a number: {value!r}") from exc


def round_money(amount: Decimal, mode: str = "half_up") -> Decimal:
    """Round a dollar amount to cents with the named rounding mode.

    >>> round_money(Decimal("2.345"))
    Decimal('2.35')
    >>> round_money(Decimal("2.345"), "half_even")
    Decimal('2.34')
    >>> round_money(Decimal("-2.345"))
    Decimal('-2.35')
    """
    return amount.quantize(CENT, rounding=ROUNDING_MODES[mode])


def dollars_to_cents(amount: object, mode: str = "half_up") -> int:
    """Dollars (string, int or Decimal) to integer cents.

    >>> dollars_to_cents("12.34")
    1234
    >>> dollars_to_cents("-0.005")
    -1
    """
    return int(round_money(to_decimal(amount), mode) * 100)


def exact_cents(amount: object) -> int:
    """Dollars (string, int or Decimal) to integer cents, without rounding: money read from a
    user's file is in whole cents, so a fraction of a cent is an error (as the loader's
    ``money_format`` rule says), not an amount to round.

    >>> exact_cents("-6854131.80")
    -685413180
    >>> exact_cents("1.005")
    Traceback (most recent call last):
    ...
    ValueError: 1.005 is not a whole number of cents
    """
    d = to_decimal(amount)
    if not d.is_finite():
        raise ValueError(f"{amount!s} is not an amount in dollars")
    cents = d * 100
    if cents != cents.to_integral_value():
        raise ValueError(f"{amount!s} is not a whole number of cents")
    if abs(cents) >= 2**63:  # money is stored as int64 cents
        raise ValueError(f"{amount!s} is beyond the amounts money columns hold")
    return int(cents)


def cents_to_dollars(cents: int) -> Decimal:
    """Integer cents to a Decimal dollar amount with two places.

    >>> cents_to_dollars(-105)
    Decimal('-1.05')
    """
    return (Decimal(int(cents)) / 100).quantize(CENT)


def apply_rate(cents: int, rate: Decimal, mode: str = "half_up") -> int:
    """Multiply a cent amount by a rate and round to a whole cent.

    >>> apply_rate(101, Decimal("0.5"))
    51
    >>> apply_rate(101, Decimal("0.5"), "half_even")
    50
    """
    return int((Decimal(int(cents)) * rate).quantize(Decimal(1), rounding=ROUNDING_MODES[mode]))


def largest_remainder(total_cents: int, weights: Sequence[object]) -> list[int]:
    """Split `total_cents` in proportion to `weights` so the parts sum exactly to the total.

    Each part gets the floor of its exact share; the cents left over go one at a time to the
    largest fractional remainders (ties to the earlier position). Negative totals are split as
    the mirror of the positive split.

    >>> largest_remainder(100, [1, 1, 1])
    [34, 33, 33]
    >>> largest_remainder(-100, [1, 1, 1])
    [-34, -33, -33]
    >>> sum(largest_remainder(1001, ["0.2", "0.3", "0.5"]))
    1001
    """
    ws = [to_decimal(w) for w in weights]
    if any(w < 0 for w in ws):
        raise ValueError("weights must be non-negative")
    if not ws:
        if total_cents:
            raise ValueError("cannot allocate a non-zero total over no weights")
        return []
    wsum = sum(ws)
    if wsum == 0:
        raise ValueError("cannot allocate over weights that sum to zero")
    sign = -1 if total_cents < 0 else 1
    total = abs(int(total_cents))
    exact = [Decimal(total) * w / wsum for w in ws]
    floors = [int(e) for e in exact]
    left = total - sum(floors)
    order = sorted(range(len(ws)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [sign * f for f in floors]


def sum_cents(values: Iterable[int]) -> int:
    return sum(int(v) for v in values)
