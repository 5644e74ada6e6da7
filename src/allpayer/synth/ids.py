"""Identifier formats for synthetic data: NPI, TIN, CCN, LOINC, member and claim ids.

Everything here is vectorized (numpy in, numpy or pyarrow out) and deterministic.

>>> int(npi_check_digit(np.array([123456789]))[0])
3
>>> loinc_check_digit(np.array([4548, 8480, 8462])).tolist()
[4, 6, 4]
>>> luhn_valid("1234567893", prefix="80840")
True
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _luhn_sum(digits: np.ndarray, double_rightmost: bool) -> np.ndarray:
    """Luhn digit sum of a (n, k) array of digits (most significant first)."""
    k = digits.shape[1]
    # position counted from the right, 0 = rightmost
    pos = np.arange(k - 1, -1, -1)
    doubled = (pos % 2 == 0) if double_rightmost else (pos % 2 == 1)
    d = digits.astype(np.int64)
    dd = d * 2
    dd = np.where(dd > 9, dd - 9, dd)
    return np.where(doubled[None, :], dd, d).sum(axis=1)


def _digits(values: np.ndarray, width: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.int64)[:, None]
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return (v // powers[None, :]) % 10


def npi_check_digit(base9: np.ndarray) -> np.ndarray:
    """Luhn check digit of 9-digit NPI bases, computed with the 80840 card-issuer prefix."""
    prefix = _digits(np.full(len(base9), 80840, dtype=np.int64), 5)
    digits = np.concatenate([prefix, _digits(base9, 9)], axis=1)
    s = _luhn_sum(digits, double_rightmost=True)
    return ((10 - s % 10) % 10).astype(np.int64)


def loinc_check_digit(base: np.ndarray) -> np.ndarray:
    """LOINC mod-10 check digit (the Luhn scheme) of the numeric part before the hyphen."""
    base = np.asarray(base, dtype=np.int64)
    width = int(max(1, len(str(int(base.max()))) if len(base) else 1))
    digits = _digits(base, width)
    s = _luhn_sum(digits, double_rightmost=True)
    return ((10 - s % 10) % 10).astype(np.int64)


def loinc_code(base: int) -> str:
    """A LOINC code with its check digit: ``loinc_code(4548) == '4548-4'``."""
    return f"{base}-{int(loinc_check_digit(np.array([base]))[0])}"


def luhn_valid(code: str, prefix: str = "") -> bool:
    """True when `code` (digits, last one the check digit) passes the Luhn test after `prefix`."""
    s = prefix + code
    if not s.isdigit():
        return False
    digits = np.array([[int(c) for c in s]])
    return int(_luhn_sum(digits, double_rightmost=False)[0]) % 10 == 0


def unique_numbers(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """`n` distinct integers in [low, high), in a random but seed-determined order."""
    if high - low < n:
        raise ValueError("range too small")
    if high - low <= 4 * n:
        return low + rng.permutation(high - low)[:n]
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        draw = rng.integers(low, high, size=2 * (n - len(out)) + 16)
        out = np.concatenate([out, draw])
        _, first = np.unique(out, return_index=True)
        out = out[np.sort(first)]
    return out[:n]


def make_npis(rng: np.random.Generator, n: int, organization: np.ndarray | None = None) -> list[str]:
    """`n` distinct valid NPIs. Individuals start with 1, organizations with 2."""
    base = unique_numbers(rng, n, 0, 100_000_000)
    lead = np.ones(n, dtype=np.int64) if organization is None else np.where(organization, 2, 1)
    base9 = lead * 100_000_000 + base
    check = npi_check_digit(base9)
    full = base9 * 10 + check
    out = [str(int(x)) for x in full]
    return out


def make_tins(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct 9-digit employer identification numbers with Vermont-like prefixes (03, 22, 45)."""
    body = unique_numbers(rng, n, 0, 10_000_000)
    prefixes = np.array([3, 22, 45, 82])[rng.integers(0, 4, size=n)]
    full = prefixes * 10_000_000 + body
    return [f"{int(x):09d}" for x in full]


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """Strings `prefix` + zero-padded `numbers`, built in Arrow (fast for millions of rows)."""
    s = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()), width, padding="0")
    return pc.binary_join_element_wise(pa.scalar(prefix), s, "")


def scramble(numbers: np.ndarray, modulus: int, multiplier: int, offset: int) -> np.ndarray:
    """A bijection of [0, modulus) used to make ids that do not reveal their order.

    `multiplier` must be coprime with `modulus`.
    """
    x = np.asarray(numbers, dtype=np.int64) % modulus
    # (a * x + b) mod m without overflow: split a
    a_hi, a_lo = divmod(multiplier, 1 << 20)
    prod = ((a_hi * x) % modulus * (1 << 20) + a_lo * x) % modulus
    return (prod + offset) % modulus
