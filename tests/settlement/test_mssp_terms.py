"""MSSP terms: the packaged dated parameters, and invalid terms files named by file and key."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from allpayer.errors import TermsError
from allpayer.settlement.mssp_terms import TrackCode, load_mssp_rules, packaged_terms_dir

D = Decimal


@pytest.fixture()
def terms_copy(tmp_path) -> Path:
    folder = tmp_path / "mssp"
    folder.mkdir()
    for entry in packaged_terms_dir().iterdir():
        (folder / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def _edit(folder: Path, name: str, change) -> None:
    path = folder / name
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_packaged_years_and_tracks():
    rules = load_mssp_rules()
    assert list(rules.years) == [2018, 2019, 2020, 2021, 2022, 2023, 2024]
    assert set(rules.for_year(2018).tracks) == {TrackCode.TRACK_1, TrackCode.TRACK_1_PLUS, TrackCode.TRACK_2, TrackCode.TRACK_3}
    for year in (2019, 2020):  # the old tracks still running beside BASIC and ENHANCED
        assert set(rules.for_year(year).tracks) == set(TrackCode)
    periods = rules.for_year(2019).performance_periods
    assert list(periods) == ["JAN_JUN", "JUL_DEC"]
    assert [p.proration.value for p in periods.values()] == [D("0.5"), D("0.5")]
    assert rules.for_year(2019).period("BASIC_E")[0] == "JUL_DEC"
    assert rules.for_year(2020).performance_periods is None
    assert rules.for_year(2020).loss_mitigation.loss_reduction.value == D("1")
    assert {rules.for_year(y).quality.method for y in (2018, 2019, 2020)} == {"scaled"}
    assert [rules.sequestration_rate(rules.for_year(y).payment.payment_year) for y in (2019, 2020)] == [D(0), D(0)]
    for year in (2021, 2022, 2023, 2024):
        assert {t.value for t in rules.for_year(year).tracks} == {
            "BASIC_A", "BASIC_B", "BASIC_C", "BASIC_D", "BASIC_E", "ENHANCED"}


def test_packaged_values_per_year():
    rules = load_mssp_rules()
    y18, y24 = rules.for_year(2018), rules.for_year(2024)
    assert y18.payment.limit_order == "sequestration_then_limit"
    assert y24.payment.limit_order == "limit_then_sequestration"
    assert [s.value for s in y18.tracks[TrackCode.TRACK_2].loss_limit.benchmark_share_by_agreement_year] == [
        D("0.05"), D("0.075"), D("0.10")]
    e = y24.tracks[TrackCode.BASIC_E].loss_limit
    assert (e.revenue_share.value, e.benchmark_share.value) == (D("0.08"), D("0.04"))
    c = y24.tracks[TrackCode.BASIC_C].loss_limit
    assert (c.revenue_share.value, c.benchmark_share.value) == (D("0.02"), D("0.01"))
    assert y24.tracks[TrackCode.ENHANCED].loss_limit.benchmark_share.value == D("0.15")
    assert [rules.for_year(y).quality.alternative_standard.in_force for y in (2021, 2022, 2023, 2024)] == [
        False, False, True, True]
    assert rules.for_year(2023).reduced_savings_below_msr is None
    assert y24.reduced_savings_below_msr.rate_factor.value == D("0.5")
    assert rules.sequestration_rate(2019) == D("0.02")
    assert rules.sequestration_rate(2021) == D("0")
    assert rules.sequestration_rate(2025) == D("0.02")
    assert rules.sequestration_rate(2012) is None


def test_every_parameter_has_a_reference():
    rules = load_mssp_rules()
    for year in rules.years.values():
        for track in year.tracks.values():
            assert track.max_sharing_rate.reference and track.savings_cap.reference
            if track.two_sided:
                assert (track.loss_rate.fixed or track.loss_rate.quality_scaled).reference


@pytest.mark.parametrize(
    "file, change, key, problem",
    [
        ("rules_py2024.yaml", lambda d: d["tracks"]["ENHANCED"]["max_sharing_rate"].update(value=0.75),
         "tracks.ENHANCED.max_sharing_rate.value", "float is not exact"),
        ("rules_py2024.yaml", lambda d: d["tracks"]["ENHANCED"].update(bonus="0.1"), "tracks.ENHANCED.bonus", "unknown key"),
        ("rules_py2024.yaml", lambda d: d["tracks"]["BASIC_C"]["savings_cap"].update(value="1.5"),
         "tracks.BASIC_C.savings_cap.value", "between 0 and 1"),
        ("rules_py2024.yaml", lambda d: d["tracks"]["BASIC_C"].pop("loss_rate"), "tracks.BASIC_C", "two-sided track needs"),
        ("rules_py2024.yaml", lambda d: d["payment"].pop("limit_order"), "payment.limit_order", "required key is missing"),
        ("rules_py2024.yaml", lambda d: d["tracks"]["ENHANCED"]["max_sharing_rate"].pop("reference"),
         "tracks.ENHANCED.max_sharing_rate.reference", "required key is missing"),
        ("rules_py2024.yaml", lambda d: d.update(performance_year=2025), "performance_year", "file name says 2024"),
        ("rules_py2018.yaml", lambda d: d["tracks"].update(TRACK_9=d["tracks"]["TRACK_1"]), "tracks.TRACK_9", ""),
        ("sequestration.yaml", lambda d: d["by_payment_year"].reverse(), "", "increasing order"),
    ],
)
def test_bad_terms_name_file_and_key(terms_copy, file, change, key, problem):
    _edit(terms_copy, file, change)
    with pytest.raises(TermsError) as err:
        load_mssp_rules(terms_copy)
    assert err.value.path.endswith(file)
    assert err.value.key.startswith(key)
    assert problem in err.value.problem


def test_missing_sequestration_table(terms_copy):
    (terms_copy / "sequestration.yaml").unlink()
    with pytest.raises(TermsError, match="sequestration table is missing"):
        load_mssp_rules(terms_copy)


def test_not_yaml(terms_copy):
    (terms_copy / "rules_py2021.yaml").write_text("tracks: [unclosed\n")
    with pytest.raises(TermsError, match="not valid YAML"):
        load_mssp_rules(terms_copy)


def test_not_a_folder(tmp_path):
    with pytest.raises(TermsError, match="not a folder"):
        load_mssp_rules(tmp_path / "nowhere")


def test_a_what_if_folder_changes_the_rules(terms_copy):
    _edit(terms_copy, "rules_py2024.yaml", lambda d: d["tracks"]["ENHANCED"]["max_sharing_rate"].update(value="0.80"))
    assert load_mssp_rules(terms_copy).for_year(2024).tracks[TrackCode.ENHANCED].max_sharing_rate.value == D("0.80")
    shutil.rmtree(terms_copy)


def test_docstring_examples_run():
    import doctest

    from allpayer.settlement import mssp, mssp_terms

    for module in (mssp, mssp_terms):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0
