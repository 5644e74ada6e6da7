"""CMS's public use file as input to `allpayer mssp settle`: layout, formats, comparison with CMS.

The rows are real: ACOs of CMS's PY2020 and PY2019 (January-June) ACO financial and quality results
public use files (data.cms.gov datasets 8f073013-9db0-4b12-9a34-5802bdabbdfe and
9c3a4c69-7d00-4307-9b6f-a080dc90417e, as stored in the samstearns/mssp R package's
data/mssp_all_years.rda), written here in the file's formats: dollars with "$" and commas,
percentages with or without "%", DisAdj negative, the PY2019 file's lower-case column names.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from allpayer.cli import main
from allpayer.errors import InputFileError
from allpayer.settlement.mssp_puf import parse_money, read_puf
from allpayer.settlement.mssp_terms import load_mssp_rules

D = Decimal
FLAGS = ["Current_Track_1", "Current_Track_1_Plus", "Current_Track_2", "Current_Track_3", "Current_BASIC_A",
         "Current_BASIC_B", "Current_BASIC_C", "Current_BASIC_D", "Current_BASIC_E", "Current_ENHANCED"]
PUF_2020 = ["ACO_ID", *FLAGS, "Current_Start_Date", "N_AB", "MinSavPerc", "GenSaveLoss", "DisAdj", "EarnSaveLoss",
            "Met_QPS", "QualScore", "ABtotBnchmk", "ABtotExp"]


def flags(track: str) -> list[str]:
    return ["1" if f == track else "0" for f in FLAGS]


ROWS_2020 = [
    # ENHANCED savings, 75% x 100.00: published 54,320,998 (ours 54,320,998.50)
    ["A1001", *flags("Current_ENHANCED"), "7/1/2019", "80,864", "2.00%", "$72,427,998", "", "$54,320,998", "1",
     "100.00", "$956,864,945", "$884,436,947"],
    # BASIC B at its 10% performance payment limit
    ["A1070", *flags("Current_BASIC_B"), "7/1/2019", "10,347", "2.98%", "$56,620,645", "", "$18,993,856", "1",
     "96.87", "$189,938,560", "$133,317,915"],
    # ENHANCED loss above its 1% MLR (no MinLossPerc column: the symmetric MSR), wholly waived for 2020
    ["A4692", *flags("Current_ENHANCED"), "7/1/2019", "39,919", "1.00%", "($7,384,788)", "($2,953,915)", "$0", "1",
     "97.50", "$394,971,955", "$402,356,743"],
    # Track 1 positive but below its 2.13% MSR
    ["A2500", *flags("Current_Track_1"), "1/1/2018", "53,727", "2.13%", "$0", "", "$0", "1", "96.87",
     "$531,847,704", "$526,655,084"],
]


def write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_out(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="") as f:
        return {r["aco_id"]: r for r in csv.DictReader(f)}


def test_puf_detected_settled_and_compared(tmp_path, capsys):
    src = write(tmp_path / "puf.csv", PUF_2020, ROWS_2020)
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--year", "2020", "--out", str(out)]) == 0
    rows = read_out(out)
    a1001 = rows["A1001"]
    assert list(a1001)[:8] == ["performance_year", "aco_id", "generated_savings_losses", "earned_savings_losses",
                               "published_generated_savings_losses", "generated_difference",
                               "published_earned_savings_losses", "earned_difference"]
    assert (a1001["earned_savings_losses"], a1001["published_earned_savings_losses"], a1001["earned_difference"]) == (
        "54320998.50", "54320998.00", "0.50")
    assert rows["A1070"]["cap_applied"] == "1" and rows["A1070"]["earned_difference"] == "0.00"
    a4692 = rows["A4692"]
    assert a4692["threshold_met"] == "1" and a4692["threshold_rate"] == "0.01"
    assert a4692["generated_difference"] == "0.00" and a4692["earned_savings_losses"] == "0.00"
    assert rows["A2500"]["threshold_met"] == "0"
    assert "within $1 for 4 of 4 ACO(s); within 0.001% of the benchmark" in capsys.readouterr().out


def test_puf_layout_forced_and_year_required(tmp_path, capsys):
    src = write(tmp_path / "puf.csv", PUF_2020, ROWS_2020[:1])
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 2
    assert "no performance-year column: give --year" in capsys.readouterr().err
    assert main(["mssp", "settle", str(src), "--out", str(out), "--layout", "puf", "--year", "2020"]) == 0
    # the allpayer layout forced on a PUF names its missing columns
    assert main(["mssp", "settle", str(src), "--out", str(out), "--layout", "allpayer"]) == 2
    assert "missing required column(s): performance_year" in capsys.readouterr().err


def test_py2019_lower_case_file_fractions_and_suppressed_cells(tmp_path, capsys):
    header = [h.lower() for h in PUF_2020]
    rows = [
        # Track 1 savings, MinSavPerc as a fraction and QualScore in percent (the PY2019 file's formats)
        ["A1001", *flags("Current_Track_1"), "1/1/2016", "74707", "0.02", "57047752", "0", "27971226", "1",
         "98.06", "523183929", "466136177"],
        # Track 3 loss: 40% floor less DisAdj, published -8,726,115
        ["A3521", *flags("Current_Track_3"), "1/1/2016", "42228", "0.02", "-21871137", "-22340", "-8726115", "1",
         "92.17", "491420036", "513291173"],
        ["A9999", *flags("Current_Track_1"), "1/1/2016", "74707", "0.02", "1", "0", "1", "1", "*", "523183929",
         "466136177"],
    ]
    src = write(tmp_path / "puf2019.csv", header, rows)
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--year", "2019", "--out", str(out)]) == 3
    got = read_out(out)
    assert D(got["A1001"]["earned_difference"]).copy_abs() <= D("523183929") * D("0.00001")
    assert got["A3521"]["earned_savings_losses"] == "-8726114.80" and got["A3521"]["earned_difference"] == "0.20"
    assert "January 1 - June 30, 2019" in got["A3521"]["rule_set"]
    err = capsys.readouterr().err
    assert "line 4 (aco_id A9999): rejected: QualScore is suppressed (*)" in err


def test_current_track_text_column(tmp_path, capsys):
    # The later files carry the track as one Current_Track column (CMS's data dictionary: BASIC levels
    # A .. E). Values of CMS's PY2024 file for two ACOs of spec/mssp_examples.csv, written in the
    # file's formats (a column name padded with spaces); the third row's track is not one this
    # version reads.
    header = ["ACO_ID", " Current_Track ", "N_AB", "MinSavPerc", "MinLossPerc", "GenSaveLoss", "EarnSaveLoss",
              "Met_QPS", "QualScore", "ABtotBnchmk", "ABtotExp"]
    rows = [
        ["A1001", "ENHANCED", "116,175", "2.00", "2.00", "$146,796,368", "$107,895,330", "1", "77.05",
         "$1,650,927,172", "$1,504,130,805"],
        ["A1059", "E", "28,971", "2.41", "2.41", "$21,761,127", "$10,662,952", "1", "80.37", "$424,274,078",
         "$402,512,951"],
        ["A9998", "Level F", "1", "2.00", "2.00", "$1", "$1", "1", "80.00", "$100", "$99"],
    ]
    src = write(tmp_path / "puf.csv", header, rows)
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--year", "2024", "--out", str(out)]) == 3
    got = read_out(out)
    assert (got["A1001"]["track"], got["A1059"]["track"]) == ("ENHANCED", "BASIC_E")
    assert D(got["A1001"]["earned_difference"]).copy_abs() <= 1
    assert D(got["A1059"]["earned_difference"]).copy_abs() <= 1
    captured = capsys.readouterr()
    assert "within $1 for 2 of 2 ACO(s)" in captured.out
    assert "A9998): rejected: Current_Track 'Level F' is not a track this version reads" in captured.err


def test_file_without_a_track_fails_naming_the_missing_columns(tmp_path):
    header = ["ACO_ID", "MinSavPerc", "GenSaveLoss", "EarnSaveLoss", "Met_QPS", "QualScore", "ABtotBnchmk", "ABtotExp"]
    src = write(tmp_path / "puf.csv", header, [["A1", "2", "1", "1", "1", "90", "100", "99"]])
    with pytest.raises(InputFileError, match="missing the track: Current_Track, or the flag columns"):
        read_puf(src, 2024, load_mssp_rules())


@pytest.mark.parametrize("raw, value", [("$1,234", "1234"), ("-1,234.5", "-1234.5"), ("($2,953,915)", "-2953915")])
def test_parse_money(raw, value):
    assert parse_money(raw, "x") == D(value)
