"""Payer-report comparison, line diffs with causes, and what-if terms overrides."""

from __future__ import annotations

import pytest

from allpayer.errors import InputFileError, TermsError
from allpayer.settlement.compare import compare_with_payer, diff_lines, read_payer_report
from allpayer.settlement.engine import SettlementInputs, settle_program
from allpayer.settlement.whatif import WhatIfError, apply_set, replace_programs, with_sets
from allpayer.terms import load_program, load_programs, programs_dir

from .helpers import cents

SOV = programs_dir() / "vermont" / "2024" / "sov_employees.yaml"


def test_payer_report_compared_line_by_line(tmp_path):
    p = tmp_path / "payer.csv"
    p.write_text("line_id,amount\ntarget,1000000.00\ngross_result,\"40,000.00\"\nnet,19999.99\npayer_only,5\n")
    theirs = read_payer_report(p)
    assert theirs == {"target": 100000000, "gross_result": 4000000, "net": 1999999, "payer_only": 500}
    ours = [{"line_id": "target", "amount_cents": 100000000}, {"line_id": "gross_result", "amount_cents": 4000000},
            {"line_id": "net", "amount_cents": 2000000}, {"line_id": "rate", "amount_cents": None},
            {"line_id": "shared", "amount_cents": 2000000}]
    rows = {r["line_id"]: r for r in compare_with_payer(ours, theirs)}
    assert rows["target"]["status"] == "match"
    assert rows["net"]["status"] == "differs" and rows["net"]["difference_cents"] == 1
    assert rows["shared"]["status"] == "ours_only" and rows["payer_only"]["status"] == "theirs_only"
    assert "rate" not in rows


def test_bad_payer_reports(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("id,value\n")
    with pytest.raises(InputFileError, match="r.csv: expected a CSV with the header line_id,amount"):
        read_payer_report(p)
    p.write_text("line_id,amount\nnet,abc\n")
    with pytest.raises(InputFileError, match="line 2: amount 'abc' is not a number"):
        read_payer_report(p)
    p.write_text("line_id,amount\nnet,-6854131.805\n")
    with pytest.raises(InputFileError, match="line 2: amount -6854131.805 is not a whole number of cents"):
        read_payer_report(p)
    p.write_text("line_id,amount\nnet,1\nnet,2\n")
    with pytest.raises(InputFileError, match="appears twice"):
        read_payer_report(p)


def test_diff_explains_the_variance_by_the_input_that_moved():
    prog = load_program(SOV)
    a = settle_program(prog, SettlementInputs(cents("1000000.00"), cents("900000.00")))
    b = settle_program(prog, SettlementInputs(cents("1000000.00"), cents("950000.00")))
    rows = {r["line_id"]: r for r in diff_lines([ln.__dict__ for ln in a.lines], [ln.__dict__ for ln in b.lines])}
    assert rows["target"]["status"] == "same"
    assert rows["net"]["status"] == "changed"
    assert rows["net"]["cause"] == "actual_ffs +50000.00"
    assert rows["gross_result"]["difference_cents"] == -cents("50000.00")


def test_diff_names_a_changed_term():
    base = load_program(SOV)
    changed = with_sets(base, ["savings_rate=0.6"])
    inp = SettlementInputs(cents("1000000.00"), cents("970000.00"))
    a, b = settle_program(base, inp), settle_program(changed, inp)
    rows = {r["line_id"]: r for r in diff_lines([ln.__dict__ for ln in a.lines], [ln.__dict__ for ln in b.lines])}
    assert rows["sharing_rate"]["cause"] == "sharing_rate moved"
    assert rows["share_shared"]["difference_cents"] == cents("3000.00")  # 10% more of $30,000
    assert "sharing_rate 0.50 -> 0.6" in rows["net"]["cause"]


def test_apply_set_paths_and_errors():
    programs = [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == 2024]
    out = replace_programs(programs, sets=["settlement.caps.savings[0].rate=0.07"], program_id="vt-2024-sov-employees")
    sov = next(p for p in out if p.program_id == "vt-2024-sov-employees")
    assert str(sov.settlement.caps.savings[0].rate.value) == "0.07"
    assert next(p for p in programs if p.program_id == "vt-2024-sov-employees").settlement.caps.savings[0].rate.value \
        != sov.settlement.caps.savings[0].rate.value  # the loaded terms are not changed
    with pytest.raises(WhatIfError, match="expected KEY=VALUE"):
        apply_set({}, "savings_rate")
    with pytest.raises(WhatIfError, match="no key settlement.sharing"):
        replace_programs(programs, sets=["sharing.savings_rate=0.6"], program_id="vt-2024-sov-employees")
    with pytest.raises(TermsError, match="settlement.savings_rate"):
        replace_programs(programs, sets=["savings_rate=1.5"], program_id="vt-2024-sov-employees")
    with pytest.raises(WhatIfError, match="no program"):
        replace_programs(programs, sets=["savings_rate=0.5"], program_id="nope")


def test_terms_file_replaces_the_program_with_its_id(tmp_path):
    programs = [p for p in load_programs([programs_dir() / "vermont"]) if p.performance_year == 2024]
    other = tmp_path / "sov.yaml"
    other.write_text(SOV.read_text().replace('savings_rate: {value: "0.50", basis: INF}',
                                             'savings_rate: {value: "0.65", basis: INF}'))
    out = replace_programs(programs, terms_file=other)
    sov = next(p for p in out if p.program_id == "vt-2024-sov-employees")
    assert str(sov.settlement.savings_rate.value) == "0.65"
    assert len(out) == len(programs)
    stranger = tmp_path / "x.yaml"
    stranger.write_text(SOV.read_text().replace("program_id: vt-2024-sov-employees", "program_id: vt-2024-nobody"))
    with pytest.raises(WhatIfError, match="vt-2024-nobody' is not among the programs"):
        replace_programs(programs, terms_file=stranger)
