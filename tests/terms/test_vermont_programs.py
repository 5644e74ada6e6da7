"""The shipped Vermont example programs: they load, their values match spec/domain.md, every
number has provenance, and the names in them match the README the data generator reads."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from fractions import Fraction

import pytest

from allpayer.inputs.schema import PAYER_TYPES
from allpayer.terms import load_programs, programs_dir

VERMONT = programs_dir() / "vermont"
PROGRAMS = {p.program_id: p for p in load_programs([VERMONT])}
README = (VERMONT / "README.md").read_text()
D = dt.date


def test_the_expected_programs_ship():
    assert sorted(PROGRAMS) == [
        "vt-2022-bcbsvt-qhp",
        "vt-2022-medicaid",
        "vt-2022-medicare",
        "vt-2022-mvp-qhp",
        "vt-2022-sov-employees",
        "vt-2022-uvmmc-employees",
        "vt-2024-medicaid",
        "vt-2024-medicare",
        "vt-2024-mvp-qhp",
        "vt-2024-sov-employees",
        "vt-2024-uvmmc-employees",
    ]


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_identity_and_file_layout(program_id):
    p = PROGRAMS[program_id]
    year = p.performance_year
    assert program_id.startswith(f"vt-{year}-")
    assert f"/vermont/{year}/" in p.source_path.replace("\\", "/")
    assert p.aco.id == "onecare_vermont" and p.aco.name == "OneCare Vermont"
    assert p.payer in ("medicare", "medicaid", "bcbsvt", "mvp")
    assert p.kind in PAYER_TYPES
    assert (p.effective.start, p.effective.end) == (D(year, 1, 1), D(year, 12, 31))


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_every_number_has_provenance(program_id):
    p = PROGRAMS[program_id]
    assert p.unsourced_values() == []
    assert len(p.assumptions()) > 10


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_references_name_listed_sources(program_id):
    p = PROGRAMS[program_id]
    documents = set()
    for _, value in p.walk_values():
        documents |= {e.reference.document for e in value.entries if e.reference is not None}
    for _, block in p.walk_blocks():
        if block.reference is not None:
            documents.add(block.reference.document)
    assert documents and documents <= set(p.sources), documents - set(p.sources)


@pytest.mark.parametrize("program_id", sorted(PROGRAMS))
def test_readme_names_the_program_and_its_data_values(program_id):
    p = PROGRAMS[program_id]
    row = next(line for line in README.splitlines() if line.startswith(f"| `{program_id}` |"))
    assert f"`{p.payer}`" in row and f"`{p.product}`" in row and f"| {p.kind} |" in row
    for plan in p.population.plans:
        assert f"plan `{plan}`" in row
    for group in p.population.group_ids or []:
        assert f"group `{group}`" in row
    year_folder = f"`{p.performance_year}/{p.source_path.replace(chr(92), '/').rsplit('/', 1)[1]}`"
    assert year_folder in row


def test_readme_lists_every_measure_and_aid_category():
    measures = {m.id for p in PROGRAMS.values() if p.quality for m in p.quality.measures}
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \|", README, flags=re.M))
    assert measures <= documented
    for cat in PROGRAMS["vt-2024-medicaid"].target.rate_cells.aid_categories:
        assert f"`{cat}`" in README


def test_bcbsvt_qhp_only_in_2022():
    assert "vt-2022-bcbsvt-qhp" in PROGRAMS
    assert not [p for p in PROGRAMS.values() if p.performance_year == 2024 and p.payer == "bcbsvt"]


def test_2024_self_funded_administrator_and_value_payment_are_assumptions():
    for group in ("sov", "uvmmc"):
        p = PROGRAMS[f"vt-2024-{group}-employees"]
        assert p.payer == "mvp" and p.kind == "self_funded"
        assert p.population.is_assumption and "MVP" in p.population.note
        assert p.payments.value_payment.base_pmpm.is_assumption
        assert p.payments.value_payment.adjustment.is_assumption
    p2022 = PROGRAMS["vt-2022-sov-employees"]
    assert p2022.payer == "bcbsvt" and p2022.population.reference.document == "S21"
    assert p2022.population.group_ids == ["SOV"] and p2022.population.require_employer_opt_in
    assert not p2022.population.is_assumption
    assert PROGRAMS["vt-2022-uvmmc-employees"].population.is_assumption  # administrator BCBSVT assumed


def test_value_payment_pmpm_is_the_derived_4_20():
    entry = PROGRAMS["vt-2022-sov-employees"].payments.value_payment.base_pmpm.entries[0]
    assert (entry.value, entry.basis, entry.reference.document) == (Decimal("4.20"), "DERIVED", "S19")
    # T14: $2.5M / (50,000 x 12) = $4.1667 -> $4.20 rounded as in domain.md
    assert abs(Decimal("2500000") / (50000 * 12) - entry.value) < Decimal("0.05")


@pytest.mark.parametrize("year", [2022, 2024])
def test_vmng_corridor_is_three_percent_and_assumed_outside_2017(year):
    p = PROGRAMS[f"vt-{year}-medicaid"]
    (band,) = p.settlement.corridors
    assert (band.lower, band.upper, band.aco_share) == (Decimal("-0.03"), Decimal("0.03"), Decimal("1"))
    assert band.is_assumption and band.reference.document == "S4" and "2017 only" in band.note
    assert p.settlement.risk == "two_sided"
    assert p.settlement.steps == ["actual_tcoc", "truncation", "gross_result", "msr_test", "corridor", "quality_modifier", "net"]


def test_t7_corridor_arithmetic_with_the_shipped_band():
    # domain.md T7: T = $45.6M, A = $44.1M: G = $1.5M (3.29%); the ACO keeps 3% of T = $1,368,000.
    (band,) = PROGRAMS["vt-2022-medicaid"].settlement.corridors
    target, actual = Decimal("45600000"), Decimal("44100000")
    kept = min(max(target - actual, band.lower * target), band.upper * target) * band.aco_share
    assert kept == Decimal("1368000.00")
    # loss mirror: A = $48.0M -> the ACO pays $1,368,000
    owed = min(max(target - Decimal("48000000"), band.lower * target), band.upper * target) * band.aco_share
    assert owed == Decimal("-1368000.00")


def test_vmng_attribution_matches_the_documented_rules():
    for year in (2022, 2024):
        a = PROGRAMS[f"vt-{year}-medicaid"].attribution
        assert a.method == "prospective" and not a.add_members_during_year and a.requalify
        assert {e.reason for e in a.exclusions} == {"lost_coverage", "other_coverage", "aged_into_medicare", "death", "practice_left"}
        assert all(e.scope == "month" and e.reference.document == "S5" for e in a.exclusions)
        assert [s.rule for s in a.steps] == ["plurality", "expanded"]
        assert a.lookback_months.is_assumption
    assert PROGRAMS["vt-2022-medicaid"].attribution.steps[1].valid_through == D(2022, 12, 31)


def test_medicare_terms():
    for year in (2022, 2024):
        p = PROGRAMS[f"vt-{year}-medicare"]
        assert p.attribution.recency_weights == [Fraction(1, 3), Fraction(2, 3)]
        assert [s.rule for s in p.attribution.steps] == ["voluntary_alignment", "plurality"]
        assert p.target.truncation.percentile.value == Decimal("0.99")
        assert p.target.truncation.percentile.entries[0].reference.document == "S12"
        assert p.cell_ids() == ["esrd", "disabled", "aged_dual", "aged_nondual"]
        assert p.payments.fpp.mechanism == "aipbp" and p.payments.fpp.reconciliation == "separate"
        assert not p.payments.fpp.report_performance  # Medicare shows $0 fixed payment performance
        assert p.settlement.caps.savings[0].rate.value == Decimal("0.15")
        assert p.settlement.sequestration.rate.value == Decimal("0.02")
        (adv,) = p.payments.advance_payments
        assert adv.annual_amount.value == Decimal("8400000.00")
    assert [m.version for m in PROGRAMS["vt-2024-medicare"].target.risk_adjustment.models] == ["V24", "V28"]


def test_phm_pmpms_follow_2021_values_t8():
    for p in PROGRAMS.values():
        phm = p.payments.phm
        assert (phm.base_pmpm.value, phm.max_pmpm.value) == (Decimal("1.75"), Decimal("4.75"))
        assert phm.base_pmpm.entries[0].reference.document == "S17" and phm.base_pmpm.is_assumption
    # T8: a practice with 2,000 attributed lives: base $42,000 a year, at most $114,000
    assert Decimal("1.75") * 2000 * 12 == 42000 and Decimal("4.75") * 2000 * 12 == 114000


def test_quality_targets_from_s15():
    m = PROGRAMS["vt-2024-medicaid"].quality
    assert m.measure("hedis_wcv").target.value == Decimal("0.6474")
    assert m.measure("cdev").target.value == Decimal("0.5160")
    assert PROGRAMS["vt-2024-medicare"].quality.measure("awv").target.value == Decimal("0.5180")
    assert [m.id for m in PROGRAMS["vt-2024-sov-employees"].quality.measures] == ["hedis_wcv", "cdev", "hedis_fmc"]


def test_2024_targets_use_base_years_inside_the_synthetic_span():
    for p in PROGRAMS.values():
        if p.performance_year == 2024:
            assert all(2022 <= b.year <= 2023 for b in p.target.base_years)
            assert p.attribution.window_end == D(2023, 12, 31)


def test_programs_select_names_the_synthetic_data_uses():
    names = pytest.importorskip("allpayer.synth.names")

    entities = {(e.payer, e.payer_type, e.plan, e.group_id) for e in names.PLAN_ENTITIES}
    for p in PROGRAMS.values():
        for plan in p.population.plans:
            for group in p.population.group_ids or [None]:
                assert (p.payer, p.kind, plan, group) in entities, p.program_id
    medicaid_cells = PROGRAMS["vt-2024-medicaid"].target.rate_cells.aid_categories
    assert set(medicaid_cells) == set(names.MEDICAID_AID_CATEGORIES)
    administrators = {e.group_id: dict(e.administrators) for e in names.EMPLOYERS}
    for p in PROGRAMS.values():
        for group in p.population.group_ids or []:
            held = [payer for start, payer in sorted(administrators[group].items()) if start <= p.effective.start]
            assert held[-1] == p.payer, (p.program_id, group)
