"""Bad payment terms fail at load with a message naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from allpayer.errors import TermsError
from allpayer.terms import load_program, parse_program

BAD = Path(__file__).resolve().parent.parent / "fixtures" / "bad_terms" / "payments"

EXPECTED = {
    "fpp_missing_cell_pmpm.yaml": (
        "payments.fpp.pmpm_by_cell", "no value for rate cell 'child' (every cell needs one) (line 36)"),
    "fpp_overlapping_dated_pmpm.yaml": (
        "payments.fpp.pmpm_by_cell.abd[2].from",
        "dated values must be in increasing date order: 2022-07-01 is not after 2022-07-01 (line 40)"),
    "per_hospital_pmpm_overlapping.yaml": (
        "payments.fpp.hospital_allocation.pmpm_by_hospital.org-a[2].from",
        "dated values must be in increasing date order: 2022-03-01 is not after 2022-04-01 (line 43)"),
    "phm_ladder_falls.yaml": (
        "payments.phm.ladder[1]", "ladder rungs must rise: increasing min_score and non-decreasing pmpm (line 39)"),
    "value_payment_pass_through_not_one.yaml": (
        "payments.value_payment.pass_through", "pass_through weights must sum to 1, got 5/6 (line 36)"),
    "value_payment_plan_year_month.yaml": (
        "payments.value_payment.plan_year_start_month", "expected a month from 1 to 12, got 13 (line 36)"),
}


def test_every_fixture_is_checked():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_payment_terms_name_file_and_key(name):
    key, problem = EXPECTED[name]
    with pytest.raises(TermsError) as info:
        load_program(BAD / name)
    err = info.value
    assert err.path == str(BAD / name)
    assert err.key == key
    assert err.problem == problem
    assert str(err).startswith(f"{BAD / name}: {key}: ")


def _fixed(name):
    data = yaml.safe_load((BAD / name).read_text())
    return data


def test_the_fixtures_load_once_the_fault_is_fixed():
    # the same files with the one fault repaired load, so each failure above is the fault's alone
    d = _fixed("fpp_missing_cell_pmpm.yaml")
    d["payments"]["fpp"]["pmpm_by_cell"]["child"] = "85.00"
    assert parse_program(d).payments.fpp.pmpm_by_cell["child"].value == 85
    d = _fixed("fpp_overlapping_dated_pmpm.yaml")
    d["payments"]["fpp"]["pmpm_by_cell"]["abd"].pop()
    assert len(parse_program(d).payments.fpp.pmpm_by_cell["abd"].entries) == 2
    d = _fixed("value_payment_plan_year_month.yaml")
    d["payments"]["value_payment"]["plan_year_start_month"] = 7
    assert parse_program(d).payments.value_payment.plan_year_start_month == 7
