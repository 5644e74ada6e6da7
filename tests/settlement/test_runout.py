"""`settlement.runout_months`: the end of the contract's claims run-out, and what a settlement's
claims cutoff is against it."""

from __future__ import annotations

import datetime as dt

from allpayer.settlement.versions import runout_end, runout_note
from tests.settlement.helpers import program

SETTLEMENT = {"risk": "one_sided", "steps": ["actual_tcoc", "gross_result", "msr_test", "share", "net"],
              "savings_rate": "0.5", "msr": "0"}


def test_the_run_out_ends_at_the_end_of_the_month_runout_months_after_the_year():
    p = program(SETTLEMENT)
    year = p.performance_year
    assert runout_end(p) == dt.date(year + 1, 3, 31)  # default 3 months
    assert runout_end(program({**SETTLEMENT, "runout_months": 6})) == dt.date(year + 1, 6, 30)
    assert runout_end(program({**SETTLEMENT, "runout_months": 14})) == dt.date(year + 2, 2, 28 if (year + 2) % 4 else 29)


def test_the_note_says_how_the_claims_cutoff_stands_against_the_run_out():
    p = program(SETTLEMENT)
    y = p.performance_year
    end = dt.date(y + 1, 3, 31)
    assert runout_note(p, "initial", None) is None
    assert runout_note(p, "initial", end) == f"claims paid through {end}; the contract's run-out (3 months) ends {end}"
    assert runout_note(p, "forecast", dt.date(y, 9, 30)) == (
        f"claims paid through {dt.date(y, 9, 30)}; the contract's run-out (3 months) ends {end}")
    early = runout_note(p, "initial", dt.date(y + 1, 1, 31))
    assert "reads claims paid 2 month(s) before the run-out ends" in early
    late = runout_note(p, "final", dt.date(y + 1, 9, 30))
    assert "this final settlement counts claims paid up to 6 month(s) after the run-out" in late


def test_the_completion_factor_adds_the_claims_paid_after_the_run_out_before_the_gross_result():
    """``settlement.completion_factor`` multiplies the actual counted (after truncation), rounded
    half-up to a cent, on lines of its own; the result, the share and the PMPM follow it."""
    from decimal import Decimal

    from allpayer.settlement.engine import SettlementInputs, settle_program

    steps = ["actual_tcoc", "truncation", "gross_result", "msr_test", "share", "net"]
    terms = {**SETTLEMENT, "steps": steps, "completion_factor": "1.0125"}
    inputs = SettlementInputs(target_cents=1_000_000_00, actual_cents=950_000_01, member_months=1_000,
                              truncated_amount_cents=2_000_00)
    target = {"method": "trended_base", "base_years": [{"year": 2021, "weight": "1"}], "trend": {"rates": {2022: "0.05"}},
              "truncation": {"threshold": "100000.00"}}
    s = settle_program(program(terms, target=target), inputs)
    ids = [ln.line_id for ln in s.lines]
    assert ids.index("actual_truncated") < ids.index("completion_factor") < ids.index("completion") \
        < ids.index("actual_completed") < ids.index("gross_result")
    truncated = 950_000_01 - 2_000_00  # 948,000.01 x 1.0125 = 959,850.010125 -> 959,850.01
    assert s.rate("completion_factor") == Decimal("1.0125")
    assert s.amount("completion") == 11_850_00
    assert s.amount("actual_completed") == s.actual_cents == 959_850_01
    assert s.amount("gross_result") == 1_000_000_00 - 959_850_01
    assert s.net_cents == (1_000_000_00 - 959_850_01) // 2 + 1  # 50% of 40,149.99, half-up: 20,075.00 (cents odd)
    assert s.line("actual_completed").depends == ("actual_truncated", "completion")
    assert s.line("gross_result").depends == ("target", "actual_completed")
    assert s.rate("actual_pmpm") == Decimal("959.8500")

    # without the term nothing changes; a forecast's actual, completed to ultimate, is not completed again
    plain = settle_program(program({**SETTLEMENT, "steps": steps}, target=target), inputs)
    assert not plain.has("completion") and plain.actual_cents == truncated
    fc = settle_program(program(terms, target=target), SettlementInputs(**{**inputs.__dict__, "completed_to_ultimate": True}))
    assert not fc.has("completion") and fc.actual_cents == truncated
    assert "already completed to ultimate" in fc.line("completion_factor").note


def _core_run(tmp_path, through):
    """A snapshot whose 2024 core results come from one run with `through` (None: the whole year)."""
    import json

    import ibis

    con = ibis.duckdb.connect(tmp_path / "s.duckdb")
    con.create_table("tcoc_member_month", ibis.memtable({"performance_year": [2024], "run_id": ["R1"]}))
    con.create_table("runs", ibis.memtable({
        "run_id": ["R1"], "seq": [2], "kind": ["run"], "paid_through": [dt.date(2025, 3, 31)],
        "parameters": [json.dumps({"year": 2024, "through": through})]}))
    return con


def test_a_year_end_settlement_refuses_a_year_to_date_core_run(tmp_path):
    """A core run with ``--through 2024-06`` holds six months of the year: an initial, final or
    restated settlement of it settled and distributed January-June as the year, without a word.
    It is refused, naming the run and its last month; a forecast (in year) still reads it."""
    import pytest

    from allpayer.settlement.versions import VersionError, core_run_of, year_end_core_run

    con = _core_run(tmp_path, "2024-06-01")
    core = core_run_of(con, 2024)
    assert core["through"] == dt.date(2024, 6, 1)
    assert year_end_core_run(core, 2024, "forecast") is core
    for version in ("initial", "final", "restated"):
        with pytest.raises(VersionError, match=r"core run R1 of 2024 runs through 2024-06 \(--through\)"):
            year_end_core_run(core, 2024, version)
    (tmp_path / "whole").mkdir()
    whole = core_run_of(_core_run(tmp_path / "whole", None), 2024)
    assert whole["through"] is None and year_end_core_run(whole, 2024, "final") is whole
