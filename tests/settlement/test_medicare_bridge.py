"""The Medicare bridge: engine aggregates + a benchmark report through the MSSP calculator (T18)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from allpayer.errors import InputFileError
from allpayer.settlement.medicare_bridge import (
    EnrollmentAggregate,
    mssp_input,
    read_benchmark_report,
    settle_medicare,
)
from allpayer.terms import load_program, programs_dir

from .helpers import cents

MEDICARE = programs_dir() / "vermont" / "2024" / "medicare.yaml"


def report(tmp_path, track="ENHANCED", revenue="", per_capita="12173.8275"):
    # T18: UB = 11,819.25 x 1.03 = $12,173.8275 per capita (domain.md §3)
    p = tmp_path / "benchmark.csv"
    p.write_text("enrollment_type,updated_benchmark_per_capita,track,msr,mlr,agreement_year,participant_revenue\n"
                 f"aged_nondual,{per_capita},{track},0.02,0.02,1,{revenue}\n")
    return read_benchmark_report(p)


def t18(expenditure_per_capita: str) -> list[EnrollmentAggregate]:
    # 20,000 aged/non-dual beneficiaries all year = 240,000 member months
    return [EnrollmentAggregate("aged_nondual", 240_000, cents(expenditure_per_capita) * 20_000, 0)]


def test_t18_savings_enhanced(tmp_path):
    p = load_program(MEDICARE)
    s = settle_medicare(p, 2024, t18("11700.00"), report(tmp_path), quality_score=Decimal("0.8"),
                        met_quality_standard=True)
    assert s.target_cents == cents("243476550.00")  # total benchmark
    assert s.amount("mssp_gross_savings_losses") == cents("9476550.00")
    assert s.amount("mssp_shared_before_limit") == cents("7107412.50")  # ENHANCED 75%
    assert s.shared_cents == cents("6965264.25")  # after 2% sequestration
    # the program's advanced shared savings paid during the year ($8,400,000) are netted
    # (domain.md R8.1 step 8, R8.3): 6,965,264.25 - 8,400,000.00
    assert s.amount("advance_payments") == -cents("8400000.00")
    assert s.net_cents == -cents("1434735.75")
    assert s.combined_cents == s.net_cents
    assert s.method == "mssp"


def test_t18_basic_e_loss_limited(tmp_path):
    p = load_program(MEDICARE)
    s = settle_medicare(p, 2024, t18("12600.00"), report(tmp_path, "BASIC_E", "30000000"),
                        quality_score=Decimal("0.8"), met_quality_standard=True)
    assert s.amount("mssp_gross_savings_losses") == -cents("8523450.00")
    assert s.shared_cents == -cents("2400000.00")  # T18: BASIC E loss limited to $2,400,000
    assert s.net_cents == -cents("10800000.00")  # less the $8,400,000 advanced during the year
    assert s.combined_cents == s.net_cents  # no fixed payment performance: zero, said on its line
    assert "not yet computed" in s.line("fixed_payment_performance").note


def test_person_year_weighting_and_truncation(tmp_path):
    p = load_program(MEDICARE)
    path = tmp_path / "b.csv"
    path.write_text("enrollment_type,updated_benchmark_per_capita,track,msr,mlr\n"
                    "aged_nondual,12000,ENHANCED,0.02,0.02\nesrd,90000,ENHANCED,0.02,0.02\n")
    aggs = [EnrollmentAggregate("aged_nondual", 1200, cents("1000000.00"), cents("5000.00")),
            EnrollmentAggregate("esrd", 6, cents("40000.00"), 0)]
    inp = mssp_input(p, 2024, aggs, read_benchmark_report(path), Decimal(1), True)
    # 100 person-years x $12,000 + 0.5 person-years x $90,000
    assert inp.benchmark_total == Decimal("1245000")
    assert inp.expenditure_total == Decimal("1035000")  # 1,000,000 - 5,000 truncated + 40,000


def test_bad_benchmark_reports_name_the_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("enrollment_type,updated_benchmark_per_capita,track,msr\nmartian,1,ENHANCED,0.02\n")
    with pytest.raises(InputFileError, match="bad.csv: line 2: enrollment_type 'martian'"):
        read_benchmark_report(bad)
    bad.write_text("enrollment_type,updated_benchmark_per_capita,track,msr\naged_dual,x,ENHANCED,0.02\n")
    with pytest.raises(InputFileError, match="is not a number"):
        read_benchmark_report(bad)
    with pytest.raises(InputFileError, match="cannot read"):
        read_benchmark_report(tmp_path / "missing.csv")
