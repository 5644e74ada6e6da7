"""Primary-care service codes used by claims-based attribution, by performance year.

The shipped list is the Medicare Shared Savings Program's definition of primary care services
(42 CFR 425.400(c)(1), with the definition of 42 CFR 425.20), one row per HCPCS/CPT code with the
first performance year whose list holds it, the last one (blank: still listed in the latest year
this file covers) and the rule that added it. Rows whose first year could not be checked against
the regulation text carry ``[VERIFY first year]`` in their source.

A list for performance year ``Y`` applies to every service in that year's attribution windows,
which lie before ``Y`` for a prospective list. Codes deleted from the code set stay listed (their
description says when they were deleted) so that a lookback window that holds earlier services
still counts them.

Two rules that are not a code list travel with it:

* Federally qualified health centers and rural health clinics bill primary care on institutional
  claims under their CMS certification number (CCN), with revenue center codes 0521, 0522, 0524
  and 0525 (:data:`FQHC_RHC_REVENUE_CODES`); every such line is a primary care service.
* Some codes do not count in some settings (:data:`SETTING_EXCLUSIONS`): nursing facility visits
  furnished in a skilled nursing facility (place of service 31) and advance care planning
  furnished in an inpatient hospital (place of service 21).

Hospital outpatient clinic visits (G0463) count in the MSSP only for electing teaching
amendment hospitals; they are not in this list.

>>> t = primary_care_codes(2024)
>>> sorted(t.columns)
['code', 'description', 'excluded_place_of_service', 'list_year', 'source']
>>> codes = set(t.to_pyarrow()["code"].to_pylist())
>>> "G2211" in codes, "G2211" in set(primary_care_codes(2023).to_pyarrow()["code"].to_pylist())
(True, False)
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import ibis
import ibis.expr.types as ir

from allpayer.errors import RunError

LIST_NAME = "primary_care_hcpcs"
"""The name terms use for this list (``attribution.primary_care_codes.name``)."""

FILE_NAME = "primary_care_hcpcs.csv"

LAST_YEAR = 2025
"""The latest performance year whose list this file states; later years are not available."""

FQHC_RHC_REVENUE_CODES: tuple[str, ...] = ("0521", "0522", "0524", "0525")
"""Revenue center codes of FQHC and RHC visits: primary care billed under the clinic's CCN
(42 CFR 425.400(c)(1); MSSP assignment specifications, FQHC/RHC claims)."""

PRIMARY_CARE_SPECIALTY_CODES: tuple[str, ...] = ("01", "08", "11", "37", "38")
"""Medicare specialty codes of a primary care physician: general practice, family practice,
internal medicine, pediatric medicine and geriatric medicine (42 CFR 425.20). An FQHC/RHC visit
counts as a primary care physician's service (42 CFR 425.404(b)), so it matches a step whose
specialty filter names one of these."""


@dataclass(frozen=True)
class SettingExclusion:
    """Codes that are not primary care when furnished at a place of service, from a year on."""

    codes: tuple[str, ...]
    place_of_service: str
    first_year: int
    reason: str
    source: str


SETTING_EXCLUSIONS: tuple[SettingExclusion, ...] = (
    SettingExclusion(
        codes=("99304", "99305", "99306", "99307", "99308", "99309", "99310", "99315", "99316", "99318"),
        place_of_service="31",
        first_year=2016,
        reason="nursing facility visit furnished in a skilled nursing facility",
        source="42 CFR 425.400(c)(1); CY2016 PFS final rule 80 FR 70886 (POS 31 exclusion)",
    ),
    SettingExclusion(
        codes=("99497", "99498"),
        place_of_service="21",
        first_year=2021,
        reason="advance care planning furnished in an inpatient setting",
        source="42 CFR 425.400(c)(1); CY2021 PFS final rule 85 FR 84472",
    ),
)

SCHEMA = ibis.schema(
    {
        "code": "string",
        "description": "string",
        "excluded_place_of_service": "string",
        "list_year": "int32",
        "source": "string",
    }
)

_CODE = re.compile(r"^[0-9A-Z][0-9]{3}[0-9A-Z]$")


@dataclass(frozen=True)
class CodeRow:
    """One row of the shipped file."""

    code: str
    description: str
    first_year: int
    last_year: int | None
    source: str

    def listed_in(self, year: int) -> bool:
        return self.first_year <= year and (self.last_year is None or year <= self.last_year)


def data_file() -> Path:
    """Path of the shipped CSV."""
    return Path(str(resources.files("allpayer.reference").joinpath("data", FILE_NAME)))


@lru_cache(maxsize=None)
def code_rows() -> tuple[CodeRow, ...]:
    """Every row of the shipped file, checked: codes well formed and unique, years ordered,
    a source on every row."""
    path = data_file()
    rows: list[CodeRow] = []
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        expected = ["code", "description", "first_year", "last_year", "source"]
        if reader.fieldnames != expected:
            raise RunError(f"{path}: expected columns {expected}, got {reader.fieldnames}")
        for i, r in enumerate(reader, start=2):
            code = r["code"].strip()
            if not _CODE.match(code):
                raise RunError(f"{path}:{i}: {code!r} is not a 5-character HCPCS/CPT code")
            if code in seen:
                raise RunError(f"{path}:{i}: code {code} is listed twice")
            seen.add(code)
            first = int(r["first_year"])
            last = int(r["last_year"]) if r["last_year"].strip() else None
            if last is not None and last < first:
                raise RunError(f"{path}:{i}: last_year {last} is before first_year {first}")
            if not r["source"].strip() or not r["description"].strip():
                raise RunError(f"{path}:{i}: every code needs a description and a source")
            rows.append(CodeRow(code, r["description"].strip(), first, last, r["source"].strip()))
    return tuple(rows)


def available_years() -> range:
    """Performance years the shipped file states a list for."""
    return range(min(r.first_year for r in code_rows()), LAST_YEAR + 1)


def excluded_place_of_service(code: str, year: int) -> str | None:
    """The place of service where `code` does not count in `year`'s list, if any."""
    for e in SETTING_EXCLUSIONS:
        if code in e.codes and year >= e.first_year:
            return e.place_of_service
    return None


def primary_care_codes(year: int, name: str = LIST_NAME) -> ir.Table:
    """The primary-care code list of a performance year as an Ibis memtable.

    Columns: ``code``, ``description``, ``excluded_place_of_service`` (NULL, or the place of
    service where the code does not count), ``list_year`` and ``source``. A year the file does
    not cover, or a list name other than ``primary_care_hcpcs``, is a :class:`RunError`.

    >>> primary_care_codes(2031)
    Traceback (most recent call last):
    ...
    allpayer.errors.RunError: no primary_care_hcpcs list for performance year 2031: the shipped lists cover 2012 to 2025
    """
    if name != LIST_NAME:
        raise RunError(f"unknown primary-care code list {name!r}: the shipped list is {LIST_NAME!r}")
    years = available_years()
    if year not in years:
        raise RunError(
            f"no {LIST_NAME} list for performance year {year}: the shipped lists cover {years[0]} to {years[-1]}"
        )
    rows = [r for r in code_rows() if r.listed_in(year)]
    return ibis.memtable(
        {
            "code": [r.code for r in rows],
            "description": [r.description for r in rows],
            "excluded_place_of_service": [excluded_place_of_service(r.code, year) for r in rows],
            "list_year": [year] * len(rows),
            "source": [r.source for r in rows],
        },
        schema=SCHEMA,
    )


def primary_care_codes_for(code_set) -> ir.Table:
    """The list a program's terms name (``attribution.primary_care_codes``: ``{name, year}``)."""
    return primary_care_codes(int(code_set.year), str(code_set.name))
