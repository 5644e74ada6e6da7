"""Code formats as vectorized Ibis expressions: normalization and validity checks.

Each format has a normalizer (applied before the check and kept in the loaded table) and a
validity test on the normalized text. Check digits are computed column-wise with integer
arithmetic on the digits, never row by row in Python.

| format    | normalized form                     | valid when                                                |
|-----------|-------------------------------------|-----------------------------------------------------------|
| icd10cm   | upper case, dot removed             | letter, digit, digit or letter, then 0-4 letters/digits   |
| hcpcs     | upper case                          | CPT ``nnnnn``/``nnnnF``/``nnnnT``/``nnnnU``/``nnnnM`` or level II ``Annnn`` |
| npi       | as given                            | 10 digits starting 1 or 2, Luhn check digit with prefix 80840 |
| tin       | hyphens removed                     | 9 digits                                                  |
| loinc     | as given                            | ``n{1,7}-c`` and ``c`` is the LOINC mod-10 check digit     |
| ndc       | 11 digits (hyphenated 4-4-2, 5-3-2, 5-4-1, 5-4-2 padded to 5-4-2) | 11 digits          |
| pos       | left-padded with 0 to 2 digits      | 2 digits                                                  |
| revenue   | left-padded with 0 to 4 digits      | 4 digits                                                  |
| bill_type | a leading 0 of a 4-digit code dropped | 3 digits                                                |
| ccn       | upper case, hyphens removed         | 2 digits (state), a digit or letter, 3 digits             |
| drg       | left-padded with 0 to 3 digits      | 3 digits                                                  |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import ibis
import ibis.expr.types as ir

NPI_PREFIX_SUM = 24
"""Luhn contribution of the ISO card-issuer prefix 80840 that precedes every NPI."""


def _luhn_double(d: ir.IntegerValue) -> ir.IntegerValue:
    """Sum of the digits of 2*d for a single digit d (the Luhn doubling step)."""
    return d * 2 - ibis.ifelse(d >= 5, 9, 0)


def _pad_to(s: ir.StringValue, n: int) -> ir.StringValue:
    """Left-pad with zeros to `n` characters; longer values are left as they are."""
    return ibis.ifelse(s.length() < n, s.lpad(n, "0"), s)


def npi_number_check_ok(n: ir.IntegerValue) -> ir.BooleanValue:
    """True when the digits of a 10-digit NPI, read as the number `n`, end in a correct check digit.

    The digits come from the number by integer arithmetic: converting the text once and dividing
    is several times cheaper than ten one-character substrings, each converted (the NPI check was
    the most expensive rule of loading claims: three NPI columns on every line).
    """

    def digit(i: int) -> ir.IntegerValue:  # 0-based from the left of the 10 digits
        return (n // 10 ** (9 - i)) % 10

    doubled = sum(_luhn_double(digit(i)) for i in (0, 2, 4, 6, 8))
    plain = sum(digit(i) for i in (1, 3, 5, 7))
    total = doubled + plain + NPI_PREFIX_SUM
    return ((10 - total % 10) % 10) == digit(9)


def loinc_number_check_ok(n: ir.IntegerValue) -> ir.BooleanValue:
    """True when a LOINC code ``number-check``, read as the number `n` of its digits without the
    hyphen (``4548-4`` is 45484), carries the correct mod-10 check digit (its last digit).

    The number part is taken as 7 digits (zeros on the left); counting from the right, odd
    positions are doubled (digit sums of the products) and even positions added as they are. The
    digits come from the number by integer arithmetic, as for the NPI: splitting the text and
    converting each digit cost about 1 µs per row, which at 3.6 million observations was most of
    their load.
    """
    number, check = n // 10, n % 10

    def digit(i: int) -> ir.IntegerValue:  # 0-based from the left of the 7 digits
        return (number // 10 ** (6 - i)) % 10

    doubled = sum(_luhn_double(digit(i)) for i in (0, 2, 4, 6))
    plain = sum(digit(i) for i in (1, 3, 5))
    total = doubled + plain
    return ((10 - total % 10) % 10) == check


def _ndc_normalize(s: ir.StringValue) -> ir.StringValue:
    parts = s.split("-")
    hyphenated = _pad_to(parts[0], 5) + _pad_to(parts[1], 4) + _pad_to(parts[2], 2)
    ok_hyphen = s.re_search(r"^[0-9]{4,5}-[0-9]{3,4}-[0-9]{1,2}$") & (s.length() - 2).isin([10, 11])
    return ibis.ifelse(s.contains("-"), ibis.ifelse(ok_hyphen, hyphenated, s), s)


@dataclass(frozen=True)
class CodeFormat:
    """A code format: how to normalize it, how to test it, and how to describe it in messages."""

    name: str
    description: str
    normalize: Callable[[ir.StringValue], ir.StringValue]
    check: Callable[[ir.StringValue], ir.BooleanValue]
    number_check: Callable[[ir.IntegerValue], ir.BooleanValue] | None = None
    """A further test of a code of digits read as a number (a check digit), for codes that pass
    `check`. Validation converts the column to a number once, in the step before the checks."""
    to_number: Callable[[ir.StringValue], ir.IntegerValue] = lambda s: s.try_cast("int64")
    """How a normalized code that passes `check` is read as the number `number_check` tests."""


def _regex(pattern: str) -> Callable[[ir.StringValue], ir.BooleanValue]:
    return lambda s: s.re_search(pattern)


FORMATS: dict[str, CodeFormat] = {
    f.name: f
    for f in (
        CodeFormat(
            "icd10cm",
            "ICD-10-CM code (e.g. E11.9 or E119)",
            lambda s: s.upper().replace(".", ""),
            _regex(r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{0,4}$"),
        ),
        CodeFormat(
            "hcpcs",
            "HCPCS/CPT code (5 characters, e.g. 99213 or G0439)",
            lambda s: s.upper(),
            _regex(r"^([0-9]{4}[0-9FMTU]|[A-Z][0-9]{4})$"),
        ),
        CodeFormat(
            "npi",
            "NPI (10 digits with a valid check digit)",
            lambda s: s,
            _regex(r"^[12][0-9]{9}$"),
            npi_number_check_ok,
        ),
        CodeFormat("tin", "TIN (9 digits)", lambda s: s.replace("-", ""), _regex(r"^[0-9]{9}$")),
        CodeFormat(
            "loinc",
            "LOINC code (digits, hyphen, valid check digit, e.g. 4548-4)",
            lambda s: s,
            _regex(r"^[0-9]{1,7}-[0-9]$"),
            loinc_number_check_ok,
            lambda s: s.replace("-", "").try_cast("int64"),
        ),
        CodeFormat("ndc", "NDC (11 digits, or 10 digits hyphenated)", _ndc_normalize, _regex(r"^[0-9]{11}$")),
        CodeFormat("pos", "place of service code (2 digits)", lambda s: _pad_to(s, 2), _regex(r"^[0-9]{2}$")),
        CodeFormat("revenue", "revenue center code (4 digits)", lambda s: _pad_to(s, 4), _regex(r"^[0-9]{4}$")),
        CodeFormat(
            "bill_type",
            "type of bill (3 digits)",
            lambda s: ibis.ifelse(s.re_search(r"^0[0-9]{3}$"), s.substr(1), s),
            _regex(r"^[0-9]{3}$"),
        ),
        CodeFormat(
            "ccn",
            "CMS certification number (6 characters, e.g. 470003)",
            lambda s: s.upper().replace("-", ""),
            _regex(r"^[0-9]{2}[0-9A-Z][0-9]{3}$"),
        ),
        CodeFormat("drg", "DRG code (3 digits)", lambda s: _pad_to(s, 3), _regex(r"^[0-9]{3}$")),
    )
}


def code_format(name: str) -> CodeFormat:
    """Look up a code format by name (as used in `Column.code_format`)."""
    try:
        return FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown code format {name!r}; known: {', '.join(FORMATS)}") from None


def normalize(name: str, value: ir.StringValue) -> ir.StringValue:
    """The normalized form of a (trimmed, non-empty) code value."""
    return code_format(name).normalize(value)


def as_number(name: str, normalized: ir.StringValue) -> ir.IntegerValue | None:
    """A normalized code read as a number, for a format with a `CodeFormat.number_check`
    (None for the other formats)."""
    fmt = code_format(name)
    return fmt.to_number(normalized) if fmt.number_check is not None else None


def is_valid(
    name: str, normalized: ir.StringValue, number: ir.IntegerValue | None = None, failing: Sequence[int] | None = None
) -> ir.BooleanValue:
    """True where a normalized code is valid for its format (never NULL for a non-NULL input).

    `number`: the code as `as_number` reads it, for a format with a `CodeFormat.number_check`
    (validation converts it once, in the step before the checks); computed here when not given.
    `failing`: for such a format, the numbers known to fail its number check among the values
    tested (found beforehand on their distinct values): the check is then membership in that
    list, not the arithmetic on every row.
    """
    fmt = code_format(name)
    ok = fmt.check(normalized)
    if fmt.number_check is not None:
        n = as_number(name, normalized) if number is None else number
        if failing is None:
            ok = ok & fmt.number_check(n)
        elif failing:
            ok = ok & ~ibis.literal(list(failing), type="array<int64>").contains(n)
    return ok.fill_null(False)


def number_check_failures(name: str, normalized: ir.StringValue) -> ir.BooleanValue:
    """True where a normalized code has its format's shape (`CodeFormat.check`) but fails its
    `CodeFormat.number_check`: the values `is_valid`'s ``failing`` lists."""
    fmt = code_format(name)
    return (fmt.check(normalized) & ~fmt.number_check(as_number(name, normalized))).fill_null(False)
