"""Program models: the full example, defaults, cross-field rules, provenance and versions."""

from __future__ import annotations

import copy
import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest
import yaml

from allpayer.errors import TermsError
from allpayer.terms import ProgramTerms, load_program, parse_program
from allpayer.terms.models import SETTLEMENT_STEPS, RateCells

from .conftest import FULL, MINIMAL

D = dt.date


def fails(data: dict, key: str, fragment: str) -> TermsError:
    with pytest.raises(TermsError) as info:
        parse_program(data, "mem.yaml")
    err = info.value
    assert (err.key, fragment in err.problem) == (key, True), str(err)
    assert str(err).startswith(f"mem.yaml: {key}: ")
    return err


def test_minimal_program_gets_documented_defaults():
    p = load_program(MINIMAL)
    assert p.effective.start == D(2022, 1, 1) and p.effective.end == D(2022, 12, 31)
    assert p.attribution.lookback_months.value == 24
    assert p.attribution.plurality_basis == "allowed_charges"
    assert p.attribution.tie_break == ["most_recent_visit", "lowest_npi"]
    assert p.target.discount.value == Decimal("0")
    assert p.target.risk_adjustment.method == "none" and p.target.risk_adjustment.diagnosis_claims is None
    assert p.cell_ids() == ["all"]
    assert p.settlement.rounding == "half_up"
    assert p.settlement.runout_months.value == 3
    assert p.payments.fpp is None and p.quality is None
    assert p.source_path == str(MINIMAL)


def test_full_program_values():
    p = load_program(FULL)
    assert p.kind == "self_funded" and p.population.group_ids == ["G1", "G2"]
    assert p.attribution.recency_weights == [Fraction(1, 3), Fraction(2, 3)]
    assert [b.weight for b in p.target.base_years] == [Fraction(1, 10), Fraction(3, 10), Fraction(3, 5)]
    assert p.cell_ids() == ["0-39/female", "0-39/male", "40+/female", "40+/male"]
    assert p.target.trend.rates[2023].value == Decimal("-0.010")
    assert p.target.truncation.threshold.at(D(2023, 6, 30)) == Decimal("100000.00")
    assert p.target.truncation.threshold.at(D(2023, 7, 1)) == Decimal("120000.00")
    assert p.payments.fpp.pmpm_by_cell["40+/female"].at(D(2023, 4, 1)) == Decimal("265.50")
    assert p.payments.fpp.hospital_allocation.pmpm_by_hospital["470001"].value == Decimal("60.00")
    assert p.payments.value_payment.adjustment.lag_quarters.value == 2
    assert p.settlement.savings_rate.at(D(2023, 7, 1)) == Decimal("0.55")
    assert p.target.risk_adjustment.diagnosis_claims.value == "all" and p.target.risk_adjustment.diagnosis_claims.is_assumption
    assert p.target.risk_adjustment.diagnosis_claims_payer(p.payer) is None
    assert [m.method for m in p.settlement.quality_modifiers] == ["gate", "loss_side", "withhold_return"]
    assert p.quality.scoring.max_points == Decimal("2.00")
    assert p.quality.measure("cbp").benchmarks[50].value == Decimal("0.62")
    with pytest.raises(KeyError):
        p.quality.measure("nope")


def test_models_are_immutable():
    p = load_program(MINIMAL)
    with pytest.raises(Exception):
        p.kind = "medicare"  # type: ignore[misc]


def test_round_trip_through_plain_data_keeps_content_and_version():
    p = load_program(FULL)
    again = parse_program(yaml.safe_load(yaml.safe_dump(p.to_data())), "again.yaml")
    assert again == p
    assert again.terms_version == p.terms_version


def test_terms_version_ignores_layout_and_explicit_defaults(minimal):
    a = parse_program(minimal)
    minimal["attribution"]["lookback_months"] = 24
    minimal["settlement"]["rounding"] = "half_up"
    b = parse_program(copy.deepcopy(minimal))
    assert a.terms_version == b.terms_version and len(a.terms_version) == 16
    minimal["settlement"]["savings_rate"] = "0.51"
    assert parse_program(minimal).terms_version != a.terms_version


def test_to_data_resolves_on_a_date_and_puts_provenance_last():
    p = load_program(FULL)
    data = p.to_data(at=D(2023, 8, 1))
    assert data["settlement"]["savings_rate"] == "0.55"
    assert data["payments"]["phm"]["base_pmpm"] == "2.00"
    assert list(data)[-2:] == ["reference", "note"]
    with pytest.raises(ValueError, match="outside the effective period"):
        p.to_data(at=D(2024, 1, 1))


def test_walk_values_and_provenance():
    p = load_program(FULL)
    paths = dict(p.walk_values())
    assert "target.trend.rates[2022]" in paths and "payments.fpp.pmpm_by_cell.40+/female" in paths
    unsourced = p.unsourced_values()
    assert "settlement.loss_rate" in unsourced
    assert "target.trend.rates[2023]" not in unsourced  # carries a reference
    assert "attribution.lookback_months" not in unsourced
    assert "target.trend.rates[2022]" in p.assumptions()


def test_block_provenance_covers_the_numbers_inside(minimal):
    minimal["settlement"]["reference"] = "contract p. 3"
    p = parse_program(minimal)
    assert not [k for k in p.unsourced_values() if k.startswith("settlement.")]
    assert "target.trend.rates[2022]" in p.unsourced_values()


def test_age_band_bounds_match_the_member_months_labels():
    mm = pytest.importorskip("allpayer.core.member_months")
    import ibis

    p = load_program(FULL)
    bounds = p.target.rate_cells.age_band_bounds()
    assert bounds == [0, 40]
    ages = ibis.memtable({"age": [0, 39, 40, 97]})
    labels = ages.select(band=mm.age_band_expr(ages.age, bounds)).to_pyarrow()["band"].to_pylist()
    assert labels == ["0-39", "0-39", "40+", "40+"]
    assert set(labels) == {b.id for b in p.target.rate_cells.age_bands}


def test_cell_ids_for_every_dimension():
    cells = RateCells(
        dimensions=["enrollment_type", "sex"], enrollment_types=["esrd", "aged_dual"], sexes=["female", "male"]
    )
    assert cells.cell_ids() == ["esrd/female", "esrd/male", "aged_dual/female", "aged_dual/male"]


def test_settlement_step_vocabulary_is_ordered():
    assert SETTLEMENT_STEPS[0] == "actual_tcoc" and SETTLEMENT_STEPS[-1] == "net"


def _set(data: dict, path: str, value) -> dict:
    keys = path.split(".")
    node = data
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if not k.isdigit() else node[int(k)]
    if value is DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1] if not keys[-1].isdigit() else int(keys[-1])] = value
    return data


DELETE = object()

# (changes to the minimal program, key path reported, fragment of the problem)
MINIMAL_CASES = [
    ({"performance_year": 1999}, "performance_year", "expected a year from 2000 to 2100"),
    ({"effective": {"start": "2022-03-01", "end": "2022-02-01"}}, "effective.end", "is before start"),
    ({"population.plans": ["qhp", "qhp"]}, "population.plans", "listed twice"),
    ({"population.plans": []}, "population.plans", "at least 1 item"),
    ({"population.require_employer_opt_in": True}, "population.require_employer_opt_in", "needs group_ids"),
    ({"attribution.method": "payer_supplied"}, "attribution.steps", "has no computed steps"),
    ({"attribution.steps": []}, "attribution.steps", "at least one attribution step"),
    ({"attribution.steps": [{"name": "g", "rule": "require_service"}]}, "attribution.steps", "assigns members"),
    (
        {"attribution.steps": [{"name": "a", "rule": "plurality"}, {"name": "a", "rule": "plurality"}]},
        "attribution.steps[1].name",
        "used twice",
    ),
    (
        {"attribution.steps": [{"name": "a", "rule": "plurality", "requires_no_service_from": "b"}]},
        "attribution.steps[0].requires_no_service_from",
        "not the name of an earlier step",
    ),
    (
        {"attribution.steps": [{"name": "a", "rule": "plurality", "requires_full_benefits": True}]},
        "attribution.steps[0].requires_full_benefits",
        "applies only to rule 'expanded'",
    ),
    (
        {"attribution.steps": [{"name": "a", "rule": "voluntary_alignment", "compare": "aco_vs_each_outside_tin"}]},
        "attribution.steps[0].compare",
        "applies only to rule 'plurality'",
    ),
    ({"attribution.recency_weights": ["1/3", "1/3"]}, "attribution.recency_weights", "must sum to 1, got 2/3"),
    ({"attribution.recency_weights": ["1"]}, "attribution.recency_weights", "one weight per lookback year (2)"),
    (
        {"attribution.lookback_months": 18, "attribution.recency_weights": ["1"]},
        "attribution.recency_weights",
        "whole years",
    ),
    ({"attribution.lookback_months": 0}, "attribution.lookback_months", "at least 1 month"),
    ({"attribution.exclusions": [{"reason": "death"}, {"reason": "death"}]}, "attribution.exclusions", "listed twice"),
    ({"attribution.exclusions": [{"reason": "abducted"}]}, "attribution.exclusions[0].reason", "expected 'death'"),
    (
        {"attribution.method": "retrospective", "attribution.window_end": DELETE, "attribution.add_members_during_year": True},
        "attribution.add_members_during_year",
        "prospective or quarterly",
    ),
    ({"attribution.tie_break": ["lowest_npi", "lowest_npi"]}, "attribution.tie_break", "listed twice"),
    ({"attribution.window_end": "2022-01-01"}, "attribution.window_end", "built before the year"),
    ({"attribution.primary_care_codes": {"name": "pc", "year": 2023}}, "attribution.primary_care_codes.year", "after performance year"),
    (
        {"attribution.steps": [{"name": "x", "rule": "expanded", "valid_through": "2021-12-31"}]},
        "attribution.steps[0].valid_through",
        "would never apply",
    ),
    ({"target.base_years": []}, "target.base_years", "needs base_years"),
    ({"target.base_years": [{"year": 2022, "weight": "1"}]}, "target.base_years[0].year", "not before performance year"),
    (
        {"target.base_years": [{"year": 2021, "weight": "0.5"}, {"year": 2020, "weight": "0.5"}]},
        "target.base_years",
        "increasing order",
    ),
    ({"target.trend": DELETE}, "target.trend", "needs trend rates"),
    ({"target.trend.rates": {2022: "0.05", 2023: "0.05"}}, "target.trend.rates[2023]", "outside 2022 to 2022"),
    ({"target.method": "mssp_benchmark"}, "target.mssp_rules", "needs mssp_rules"),
    ({"target.mssp_rules": "mssp_2022"}, "target.mssp_rules", "applies only to method mssp_benchmark"),
    ({"target.payer_supplied_pmpm": {"all": "500.00"}}, "target.payer_supplied_pmpm", "applies only to method payer_supplied"),
    ({"target.trend.by_cell": {"nope": {2022: "0.05"}}}, "target.trend.by_cell.nope", "not a rate cell"),
    ({"target.rate_cells": {"dimensions": ["sex"]}}, "target.rate_cells.sexes", "needs a non-empty sexes list"),
    ({"target.rate_cells": {"sexes": ["female"]}}, "target.rate_cells.sexes", "'sex' is not in dimensions"),
    ({"target.rate_cells": {"dimensions": ["sex", "sex"], "sexes": ["female"]}}, "target.rate_cells.dimensions", "listed twice"),
    (
        {"target.rate_cells": {"dimensions": ["aid_category"], "aid_categories": ["abd", "abd"]}},
        "target.rate_cells.aid_categories",
        "listed twice",
    ),
    (
        {"target.rate_cells": {"dimensions": ["age_band"], "age_bands": [{"id": "0+", "min_age": 0}, {"id": "20+", "min_age": 20}]}},
        "target.rate_cells.age_bands[0].max_age",
        "only the last age band may be open-ended",
    ),
    (
        {"target.rate_cells": {"dimensions": ["age_band"], "age_bands": [{"id": "0-64", "min_age": 0, "max_age": 64}]}},
        "target.rate_cells.age_bands[0].max_age",
        "must be open-ended",
    ),
    (
        {"target.rate_cells": {"dimensions": ["age_band"], "age_bands": [{"id": "kids", "min_age": 0, "max_age": 17}, {"id": "18+", "min_age": 18}]}},
        "target.rate_cells.age_bands[0].id",
        "age band id must be its ages as the member months carry them: '0-17', got 'kids'",
    ),
    ({"target.risk_adjustment": {"method": "cms_hcc"}}, "target.risk_adjustment.models", "needs models"),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "0.5"}]}},
        "target.risk_adjustment.models",
        "must sum to 1",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "0.5"}, {"version": "V24", "weight": "0.5"}]}},
        "target.risk_adjustment.models",
        "listed twice",
    ),
    ({"target.risk_adjustment": {"method": "none", "ratio_cap": "0.03"}}, "target.risk_adjustment.ratio_cap", "only to method cms_hcc"),
    ({"target.risk_adjustment": {"method": "payer_supplied"}}, "target.risk_adjustment.method", "payer_supplied is not implemented"),
    ({"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V99", "weight": "1"}]}}, "target.risk_adjustment.models[0].version", "expected 'V22', 'V24' or 'V28'"),
    ({"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V22", "weight": "1"}]}}, "target.risk_adjustment.models[0].version", "no CMS-HCC tables for V22"),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V28", "weight": "1"}]}},
        "target.risk_adjustment.normalization_factor",
        "payment year 2022 has no published normalization factor for V28 (published: V24 1.118)",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}]}},
        "target.risk_adjustment.tables_year",
        "no CMS-HCC tables for payment year 2022 (the performance year: tables_year is not given); shipped: 2025, 2026",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}], "tables_year": 2024}},
        "target.risk_adjustment.tables_year",
        "no CMS-HCC tables for payment year 2024; shipped: 2025, 2026",
    ),
    ({"target.risk_adjustment": {"method": "none", "tables_year": 2025}}, "target.risk_adjustment.tables_year", "only to method cms_hcc"),
    ({"target.risk_adjustment": {"method": "none", "esrd": "cms_hcc"}}, "target.risk_adjustment.esrd", "only to method cms_hcc"),
    (
        {"target.risk_adjustment": {"method": "none", "diagnosis_claims": "all"}},
        "target.risk_adjustment.diagnosis_claims",
        "only to method cms_hcc",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}], "esrd": "esrd_model"}},
        "target.risk_adjustment.esrd",
        "expected 'exclude', 'cms_hcc' or 'esrd_dialysis'",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}], "esrd": "esrd_dialysis"}},
        "target.risk_adjustment.esrd_normalization_factor",
        "esrd esrd_dialysis needs esrd_normalization_factor",
    ),
    (
        {"target.risk_adjustment": {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}], "esrd_normalization_factor": "1.05"}},
        "target.risk_adjustment.esrd_normalization_factor",
        "applies only to esrd: esrd_dialysis",
    ),
    ({"target.truncation": {"combine": "max"}}, "target.truncation.threshold", "threshold, a percentile, or both"),
    (
        {"target.growth_constraint": {"bands": [{"max_above_national": "0.01"}, {"national_growth_below": "0.03", "max_above_national": "0.01"}]}},
        "target.growth_constraint.bands[0]",
        "only the last band",
    ),
    (
        {"target.growth_constraint": {"bands": [{"national_growth_below": "0.03", "max_above_national": "0.01"}, {"national_growth_below": "0.02", "max_above_national": "0.01"}]}},
        "target.growth_constraint.bands[1].national_growth_below",
        "increasing",
    ),
    ({"settlement.corridors": [{"lower": "-0.03", "upper": "0.03", "aco_share": "1"}]}, "settlement.corridors", "either sharing rates or corridor bands"),
    ({"settlement.savings_rate": DELETE}, "settlement.savings_rate", "expected savings_rate"),
    ({"settlement.loss_rate": DELETE}, "settlement.loss_rate", "needs loss_rate"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net", "cap"]}, "settlement.steps", "last step must be 'net'"),
    ({"settlement.steps": ["actual_tcoc", "msr_test", "share", "net"]}, "settlement.steps", "must include 'gross_result'"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "share", "msr_test", "net"]}, "settlement.steps[3]", "cannot come after 'share'"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "gross_result", "msr_test", "share", "net"]}, "settlement.steps", "listed twice"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "share", "net"]}, "settlement.steps", "msr/mlr is set but steps has no 'msr_test'"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "msr_test", "share", "quality_modifier", "net"]}, "settlement.steps", "step 'quality_modifier' needs quality_modifiers"),
    ({"settlement.steps": ["actual_tcoc", "truncation", "gross_result", "msr_test", "share", "net"]}, "settlement.steps", "needs target.truncation"),
    ({"settlement.steps": ["actual_tcoc", "gross_result", "msr_test", "share", "advance_payments", "net"]}, "settlement.steps", "needs payments.advance_payments"),
    ({"settlement.symmetric": True}, "settlement.mlr", "symmetric uses the MSR as MLR"),
    ({"settlement.population_rates": "linear"}, "settlement.population_rates", "neither is given"),
    ({"settlement.population_rates": "bands"}, "settlement.population_rates", "step"),
    ({"settlement.msr_by_population": [{"min_members": 1, "rate": "0.02"}]}, "settlement.msr_by_population", "give msr or msr_by_population"),
    (
        {"settlement.msr": DELETE, "settlement.msr_by_population": [{"min_members": 9, "rate": "0.03"}, {"min_members": 5, "rate": "0.02"}]},
        "settlement.msr_by_population[1].min_members",
        "increasing min_members",
    ),
    ({"settlement.caps": {"savings": [{"rate": "0.1", "of": "payments"}]}}, "settlement.caps.savings[0].of", "expected 'target' or 'revenue'"),
    ({"settlement.caps": {"savings": [{"rate": "0.1", "of": "target"}]}}, "settlement.steps", "caps is set but steps has no 'cap'"),
    ({"settlement.rounding": "bankers"}, "settlement.rounding", "expected 'half_up', 'half_even', 'down' or 'up'"),
    ({"settlement.quality_modifiers": [{"method": "gate", "min_score": "0.3"}], "settlement.steps": ["actual_tcoc", "gross_result", "msr_test", "share", "quality_modifier", "net"]}, "settlement.quality_modifiers", "need a quality block"),
    ({"settlement.quality_modifiers": [{"method": "gate"}]}, "settlement.quality_modifiers[0].min_score", "method gate needs min_score"),
    ({"settlement.quality_modifiers": [{"method": "multiplier", "min_score": "0.3"}]}, "settlement.quality_modifiers[0].min_score", "applies only to method gate"),
    ({"settlement.quality_modifiers": [{"method": "loss_side", "max_rate": "0.75"}]}, "settlement.quality_modifiers[0].loss_rate_floor", "needs loss_rate_floor"),
    (
        {"settlement.quality_modifiers": [{"method": "loss_side", "max_rate": "0.75", "loss_rate_floor": "0.4", "loss_rate_ceiling": "0.75"}]},
        "settlement.quality_modifiers[0].applies_to",
        "write applies_to: losses",
    ),
    (
        {"settlement.quality_modifiers": [{"method": "loss_side", "applies_to": "losses", "max_rate": "0.75", "loss_rate_floor": "0.8", "loss_rate_ceiling": "0.75"}]},
        "settlement.quality_modifiers[0].loss_rate_floor",
        "above loss_rate_ceiling",
    ),
    ({"settlement.quality_modifiers": [{"method": "gate", "min_score": "0.3"}, {"method": "gate", "min_score": "0.4"}]}, "settlement.quality_modifiers", "listed twice"),
    ({"payments.advance_payments": [{"name": "a", "annual_amount": "1.00"}]}, "settlement.steps", "no 'advance_payments' step"),
    ({"payments.advance_payments": [{"name": "a", "annual_amount": "1.00"}, {"name": "a", "annual_amount": "2.00"}]}, "payments.advance_payments", "listed twice"),
    ({"payments.phm": {"base_pmpm": "2.00", "max_pmpm": "1.00"}}, "payments.phm.max_pmpm", "below base_pmpm"),
    ({"payments.phm": {"base_pmpm": "1.00", "ladder": [{"min_score": "0.5", "pmpm": "2.00"}]}}, "payments.phm.max_pmpm", "a ladder needs max_pmpm"),
    (
        {"payments.phm": {"base_pmpm": "1.00", "max_pmpm": "4.00", "ladder": [{"min_score": "0.5", "pmpm": "3.00"}, {"min_score": "0.4", "pmpm": "3.50"}]}},
        "payments.phm.ladder[1]",
        "ladder rungs must rise",
    ),
    ({"payments.phm": {"base_pmpm": "1.00", "max_pmpm": "4.00", "ladder": [{"min_score": "0.5", "pmpm": "5.00"}]}}, "payments.phm.ladder[0].pmpm", "above max_pmpm"),
    ({"payments.cpr": {"method": "fixed_pmpm"}}, "payments.cpr.pmpm_by_cell", "needs pmpm_by_cell"),
    ({"payments.cpr": {"method": "historical_ffs", "trend": "0.03"}}, "payments.cpr.enhancement", "needs enhancement"),
    ({"payments.cpr": {"method": "fixed_pmpm", "pmpm_by_cell": {"all": "20.00"}, "trend": "0.01"}}, "payments.cpr.trend", "applies only to method historical_ffs"),
    ({"payments.cpr": {"method": "historical_ffs", "trend": "0.03", "enhancement": "0.1", "pmpm_by_cell": {"all": "2.00"}}}, "payments.cpr.pmpm_by_cell", "only to method fixed_pmpm"),
    (
        {"payments.fpp": {"scope": {"claim_types": ["professional"], "service_categories": ["inpatient"]}, "pmpm_by_cell": {}, "hospital_allocation": {"method": "historical_ffs_share", "history_years": [2021]}}},
        "payments.fpp.pmpm_by_cell",
        "no value for rate cell 'all'",
    ),
    (
        {"payments.fpp": {"scope": {"claim_types": ["professional"], "service_categories": ["inpatient"]}, "pmpm_by_cell": {"all": "1.00"}, "hospital_allocation": {"method": "historical_ffs_share"}}},
        "payments.fpp.hospital_allocation.history_years",
        "needs history_years",
    ),
    (
        {"payments.fpp": {"scope": {"claim_types": ["professional"], "service_categories": ["inpatient"]}, "pmpm_by_cell": {"all": "1.00"}, "hospital_allocation": {"method": "per_hospital_pmpm"}}},
        "payments.fpp.hospital_allocation.pmpm_by_hospital",
        "needs pmpm_by_hospital",
    ),
    (
        {"payments.fpp": {"scope": {"claim_types": ["dental"], "service_categories": ["inpatient"]}, "pmpm_by_cell": {"all": "1.00"}, "hospital_allocation": {"method": "historical_ffs_share", "history_years": [2021]}}},
        "payments.fpp.scope.claim_types[0]",
        "expected 'professional', 'institutional' or 'dme'",
    ),
    (
        {"payments.value_payment": {"base_pmpm": "4.20", "pass_through": {"phm": "0.5"}}},
        "payments.value_payment.pass_through",
        "must sum to 1",
    ),
    (
        {"payments.value_payment": {"base_pmpm": "4.20", "adjustment": {"alpha": "1", "floor": "1.1", "ceiling": "1.3", "cost_weight": "1", "quality_weight": "0", "target_quality_score": "0.7"}}},
        "payments.value_payment.adjustment.floor",
        "floor must be at most 1",
    ),
    (
        {"payments.value_payment": {"base_pmpm": "4.20", "adjustment": {"alpha": "1", "floor": "0.9", "ceiling": "0.8", "cost_weight": "1", "quality_weight": "0", "target_quality_score": "0.7"}}},
        "payments.value_payment.adjustment.floor",
        "above ceiling",
    ),
    (
        {"payments.pay_for_improvement": {"amount_per_member_per_measure": "21.00", "improvement_points": "0.05", "measures": ["awv"], "lives_as_of": "2022-06-30"}},
        "payments.pay_for_improvement.measures[0]",
        "'awv' is not a measure of this program",
    ),
    ({"reference": {"document": "x", "page": True}}, "reference", "expected text for reference page"),
    ({"basis": "DOC"}, "basis", "basis DOC needs a reference"),
    ({"target.trend.basis": "INF", "target.trend.assumption": False}, "target.trend.basis", "basis INF marks an assumption"),
]


@pytest.mark.parametrize("changes, key, fragment", MINIMAL_CASES, ids=[f"{c[1] or 'program'}:{c[2][:30]}" for c in MINIMAL_CASES])
def test_cross_field_rules(minimal, changes, key, fragment):
    for path, value in changes.items():
        _set(minimal, path, value)
    fails(minimal, key, fragment)


# (changes to the full program, key path reported, fragment of the problem)
FULL_CASES = [
    ({"settlement.quality_modifiers.2.withhold": DELETE}, "settlement.quality_modifiers[2].withhold", "needs a withhold"),
    (
        {"payments.fpp.withhold": "0.05"},
        "settlement.quality_modifiers[2].withhold",
        "already set on payments.fpp.withhold",
    ),
    ({"quality.scoring.scale.1.points": "1.00"}, "quality.scoring.scale[1]", "must rise with the percentile"),
    ({"quality.scoring.scale.0.percentile": 0}, "quality.scoring.scale[0].percentile", "from 1 to 99"),
    ({"quality.scoring.below_scale_points": "1.5"}, "quality.scoring.below_scale_points", "above the first scale point"),
    ({"quality.scoring.domain_weights": {"preventive_health": "0.5"}}, "quality.scoring.domain_weights", "must sum to 1"),
    ({"quality.measures.1.benchmarks": {30: "0.55", 40: "0.6"}}, "quality.measures[1].benchmarks[40]", "not on the scoring scale"),
    ({"quality.measures.2.inverse": False}, "quality.measures[2].inverse",
     "hba1c_poor_control is an inverse measure (a lower rate is better): set inverse: true"),
    ({"quality.measures.1.inverse": False, "quality.measures.1.benchmarks": {30: "0.75", 50: "0.62", 90: "0.55"}},
     "quality.measures[1].benchmarks", "must rise with the percentile"),
    ({"quality.measures.1.inverse": True}, "quality.measures[1].benchmarks", "inverse measure's benchmarks must fall"),
    ({"quality.measures.4.benchmark_table": DELETE}, "quality.measures[4].standard", "needs a target, benchmarks or a benchmark_table"),
    ({"quality.measures.1.benchmark_table": "t"}, "quality.measures[1].benchmark_table", "not both"),
    ({"quality.measures.4.id": "awv"}, "quality.measures", "'awv' is listed twice"),
    ({"payments.pay_for_improvement.lives_as_of": "2022-06-30"}, "payments.pay_for_improvement.lives_as_of", "outside the effective period"),
    ({"payments.phm.max_pmpm": "1.80"}, "payments.phm.max_pmpm", "below base_pmpm 2.00 on 2023-07-01"),
    ({"target.discount.1.from": "2023-01-01"}, "target.discount[1].from", "not after 2023-01-01"),
    ({"population.group_ids": []}, "population.group_ids", "at least one group id"),
    ({"population.group_ids": DELETE, "population.require_employer_opt_in": False}, "population.group_ids", "names its employer groups"),
    ({"target.method": "mssp_benchmark", "target.mssp_rules": "mssp_py2024"}, "target.risk_adjustment",
     "a mssp_benchmark target is CMS's benchmark, risk adjusted by CMS: remove risk_adjustment"),
    ({"settlement.completion_factor": "0.985"}, "settlement.completion_factor", "so it is at least 1; got 0.985"),
    ({"settlement.risk": "one_sided"}, "settlement.loss_rate", "applies only to two_sided programs"),
    (
        {"settlement.risk": "one_sided", "settlement.loss_rate": DELETE, "settlement.symmetric": False},
        "settlement.caps.losses",
        "loss caps apply only to two_sided",
    ),
    ({"target.risk_adjustment.models.1.version": "V24"}, "target.risk_adjustment.models", "'V24' is listed twice"),
    ({"target.risk_adjustment.diagnosis_claims": "own"}, "target.risk_adjustment.diagnosis_claims",
     "expected 'payer' or 'all', got 'own'"),
    ({"target.risk_adjustment.diagnosis_claims": {"from": "2023-01-01", "value": "all"}},
     "target.risk_adjustment.diagnosis_claims", "cannot change during the year"),
    ({"attribution.steps.3.requires_no_service_from": "step_2"}, "attribution.steps[3].requires_no_service_from", "not the name of an earlier step"),
    ({"payments.fpp.hospital_allocation.history_years": [2021]}, "payments.fpp.hospital_allocation.history_years", "only to method historical_ffs_share"),
    ({"payments.cpr.downside_reconciliation": True}, "payments.cpr.downside_reconciliation", "not reconciled down to fee-for-service"),
    ({"payments.value_payment.adjustment.cadence": "monthly"}, "payments.value_payment.adjustment.cadence", "monthly cadence is not supported"),
]


@pytest.mark.parametrize("changes, key, fragment", FULL_CASES, ids=[f"{c[1]}:{c[2][:30]}" for c in FULL_CASES])
def test_cross_field_rules_of_the_full_program(full, changes, key, fragment):
    for path, value in changes.items():
        _set(full, path, value)
    fails(full, key, fragment)


def test_corridor_rules(minimal):
    minimal["settlement"].pop("savings_rate")
    minimal["settlement"].pop("loss_rate")
    minimal["settlement"]["steps"] = ["actual_tcoc", "gross_result", "msr_test", "corridor", "net"]
    bands = minimal["settlement"]["corridors"] = [
        {"upper": "-0.05", "aco_share": "0"},
        {"lower": "-0.05", "upper": "0.05", "aco_share": "1"},
        {"lower": "0.05", "aco_share": "0.25"},
    ]
    p = parse_program(copy.deepcopy(minimal))
    assert [(b.lower, b.upper) for b in p.settlement.corridors] == [
        (None, Decimal("-0.05")),
        (Decimal("-0.05"), Decimal("0.05")),
        (Decimal("0.05"), None),
    ]
    bands[1]["lower"] = None
    fails(copy.deepcopy(minimal), "settlement.corridors[1].lower", "only the first band may be unbounded below")
    bands[1]["lower"] = "0.06"
    fails(copy.deepcopy(minimal), "settlement.corridors[1].lower", "must be below upper")
    bands[1]["lower"] = "-0.05"
    bands[1].pop("upper")
    fails(copy.deepcopy(minimal), "settlement.corridors[1].upper", "only the last band may be unbounded above")
    bands[1]["upper"] = "0.05"
    minimal["settlement"]["risk"] = "one_sided"
    minimal["settlement"].pop("mlr")
    fails(minimal, "settlement.corridors[1].aco_share", "one_sided program cannot share losses")


def test_a_shipped_tables_year_loads_and_scores_every_year_of_the_program(minimal):
    """The tables year is checked at load, whatever year the program is: the performance year's own
    tables when shipped, else the tables year the terms state (which then scores its base years too)."""
    ra = {"method": "cms_hcc", "models": [{"version": "V24", "weight": "1"}], "tables_year": 2025}
    minimal["target"]["risk_adjustment"] = ra
    p = parse_program(copy.deepcopy(minimal))
    assert p.target.risk_adjustment.hcc_tables_year(p.performance_year) == 2025
    ra.pop("tables_year")
    minimal.update(performance_year=2026, program_id="test-2026-minimal")
    minimal["attribution"]["window_end"] = "2025-12-31"
    minimal["target"]["base_years"] = [{"year": 2025, "weight": "1"}]
    minimal["target"]["trend"]["rates"] = {2026: "0.05"}
    minimal["target"]["risk_adjustment"]["models"] = [{"version": "V28", "weight": "1"}]
    p = parse_program(minimal)
    assert p.target.risk_adjustment.hcc_tables_year(p.performance_year) == 2026


def test_payer_supplied_target_and_attribution(minimal):
    minimal["attribution"] = {"method": "payer_supplied"}
    minimal["target"] = {"method": "payer_supplied", "payer_supplied_pmpm": {"all": [{"from": "2022-01-01", "value": "512.34"}]}}
    p = parse_program(minimal)
    assert p.target.payer_supplied_pmpm["all"].at(D(2022, 12, 1)) == Decimal("512.34")
    assert p.attribution.steps == []


def test_program_terms_is_exported():
    assert ProgramTerms.model_fields["program_id"].is_required()


def test_service_categories_match_the_claims_stage():
    from allpayer.core.claims import SERVICE_CATEGORIES as CLAIMS_CATEGORIES
    from allpayer.terms.models import SERVICE_CATEGORIES

    assert set(SERVICE_CATEGORIES) == set(CLAIMS_CATEGORIES)


def test_enrollment_types_match_the_member_months_labels():
    mm = pytest.importorskip("allpayer.core.member_months")
    import typing

    import ibis

    from allpayer.terms.models import EnrollmentType

    t = ibis.memtable(
        {
            "payer_type": ["medicare"] * 4,
            "medicare_status_code": ["31", "20", "10", "10"],
            "dual_status_code": ["00", "00", "02", "00"],
        }
    )
    labels = t.select(e=mm.enrollment_type_expr(t)).to_pyarrow()["e"].to_pylist()
    assert labels == ["esrd", "disabled", "aged_dual", "aged_nondual"]
    assert set(labels) == set(typing.get_args(EnrollmentType))
