"""Scalar value types of contract terms: exact rates, money, weights, dates and identifiers.

Money and rates are written in YAML as quoted strings and become exact `Decimal`s. A bare YAML
number (``0.03`` or ``150``) is refused with a message naming the key: a YAML float is inexact,
and accepting bare integers but not bare decimals would be a trap. Weights may also be written as
fractions (``"1/3"``) and become exact `Fraction`s.

Every parse failure is raised as a `pydantic_core.PydanticCustomError` whose message says what
was expected, so the loader can report it as ``file: key.path: problem``.

>>> from pydantic import TypeAdapter
>>> TypeAdapter(Rate).validate_python("0.03")
Decimal('0.03')
>>> TypeAdapter(Weight).validate_python("1/3")
Fraction(1, 3)
>>> TypeAdapter(Money).validate_python("4.20")
Decimal('4.20')
>>> from pydantic import ValidationError
>>> try:
...     TypeAdapter(Rate).validate_python(0.03)
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
got the bare number 0.03: write rates as quoted strings ("0.03"); a YAML float is inexact
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "Rate",
    "SignedRate",
    "Money",
    "Factor",
    "Weight",
    "IsoDate",
    "Count",
    "Flag",
    "Ident",
    "Label",
    "CellId",
    "Text",
    "problem",
]


def problem(message: str, at: str = "") -> PydanticCustomError:
    """A validation problem with a user-facing message, optionally below the current key.

    `at` is a key path relative to the object being validated (``"bands[1].upper"``); the loader
    appends it to the location pydantic reports.
    """
    return PydanticCustomError("terms_value", "{problem}", {"problem": message, "at": at})


def _number_text(value: Any, what: str) -> str:
    """The text of a number written as a string; refuse bare numbers, booleans and other types."""
    if isinstance(value, bool):
        raise problem(f"expected a {what} written as a quoted string, got {str(value).lower()}")
    if isinstance(value, (int, float)):
        raise problem(
            f'got the bare number {value!r}: write {what}s as quoted strings ("{value!r}")'
            + ("; a YAML float is inexact" if isinstance(value, float) else "")
        )
    if isinstance(value, (Decimal, Fraction)):
        return str(value)
    if not isinstance(value, str):
        raise problem(f"expected a {what} written as a quoted string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith("%"):
        raise problem(f'expected a {what} as a decimal fraction, not a percentage: write 3% as "0.03", got {value!r}')
    return text


_DECIMAL_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


def _decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, Decimal) and value.is_finite():
        return value
    text = _number_text(value, what)
    if not _DECIMAL_RE.match(text):
        raise problem(f"expected a {what} written as a plain decimal string such as \"0.03\", got {value!r}")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - excluded by the pattern above
        raise problem(f"expected a {what}, got {value!r}")


def _rate(value: Any) -> Decimal:
    d = _decimal(value, "rate")
    if not (Decimal(0) <= d <= Decimal(1)):
        raise problem(f'expected a rate between 0 and 1 (write 3% as "0.03"), got {d}')
    return d


def _signed_rate(value: Any) -> Decimal:
    d = _decimal(value, "rate")
    if not (Decimal(-1) < d < Decimal(1)):
        raise problem(f"expected a rate greater than -1 and less than 1, got {d}")
    return d


def _money(value: Any) -> Decimal:
    d = _decimal(value, "money amount")
    if d < 0:
        raise problem(f"expected a non-negative dollar amount, got {d}")
    if d.as_tuple().exponent < -2:  # type: ignore[operator]
        raise problem(f"expected dollars with at most two decimals (whole cents), got {d}")
    return d


def _factor(value: Any) -> Decimal:
    d = _decimal(value, "factor")
    if d < 0:
        raise problem(f"expected a non-negative number, got {d}")
    return d


_FRACTION_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def _weight(value: Any) -> Fraction:
    if isinstance(value, Fraction):
        f = value
    else:
        text = _number_text(value, "weight")
        m = _FRACTION_RE.match(text)
        if m:
            if int(m.group(2)) == 0:
                raise problem(f"expected a weight, got a fraction with denominator 0: {value!r}")
            f = Fraction(int(m.group(1)), int(m.group(2)))
        else:
            f = Fraction(_decimal(text, "weight"))
    if not (0 <= f <= 1):
        raise problem(f"expected a weight between 0 and 1, got {value}")
    return f


def _iso_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise problem(f"expected a date YYYY-MM-DD without a time, got {value.isoformat()}")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                return dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise problem(f"expected a date YYYY-MM-DD, got {value!r} ({exc})")
    raise problem(f"expected a date YYYY-MM-DD, got {value!r}")


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise problem(f"expected a whole number, got {value!r}")
    if value < 0:
        raise problem(f"expected a whole number of at least 0, got {value}")
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"expected true or false, got {value!r}")
    return value


_IDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _ident(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"expected an identifier (letters, digits, '_', '-', '.'), got {value!r}: quote it")
    if not _IDENT_RE.match(value):
        raise problem(f"expected an identifier (letters, digits, '_', '-', '.'), got {value!r}")
    return value


_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*$")
_CELL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]*(/[A-Za-z0-9][A-Za-z0-9_.+\-]*)*$")


def _label(value: Any) -> str:
    if not isinstance(value, str) or not _LABEL_RE.match(value):
        raise problem(f"expected a label (letters, digits, '_', '-', '.', '+'; no '/'), got {value!r}")
    return value


def _cell_id(value: Any) -> str:
    if not isinstance(value, str) or not _CELL_RE.match(value):
        raise problem(f"expected a rate cell id (labels joined by '/', e.g. 'abd' or '18-44/female'), got {value!r}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise problem(f"expected non-empty text, got {value!r}")
    return value


def _iso(value: dt.date) -> str:
    return value.isoformat()


Rate = Annotated[Decimal, PlainValidator(_rate), PlainSerializer(str, when_used="json")]
"""A fraction between 0 and 1 inclusive, written as a string: ``"0.03"`` is 3%."""

SignedRate = Annotated[Decimal, PlainValidator(_signed_rate), PlainSerializer(str, when_used="json")]
"""A rate that may be negative (trend, corridor bounds), strictly between -1 and 1."""

Money = Annotated[Decimal, PlainValidator(_money), PlainSerializer(str, when_used="json")]
"""Non-negative dollars with at most two decimals, written as a string: ``"4.20"``."""

Factor = Annotated[Decimal, PlainValidator(_factor), PlainSerializer(str, when_used="json")]
"""A non-negative exact number (multipliers, points), written as a string."""

Weight = Annotated[Fraction, PlainValidator(_weight), PlainSerializer(str, when_used="json")]
"""A weight between 0 and 1, written as a decimal (``"0.6"``) or a fraction (``"2/3"``)."""

IsoDate = Annotated[dt.date, PlainValidator(_iso_date), PlainSerializer(_iso, when_used="json")]
"""A calendar date ``YYYY-MM-DD`` (a YAML date or an ISO string; never a number)."""

Count = Annotated[int, PlainValidator(_count)]
"""A whole number of at least 0 (months, members, quarters); a YAML float is refused."""

Flag = Annotated[bool, PlainValidator(_flag)]
"""``true`` or ``false`` only."""

Ident = Annotated[str, PlainValidator(_ident)]
"""An identifier: letters, digits, ``_``, ``-`` and ``.``, starting with a letter or digit."""

Label = Annotated[str, PlainValidator(_label)]
"""A rate-cell value (age band id, aid category): letters, digits, ``_``, ``-``, ``.``, ``+``."""

CellId = Annotated[str, PlainValidator(_cell_id)]
"""A rate cell id: labels joined by ``/`` in dimension order (``abd``, ``18-44/female``)."""

Text = Annotated[str, PlainValidator(_text)]
"""Free, non-empty text."""
