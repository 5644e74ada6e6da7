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
