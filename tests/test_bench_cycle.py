"""The whole-cycle benchmark's bookkeeping: stage rows, the run's tables and the core total."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_cycle  # noqa: E402


def _result():
    return {
        "members": 1000, "backend": "duckdb", "medical_claim_rows": 40_000, "floor_seconds": 0.5,
        "load_avg_1m_at_start": 1.0, "load_avg_1m_at_end": 1.5, "complete": True,
        "stages": [
            {"stage": "load", "seconds": 4.0, "cpu_seconds": 3.0, "peak_rss_mb": 300.0},
            {"stage": "run", "seconds": 10.0, "cpu_seconds": 8.0, "peak_rss_mb": 500.0},
            {"stage": "quality", "seconds": 6.0, "cpu_seconds": 5.0, "peak_rss_mb": 700.0},
        ],
        "run_tables": {
            "member_months": {"seconds": 0.5, "rows": 12_000},
            "attribution": {"seconds": 3.0, "rows": 11_000},
            "risk_scores": {"seconds": 1.0, "rows": 900},
            "risk_model_scores": {"seconds": 0.25, "rows": 1_800},
            "risk_score_factors": {"seconds": 0.5, "rows": 9_000},
            "risk_exclusions": {"seconds": 0.25, "rows": 3},
            "risk_ratios": {"seconds": 0.25, "rows": 4},
            "tcoc_member_month": {"seconds": 0.75, "rows": 12_000},
            "targets": {"seconds": 1.5, "rows": 300},
        },
    }


def test_run_tables_follow_the_run_stage_and_do_not_count_twice():
    rows = bench_cycle.rows_of(_result())
    stages = [r["stage"] for r in rows]
    assert stages[:2] == ["load", "run"]
    assert stages[2:12] == ["run: member_months", "run: attribution", "run: risk_scores", "run: risk_model_scores",
                            "run: risk_score_factors", "run: risk_exclusions", "run: risk_ratios",
                            "run: tcoc_member_month", "run: targets", bench_cycle.CORE_ROW]
    assert stages[12:] == [bench_cycle.CORE_WITH_WORK_ROW, "quality", "cycle"]
    by = {r["stage"]: r for r in rows}
    # the core total: attribution 3 + risk 1 + 0.25 + 0.5 + 0.25 + 0.25 + TCOC 0.75 + targets 1.5 = 7.5 s,
    # 15 times the 0.5 s floor (the tables behind the risk scores count with them)
    assert by[bench_cycle.CORE_ROW]["seconds"] == 7.5
    assert by[bench_cycle.CORE_ROW]["ratio_to_floor"] == 15.0
    assert by["run: attribution"]["output_rows"] == 11_000
    assert by["run: attribution"]["cpu_seconds"] is None
    # the cycle sums the stages only (4 + 10 + 6), not the run's tables again
    assert by["cycle"]["seconds"] == 20.0
    assert by["cycle"]["cpu_seconds"] == 16.0
    assert by["cycle"]["peak_rss_mb"] == 700.0


def test_the_run_seconds_outside_its_tables_follow_them_and_stay_out_of_the_core_total():
    result = _result()
    result["run_other"] = {"working table claim_lines": 2.0, "publish": 0.5, "working table risk_diagnoses": 1.25,
                           "working table base_member_month_cost": 0.75}
    rows = bench_cycle.rows_of(result)
    stages = [r["stage"] for r in rows]
    assert stages[11:16] == ["run: working table claim_lines", "run: publish", "run: working table risk_diagnoses",
                             "run: working table base_member_month_cost", bench_cycle.CORE_ROW]
    assert stages[16] == bench_cycle.CORE_WITH_WORK_ROW
    by = {r["stage"]: r for r in rows}
    assert by["run: working table claim_lines"]["seconds"] == 2.0
    assert by[bench_cycle.CORE_ROW]["seconds"] == 7.5
    # with the working tables the core stages read (the risk diagnoses, the base months' cost),
    # not the others (a table no core stage reads, publishing)
    assert by[bench_cycle.CORE_WITH_WORK_ROW]["seconds"] == 9.5
    assert by[bench_cycle.CORE_WITH_WORK_ROW]["ratio_to_floor"] == 19.0
    assert by["cycle"]["seconds"] == 20.0


def test_without_the_run_tables_there_is_no_core_row(tmp_path):
    result = _result()
    del result["run_tables"]
    rows = bench_cycle.rows_of(result)
    assert [r["stage"] for r in rows] == ["load", "run", "quality", "cycle"]
    env = {"cpus": 2, "python": "3", "duckdb": "1", "ibis": "1"}
    bench_cycle.render(rows, env, tmp_path / "c.md", tmp_path / "c.svg")
    assert "Rows `run: TABLE`" not in (tmp_path / "c.md").read_text()
    bench_cycle.render(bench_cycle.rows_of(_result()), env, tmp_path / "c.md", tmp_path / "c.svg")
    assert "| core (attribution+risk+tcoc+targets) | 7.5 |" in (tmp_path / "c.md").read_text()
