"""What the settlement reads from the engine's tables, the optional quality and payments tables
included (built by hand here: the quality and payments stages write them)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import ibis
import pyarrow as pa

from allpayer.settlement.engine import settle_program
from allpayer.settlement.inputs import program_inputs
from allpayer.terms import load_program, programs_dir

MEDICAID = load_program(programs_dir() / "vermont" / "2024" / "medicaid.yaml")
PID = MEDICAID.program_id


def con_with(**tables):
    con = ibis.duckdb.connect()
    for name, data in tables.items():
        con.create_table(name, data if isinstance(data, pa.Table) else pa.table(data))
    return con


def base_tables():
    jan, feb = dt.date(2024, 1, 1), dt.date(2024, 2, 1)
    return {
        "targets": {"program_id": [PID, PID, "other"], "performance_year": [2024, 2024, 2024],
                    "target_cents": [600_000, 400_000, 99]},
        "tcoc_member_month": {"program_id": [PID, PID, PID, PID], "performance_year": [2024, 2024, 2024, 2023],
                              "member_id": ["m1", "m1", "m2", "m1"], "month": [jan, feb, jan, jan],
                              "ffs_paid_cents": [300_000, 200_000, 450_000, 7]},
        "tcoc_truncation": {"program_id": [PID], "year": [2024], "truncated_amount_cents": [50_000]},
    }


def test_core_tables_only():
    inp, notes = program_inputs(con_with(**base_tables()), MEDICAID, 2024)
    assert (inp.target_cents, inp.actual_cents, inp.member_months, inp.members) == (1_000_000, 950_000, 3, 2)
    assert inp.truncated_amount_cents == 50_000
    assert inp.quality_score is None and inp.fixed_payment_actual_cents is None
    assert any("assumed full credit" in n for n in notes)


def test_quality_and_payments_tables_are_used():
    t = base_tables()
    t["quality_program_scores"] = {"program_id": [PID], "performance_year": [2024], "quality_score": ["0.8"],
                                   "gate_met": [True]}
    t["tcoc_fixed_payment"] = {"program_id": [PID], "performance_year": [2024], "actual_tcoc_cents": [900_000]}
    t["fixed_payment_performance"] = {"program_id": [PID, PID], "hospital_id": ["ALL", "org-a"],
                                      "performance_year": [2024, 2024], "fpp_paid_cents": [500_000, 500_000],
                                      "performance_cents": [25_000, 25_000]}
    t["fpp_payments"] = {"program_id": [PID, PID], "month": [dt.date(2024, 1, 1), dt.date(2023, 12, 1)],
                         "withhold_cents": [10_000, 5]}
    con = con_with(**t)
    con.raw_sql("ALTER TABLE quality_program_scores ALTER quality_score TYPE DECIMAL(18,10)")
    inp, notes = program_inputs(con, MEDICAID, 2024)
    assert inp.quality_score == Decimal("0.8") and inp.quality_gate_met is True
    assert inp.fixed_payment_actual_cents == 900_000
    assert inp.fixed_payment_performance_cents == 25_000 and inp.fpp_paid_cents == 500_000
    assert inp.withheld_cents == 10_000
    assert notes == []
    s = settle_program(MEDICAID, inp)
    # A = 900,000 fixed-payment TCOC - 50,000 truncated; G = 150,000 is 15% of target, beyond the 3% corridor
    assert s.amount("actual_truncated") == 850_000
    assert s.amount("corridor_shared") == 30_000
    assert s.amount("withhold_returned") == 8_000  # 10,000 x 0.8
    assert s.net_cents == 38_000 and s.combined_cents == 63_000


def test_a_quality_row_without_a_score_counts_as_not_measured():
    t = base_tables()
    t["quality_program_scores"] = pa.table({"program_id": [PID], "performance_year": [2024],
                                            "quality_score": pa.array([None], pa.decimal128(18, 10)),
                                            "measured": [False], "gate_met": [False]})
    con = con_with(**t)
    inp, notes = program_inputs(con, MEDICAID, 2024)
    assert inp.quality_score is None and inp.quality_gate_met is None
    assert any("assumed full credit" in n for n in notes)
