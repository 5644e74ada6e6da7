"""Code formats: normalization, format checks and check digits, against hand-checked values and
a plain-Python reference implementation of the check-digit algorithms."""

from __future__ import annotations

import ibis
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allpayer.inputs import codes

CON = ibis.duckdb.connect()


def evaluate(fmt: str, values: list[str]) -> list[tuple[str, bool]]:
    t = ibis.memtable({"v": values}, schema={"v": "string"})
    n = codes.normalize(fmt, t.v)
    out = CON.execute(t.select(n=n, ok=codes.is_valid(fmt, n)))
    return list(zip(out["n"], out["ok"]))


def npi_check_digit(base9: str) -> int:
    """Reference: Luhn over '80840' + the 9 base digits."""
    digits = [int(c) for c in "80840" + base9]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


def loinc_check_digit(number: str) -> int:
    """Reference: the LOINC mod-10 algorithm as published (odd positions from the right, as a
    number, doubled; even positions prepended; digits summed)."""
    rev = number[::-1]
    odd = rev[0::2][::-1]
    even = rev[1::2][::-1]
    doubled = str(int(odd) * 2)
    total = sum(int(c) for c in even + doubled)
    return (10 - total % 10) % 10


@pytest.mark.parametrize(
    "fmt, value, normalized, ok",
    [
        ("npi", "1234567893", "1234567893", True),  # the CMS example NPI
        ("npi", "1234567890", "1234567890", False),  # wrong check digit
        ("npi", "3234567893", "3234567893", False),  # must start with 1 or 2
        ("npi", "123456789", "123456789", False),
        ("loinc", "4548-4", "4548-4", True),  # HbA1c
        ("loinc", "8480-6", "8480-6", True),  # systolic BP
        ("loinc", "8462-4", "8462-4", True),  # diastolic BP
        ("loinc", "2345-7", "2345-7", True),  # glucose
        ("loinc", "4548-5", "4548-5", False),
        ("loinc", "4548", "4548", False),
        ("icd10cm", "E11.9", "E119", True),
        ("icd10cm", "e11.9", "E119", True),
        ("icd10cm", "Z3A.10", "Z3A10", True),
        ("icd10cm", "U07.1", "U071", True),
        ("icd10cm", "250.00", "25000", False),  # ICD-9
        ("icd10cm", "E11.99999", "E1199999", False),  # too long
        ("hcpcs", "99213", "99213", True),
        ("hcpcs", "g0439", "G0439", True),
        ("hcpcs", "0001U", "0001U", True),
        ("hcpcs", "3044F", "3044F", True),
        ("hcpcs", "9921", "9921", False),
        ("hcpcs", "992131", "992131", False),
        ("tin", "12-3456789", "123456789", True),
        ("tin", "12345", "12345", False),
        ("ndc", "00002-1433-80", "00002143380", True),
        ("ndc", "0002-1433-80", "00002143380", True),  # 4-4-2
        ("ndc", "12345-678-90", "12345067890", True),  # 5-3-2
        ("ndc", "12345-6789-0", "12345678900", True),  # 5-4-1
        ("ndc", "1234-567-89", "1234-567-89", False),  # 9 digits
        ("ndc", "12345678901", "12345678901", True),
        ("pos", "11", "11", True),
        ("pos", "2", "02", True),
        ("pos", "ABC", "ABC", False),
        ("revenue", "450", "0450", True),
        ("revenue", "0450", "0450", True),
        ("revenue", "45X", "045X", False),
        ("bill_type", "0111", "111", True),
        ("bill_type", "111", "111", True),
        ("bill_type", "11", "11", False),
        ("ccn", "470003", "470003", True),
        ("ccn", "47-1800", "471800", True),
        ("ccn", "4700031", "4700031", False),
        ("drg", "1", "001", True),
        ("drg", "871", "871", True),
        ("drg", "8711", "8711", False),
    ],
)
def test_code_formats(fmt, value, normalized, ok):
    assert evaluate(fmt, [value]) == [(normalized, ok)]


def test_every_contract_code_format_is_known():
    from allpayer.inputs.schema import TABLES

    used = {c.code_format for t in TABLES.values() for c in t.columns if c.code_format}
    assert used <= set(codes.FORMATS)
    with pytest.raises(KeyError, match="unknown code format"):
        codes.code_format("icd9")


@settings(max_examples=10, deadline=None)
@given(st.lists(st.from_regex(r"[12][0-9]{8}", fullmatch=True), min_size=1, max_size=50))
def test_npi_check_digit_matches_reference(bases):
    values = [b + str(npi_check_digit(b)) for b in bases]
    wrong = [b + str((npi_check_digit(b) + 1) % 10) for b in bases]
    results = evaluate("npi", values + wrong)
    assert [ok for _, ok in results] == [True] * len(values) + [False] * len(wrong)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.from_regex(r"[1-9][0-9]{0,6}", fullmatch=True), min_size=1, max_size=50))
def test_loinc_check_digit_matches_reference(numbers):
    values = [f"{n}-{loinc_check_digit(n)}" for n in numbers]
    wrong = [f"{n}-{(loinc_check_digit(n) + 3) % 10}" for n in numbers]
    results = evaluate("loinc", values + wrong)
    assert [ok for _, ok in results] == [True] * len(values) + [False] * len(wrong)


def test_reference_algorithms_agree_with_published_examples():
    assert npi_check_digit("123456789") == 3
    assert loinc_check_digit("12345") == 5  # LOINC manual example
    assert loinc_check_digit("4548") == 4
