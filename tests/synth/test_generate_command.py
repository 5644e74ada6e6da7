"""The `allpayer generate` command."""

import json

import pytest

from allpayer.cli import main
from allpayer.commands.generate import _parse_years
from allpayer.errors import AllpayerError


def test_generate_command_writes_tables_and_prints_a_summary(tmp_path, capsys):
    out = tmp_path / "pop"
    code = main(["generate", "--members", "600", "--seed", "4", "--out", str(out), "--format", "csv", "--years", "2023", "2024"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "medical_claim" in printed and "600 people" in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["years"] == [2023, 2024] and manifest["format"] == "csv" and manifest["seed"] == 4
    assert (out / "medical_claim.csv").stat().st_size > 0


def test_inject_errors_option(tmp_path, capsys):
    out = tmp_path / "bad"
    assert main(["generate", "--members", "300", "--out", str(out), "--inject-errors", "0.02"]) == 0
    assert "bad rows" in capsys.readouterr().out
    assert (out / "injected_errors.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--members", "0"], "--members"),
        (["--years", "2022", "2024"], "--years"),
        (["--format", "json"], "--format"),
        (["--inject-errors", "2"], "--inject-errors"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, capsys, args, message):
    code = main(["generate", "--out", str(tmp_path / "x")] + args)
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "x" / "manifest.json").exists()


def test_years_parsing():
    assert _parse_years(["2022"], ["2023", "2024"]) == (2022, 2023, 2024)
    assert _parse_years(["2022,2023"], []) == (2022, 2023)
    assert _parse_years(None, []) is None
    with pytest.raises(AllpayerError):
        _parse_years(None, ["2023"])
    with pytest.raises(AllpayerError):
        _parse_years(["20x2"], [])


def test_help_describes_every_option(capsys):
    assert main(["generate", "--help"]) == 0
    text = capsys.readouterr().out
    for opt in ("--members", "--seed", "--out", "--format", "--years", "--inject-errors", "--dhmc-fpp"):
        assert opt in text
