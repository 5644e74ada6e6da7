"""Code-format checks used by the synth tests (independent of the generator's own code)."""

from __future__ import annotations

import re

PATTERNS = {
    "icd10cm": re.compile(r"^[A-Z][0-9][0-9A-Z]{1,5}$"),
    "hcpcs": re.compile(r"^([0-9]{4}[0-9A-Z]|[A-Z][0-9]{4})$"),
    "npi": re.compile(r"^[12][0-9]{9}$"),
    "tin": re.compile(r"^[0-9]{9}$"),
    "loinc": re.compile(r"^[0-9]{1,5}-[0-9]$"),
    "ndc": re.compile(r"^[0-9]{11}$"),
    "pos": re.compile(r"^[0-9]{2}$"),
    "revenue": re.compile(r"^[0-9]{4}$"),
    "bill_type": re.compile(r"^[0-9]{3,4}$"),
    "ccn": re.compile(r"^[0-9]{2}[0-9A-Z][0-9]{3}$"),
    "drg": re.compile(r"^[0-9]{3}$"),
}


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def valid(fmt: str, value: str) -> bool:
    """True when `value` has the format `fmt` (with check digits for NPI and LOINC)."""
    if not PATTERNS[fmt].match(value):
        return False
    if fmt == "npi":
        return luhn_ok("80840" + value)
    if fmt == "loinc":
        return luhn_ok(value.replace("-", ""))
    return True


FQHC_RANGES = ((1000, 1199), (1800, 1989))
RHC_RANGES = ((3400, 3499), (3800, 3974), (3975, 3999), (8500, 8899), (8900, 8999))


def ccn_in(ccn: str, ranges) -> bool:
    n = int(ccn[2:])
    return any(lo <= n <= hi for lo, hi in ranges)
