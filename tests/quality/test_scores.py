"""Quality scores: points against benchmarks and targets, pay-for-reporting, the program score and
the settlement modifiers. Scale (shipped 2024 terms, domain.md R10): 30th 1.10, 40th 1.25,
50th 1.40, 60th 1.55, 70th 1.70, 80th 1.85, 90th 2.00; below the scale 0."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from allpayer.errors import InputFileError
from allpayer.quality import scores
from allpayer.terms.models import QualityModifier

from .helpers import program

R = Decimal


@pytest.fixture()
def bench(tmp_path):
    f = tmp_path / "bench.csv"
    f.write_text("benchmark_table,measure_id,percentile,rate,source\n"
                 "medicaid_hedis_national,hba1c_poor_control,30,0.45,test table\n"
                 "medicaid_hedis_national,hba1c_poor_control,50,0.38,test table\n"
                 "medicaid_hedis_national,hba1c_poor_control,90,0.25,test table\n"
                 "medicaid_hedis_national,hedis_fum_30d,50,0.40,test table\n"
                 "medicaid_hedis_national,hedis_fum_30d,90,0.60,test table\n")
    return scores.load_benchmarks(f)


def test_targets_earn_the_top_of_the_scale_or_nothing():
    p = program("vt-2024-medicaid")  # hedis_wcv target 0.6474 (S15)
    met = scores.score_measure(p, "hedis_wcv", R("0.6474"), eligible=100)
    assert (met.status, met.points, met.max_points, met.note) == ("scored", R("2.00"), R("2.00"), "target met")
    missed = scores.score_measure(p, "hedis_wcv", R("0.6473"), eligible=100)
    assert (missed.points, missed.note) == (R("0"), "target not met")


def test_benchmark_percentiles_inverse_and_direct(bench):
    p = program("vt-2024-medicaid")
    # inverse (lower is better): 0.30 beats the 50th (0.38) but not the 90th (0.25)
    s = scores.score_measure(p, "hba1c_poor_control", R("0.30"), eligible=100, benchmarks=bench)
    assert (s.percentile_reached, s.points, s.benchmark_source) == (50, R("1.40"), "test table")
    assert scores.score_measure(p, "hba1c_poor_control", R("0.25"), eligible=100, benchmarks=bench).points == R("2.00")
    below = scores.score_measure(p, "hba1c_poor_control", R("0.46"), eligible=100, benchmarks=bench)
    assert (below.percentile_reached, below.points) == (None, R("0"))
    # direct: 0.40 reaches the 50th exactly
    assert scores.score_measure(p, "hedis_fum_30d", R("0.40"), eligible=100, benchmarks=bench).points == R("1.40")


def test_reasons_for_not_scoring(bench):
    p = program("vt-2024-medicaid")  # min_denominator 30
    assert scores.score_measure(p, "hedis_wcv", R("0.9"), eligible=29).note == "denominator 29 below the minimum 30"
    assert scores.score_measure(p, "hedis_wcv", None).note.startswith("no rate")
    assert scores.score_measure(p, "hedis_fua_30d", R("0.5"), eligible=50, reportable=False).note == \
        "not reportable: redacted data"
    assert scores.score_measure(p, "iet", R("0.5"), eligible=50, benchmarks=bench).note == \
        "benchmark table medicaid_hedis_national not supplied for iet"
    assert scores.score_measure(p, "iet", R("0.5"), eligible=50, implemented=False).note == "measure not implemented"
    for s in (scores.score_measure(p, "hedis_wcv", R("0.9"), eligible=29),):
        assert s.status == "not_scored" and s.points is None


def test_pay_for_reporting_earns_full_points():
    p = program("vt-2024-medicaid")  # mcc_admissions_18plus is a reporting measure
    s = scores.score_measure(p, "mcc_admissions_18plus", R("0.9"), eligible=100)
    assert (s.status, s.standard, s.points) == ("reported", "reporting", R("2.00"))


def test_program_score_is_points_over_max_points(bench):
    p = program("vt-2024-medicaid")
    ms = [
        scores.score_measure(p, "hedis_wcv", R("0.70"), eligible=100),  # 2.00
        scores.score_measure(p, "hba1c_poor_control", R("0.30"), eligible=100, benchmarks=bench),  # 1.40
        scores.score_measure(p, "mcc_admissions_18plus", R("0.1"), eligible=100),  # 2.00 (reporting)
        scores.score_measure(p, "cdev", R("0.10"), eligible=100),  # 0 (target 0.5160 missed)
        scores.score_measure(p, "iet", None),  # not scored: left out of both sums
    ]
    ps = scores.program_score(p, ms)
    assert (ps.points_earned, ps.points_possible, ps.measures_scored) == (R("5.40"), R("8.00"), 4)
    assert ps.quality_score == Fraction(54, 80)


def test_domain_weights():
    p = program("vt-2024-medicaid")
    w = {"preventive_health": Fraction(3, 4), "at_risk_population": Fraction(1, 4),
         "care_coordination_patient_safety": Fraction(0)}
    q = p.quality.model_copy(update={"scoring": p.quality.scoring.model_copy(update={"domain_weights": w})})
    p = p.model_copy(update={"quality": q})
    ms = [scores.score_measure(p, "hedis_wcv", R("0.70"), eligible=100),  # preventive: 2/2
          scores.score_measure(p, "cdev", R("0.10"), eligible=100),  # preventive: 0/2
          scores.score_measure(p, "mcc_admissions_18plus", R("0.1"), eligible=100)]  # at risk: 2/2
    # 3/4 x (2/4) + 1/4 x 1 = 5/8
    assert scores.program_score(p, ms).quality_score == Fraction(5, 8)


def with_modifiers(p, *mods):
    mods = [QualityModifier.model_validate(m) for m in mods]
    return p.model_copy(update={"settlement": p.settlement.model_copy(update={"quality_modifiers": mods})})


def test_quality_modifiers():
    medicare = program("vt-2024-medicare")  # multiplier on savings
    m = scores.quality_modifiers(medicare, Fraction(9188, 10000))
    assert m["sharing_rate_multiplier"] == R("0.9188000000") and m["measured"] and m["gate_met"]
    assert scores.quality_modifiers(medicare, None) == {**scores.quality_modifiers(medicare, None), "measured": False,
                                                          "quality_score": None, "sharing_rate_multiplier": None}
    medicaid = program("vt-2024-medicaid")  # withhold_return
    assert scores.quality_modifiers(medicaid, Fraction(2, 3))["withhold_earned_share"] == R("0.6666666667")
    gated = with_modifiers(medicare, {"method": "gate", "min_score": "0.40"},
                           {"method": "loss_side", "applies_to": "losses", "max_rate": "0.75",
                            "loss_rate_floor": "0.40", "loss_rate_ceiling": "0.75"})
    hi = scores.quality_modifiers(gated, Fraction(9, 10))
    # loss rate = clamp(1 - 0.75 x 0.9, 0.40, 0.75) = 0.40 (1 - 0.675 = 0.325 is below the floor)
    assert hi["gate_met"] and hi["loss_rate"] == R("0.4000000000")
    lo = scores.quality_modifiers(gated, Fraction(39, 100))
    # 1 - 0.75 x 0.39 = 0.7075
    assert not lo["gate_met"] and lo["gate_min_score"] == R("0.40") and lo["loss_rate"] == R("0.7075000000")
    none = scores.quality_modifiers(gated, None)
    assert not none["gate_met"] and none["loss_rate"] == R("0.7500000000")


def test_bad_benchmark_file(tmp_path):
    f = tmp_path / "b.csv"
    f.write_text("benchmark_table,measure_id,percentile,rate,source\nt,m,fifty,0.4,x\n")
    with pytest.raises(InputFileError, match="line 2: percentile"):
        scores.load_benchmarks(f)


def test_a_supplied_table_with_percentiles_off_the_scale_scores_at_the_step_below(tmp_path):
    # A table in Quality Compass style plus the scale's own percentiles: reaching the 75th earns the
    # 70th's 1.70, reaching the 95th the 90th's 2.00, the 25th is below the scale (0).
    p = program("vt-2024-medicaid")
    f = tmp_path / "bench.csv"
    rows = {25: "0.20", 30: "0.25", 40: "0.30", 50: "0.35", 60: "0.40", 70: "0.45", 75: "0.47", 80: "0.50",
            90: "0.60", 95: "0.70"}
    f.write_text("benchmark_table,measure_id,percentile,rate,source\n"
                 + "".join(f"medicaid_hedis_national,hedis_fum_30d,{k},{v},qc\n" for k, v in rows.items()))
    bench = scores.load_benchmarks(f)
    scores.check_benchmarks([p], bench, f)

    def score(rate):
        s = scores.score_measure(p, "hedis_fum_30d", R(rate), eligible=100, benchmarks=bench)
        return s.percentile_reached, s.points

    assert score("0.48") == (75, R("1.70"))
    assert score("0.71") == (95, R("2.00"))
    assert score("0.21") == (25, R("0"))
    assert score("0.19") == (None, R("0"))


def test_a_supplied_table_must_cover_the_scale_and_rise_with_the_percentile(tmp_path, bench):
    p = program("vt-2024-medicaid")  # hedis_fum_30d and hba1c_poor_control name medicaid_hedis_national
    f = tmp_path / "bench.csv"
    # the fixture's table of hedis_fum_30d gives the 50th and 90th only: a rate between them cannot
    # tell whether it reached the 60th, 70th or 80th
    with pytest.raises(InputFileError, match=r"bench.csv: benchmark table medicaid_hedis_national, measure hedis_fum_30d: "
                                             r"no benchmark for percentile\(s\) 30, 40, 60, 70, 80 of "
                                             r"vt-2024-medicaid's scoring scale \(30, 40, 50, 60, 70, 80, 90\)"):
        scores.check_benchmarks([p], bench, f)
    scale = (30, 40, 50, 60, 70, 80, 90)
    falling = {(("medicaid_hedis_national", "hedis_fum_30d")): {k: (R("0.9") - R(i) / 10, "x")
                                                                for i, k in enumerate(scale)}}
    with pytest.raises(InputFileError, match="measure hedis_fum_30d: benchmarks must rise with the percentile"):
        scores.check_benchmarks([p], falling, f)
    rising_inverse = {("medicaid_hedis_national", "hba1c_poor_control"): {k: (R(i) / 10, "x")
                                                                          for i, k in enumerate(scale)}}
    with pytest.raises(InputFileError, match="benchmarks must fall with the percentile .an inverse measure."):
        scores.check_benchmarks([p], rising_inverse, f)
    # a table no program names, or a program without such a measure, is not checked
    scores.check_benchmarks([program("vt-2024-medicare")], bench, f)


def test_the_quality_stage_refuses_a_table_that_does_not_cover_the_scale_before_computing(tmp_path):
    from allpayer.quality.run import run_quality

    from .test_care_gaps import PAID_THROUGH, Y, database, world

    con = database(world())
    f = tmp_path / "partial.csv"
    f.write_text("benchmark_table,measure_id,percentile,rate,source\n"
                 "medicaid_hedis_national,hba1c_poor_control,50,0.38,test table\n")
    with pytest.raises(InputFileError, match="partial.csv: benchmark table medicaid_hedis_national, measure "
                                             "hba1c_poor_control: no benchmark for percentile"):
        run_quality(con, [program("vt-2024-medicaid")], Y, PAID_THROUGH, "run-1", benchmarks=f)
    assert "quality_scores" not in con.list_tables()
