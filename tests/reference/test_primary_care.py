"""The primary-care code list: shipped rows, years, setting exclusions and errors."""

from __future__ import annotations

import doctest

import pytest

from allpayer.errors import RunError
from allpayer.reference import primary_care
from allpayer.reference.primary_care import (
    FQHC_RHC_REVENUE_CODES,
    LIST_NAME,
    available_years,
    code_rows,
    primary_care_codes,
    primary_care_codes_for,
)
from allpayer.terms.models import CodeSetRef


def codes(year: int) -> dict[str, dict]:
    return {r["code"]: r for r in primary_care_codes(year).to_pyarrow().to_pylist()}


def test_every_row_names_its_source_and_years_are_ordered():
    rows = code_rows()
    assert len(rows) == len({r.code for r in rows}) == 95
    assert all(r.source.startswith("42 CFR 425.400(c)(1)") for r in rows)
    assert all(r.last_year is None or r.first_year <= r.last_year for r in rows)
    assert list(available_years()) == list(range(2012, 2026))


def test_base_list_office_nursing_home_and_wellness_visits():
    base = codes(2012)
    office = {f"992{n:02d}" for n in (1, 2, 3, 4, 5, 11, 12, 13, 14, 15)}
    nursing = {"99304", "99305", "99306", "99307", "99308", "99309", "99310", "99315", "99316", "99318"}
    home = {"99341", "99342", "99343", "99344", "99345", "99347", "99348", "99349", "99350"}
    assert office | nursing | home | {"G0402", "G0438", "G0439"} <= set(base)
    assert "99495" not in base and "99490" not in base  # transitional and chronic care management came in 2016
    assert {"99495", "99496", "99490"} <= set(codes(2016))


def test_codes_added_by_year():
    c2023, c2024 = codes(2023), codes(2024)
    assert "G2211" in c2024 and "G2211" not in c2023
    assert {"G0019", "G0022", "G0023", "G0024", "G0136"} <= set(c2024) - set(c2023)
    assert {"99421", "99422", "99423"} <= set(c2024)
    assert len(c2024) == 92 and len(codes(2022)) == 82
    assert all(r["list_year"] == 2024 for r in c2024.values())
    # deleted codes stay so that a lookback window with earlier services still counts them
    assert "99201" in c2024 and "99318" in c2024


def test_setting_exclusions_by_place_of_service():
    c2024 = codes(2024)
    assert c2024["99309"]["excluded_place_of_service"] == "31"
    assert c2024["99497"]["excluded_place_of_service"] == "21"
    assert c2024["99213"]["excluded_place_of_service"] is None
    assert codes(2015)["99309"]["excluded_place_of_service"] is None  # the SNF exclusion starts in 2016
    assert FQHC_RHC_REVENUE_CODES == ("0521", "0522", "0524", "0525")


def test_missing_year_or_unknown_list_is_an_error():
    with pytest.raises(RunError, match="no primary_care_hcpcs list for performance year 2031: .* 2012 to 2025"):
        primary_care_codes(2031)
    with pytest.raises(RunError, match="unknown primary-care code list 'pc_codes'"):
        primary_care_codes(2024, name="pc_codes")


def test_terms_code_set_reference():
    t = primary_care_codes_for(CodeSetRef(name=LIST_NAME, year=2022))
    assert t.count().to_pyarrow().as_py() == 82


def test_docstring_examples():
    failed, _ = doctest.testmod(primary_care)
    assert failed == 0
