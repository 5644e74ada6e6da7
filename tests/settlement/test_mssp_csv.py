"""`allpayer mssp settle/rules` and the MSSP CSV contract: bad rows named with their line, the rest settle."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from allpayer.cli import main
from allpayer.errors import InputFileError
from allpayer.settlement.mssp_csv import (
    OUTPUT_COLUMNS,
    REQUIRED_COLUMNS,
    format_value,
    parse_row,
    read_input,
)
from allpayer.settlement.mssp import MsspInputError

HEADER = list(REQUIRED_COLUMNS) + ["disaster_adjustment", "participant_revenue", "agreement_year", "note"]
GOOD_2024 = ["2024", "G1", "ENHANCED", "243476550", "234000000", "0.02", "0.02", "0.8", "1", "", "0", "", "", "first"]
GOOD_2018 = ["2018", "G2", "TRACK_3", "100000000", "103000000", "0.01", "0.01", "0.8", "1", "", "500", "", "", "x,y"]


def write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def read_out(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_good_rows_settle_with_extras_passed_through(tmp_path, capsys):
    src = write(tmp_path / "in.csv", [GOOD_2024, GOOD_2018])
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 0
    rows = read_out(out)
    assert [r["aco_id"] for r in rows] == ["G1", "G2"]
    assert rows[0]["earned_savings_losses"] == "6965264.25"
    assert rows[0]["generated_savings_losses"] == "9476550.00"
    # Track 3 loss 3M x 40% (1 - 0.75 x 0.8 = 0.40) less $500
    assert rows[1]["earned_savings_losses"] == "-1199500.00"
    assert rows[1]["note"] == "x,y" and rows[0]["note"] == "first"
    assert list(rows[0]) == list(OUTPUT_COLUMNS) + ["note"]
    stdout = capsys.readouterr().out
    assert "settled 2 row(s), rejected 0" in stdout
    assert "earned savings $6,965,264.25, owed losses $1,199,500.00" in stdout


def test_bad_rows_reported_with_line_and_good_rows_written(tmp_path, capsys):
    rows = [
        GOOD_2024,                                                     # line 2
        ["2024", "B1", "PLATINUM"] + GOOD_2024[3:],                    # line 3: unknown track
        ["2024", "B2", "BASIC_E", ""] + GOOD_2024[4:],                 # line 4: missing benchmark
        ["2024", "B3", "BASIC_E", "100", "90", "1.2"] + GOOD_2024[6:],  # line 5: rate above 1
        ["2017", "B4"] + GOOD_2024[2:],                                # line 6: no rules for 2017
        ["2024", "G1"] + GOOD_2024[2:],                                # line 7: duplicate of line 2
        ["2024", "B5", "ENHANCED", "1e", "5"] + GOOD_2024[5:],         # line 8: not a number
        ["2024", "B6", "ENHANCED"],                                    # line 9: too few fields
        GOOD_2018,                                                     # line 10
    ]
    src = write(tmp_path / "in.csv", rows)
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 3
    assert [r["aco_id"] for r in read_out(out)] == ["G1", "G2"]
    captured = capsys.readouterr()
    err = captured.err
    expected = {
        3: ("B1", "unknown track 'PLATINUM'"),
        4: ("B2", "benchmark_total is missing"),
        5: ("B3", "msr must be a fraction between 0 and 1, got 1.2"),
        6: ("B4", "no MSSP rules for performance year 2017"),
        7: ("G1", "duplicate of line 2"),
        8: ("B5", "benchmark_total is not a number: '1e'"),
        9: ("B6", "3 fields but the header has 14"),
    }
    for line, (aco, reason) in expected.items():
        assert f"in.csv: line {line} (aco_id {aco}): rejected: " in err
        assert reason in err.split(f"line {line} ")[1].splitlines()[0]
    assert "settled 2 row(s), rejected 7" in captured.out


def test_line_numbers_count_physical_lines(tmp_path, capsys):
    text = (
        ",".join(HEADER) + "\n"
        + ",".join(GOOD_2024[:-1]) + ',"two\nlines"\n'   # lines 2-3
        + "\n"                                            # line 4: blank, skipped
        + ",".join(["2024", "B9", "BASIC_Z"] + GOOD_2024[3:]) + "\n"  # line 5
    )
    src = tmp_path / "in.csv"
    src.write_text(text)
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 3
    assert "line 5 (aco_id B9)" in capsys.readouterr().err
    assert read_out(out)[0]["note"] == "two\nlines"


def test_missing_column_stops_with_exit_2(tmp_path, capsys):
    src = write(tmp_path / "in.csv", [GOOD_2024[:4] + GOOD_2024[5:]], header=[h for h in HEADER if h != "expenditure_total"])
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 2
    assert "missing required column(s): expenditure_total" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "the file is empty"),
        (",".join(HEADER) + "\n", "no data rows"),
        (",".join(HEADER + ["aco_id"]) + "\n", "repeated column(s): aco_id"),
        (",".join(HEADER + ["earned_savings_losses"]) + "\n", "would be overwritten"),
    ],
)
def test_unusable_files(tmp_path, content, message):
    src = tmp_path / "in.csv"
    src.write_text(content)
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_input(src)


def test_missing_file_and_missing_output_folder(tmp_path, capsys):
    assert main(["mssp", "settle", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "cannot open the file" in capsys.readouterr().err
    src = write(tmp_path / "in.csv", [GOOD_2024])
    assert main(["mssp", "settle", str(src), "--out", str(tmp_path / "no" / "o.csv")]) == 2
    assert "output folder does not exist" in capsys.readouterr().err


def test_not_utf8(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_bytes(",".join(HEADER).encode() + b"\n2024,\xff\xfe,ENHANCED\n")
    assert main(["mssp", "settle", str(src), "--out", str(tmp_path / "o.csv")]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_explain_prints_the_lines(tmp_path, capsys):
    src = write(tmp_path / "in.csv", [GOOD_2024, GOOD_2018])
    assert main(["mssp", "settle", str(src), "--out", str(tmp_path / "o.csv"), "--explain", "G1"]) == 0
    out = capsys.readouterr().out
    assert "G1 PY2024 ENHANCED" in out
    assert "7107412.50" in out and "6965264.25" in out
    assert "42 CFR 425.610(d)" in out
    assert main(["mssp", "settle", str(src), "--out", str(tmp_path / "o.csv"), "--explain", "NOPE"]) == 2
    assert "no settled row has aco_id NOPE" in capsys.readouterr().err


def test_terms_option_runs_a_what_if(tmp_path):
    from allpayer.settlement.mssp_terms import packaged_terms_dir

    folder = tmp_path / "terms"
    folder.mkdir()
    for entry in packaged_terms_dir().iterdir():
        text = entry.read_text(encoding="utf-8")
        if entry.name == "rules_py2024.yaml":
            text = text.replace('value: "0.75"\n      reference: "42 CFR 425.610(d)', 'value: "0.70"\n      reference: "42 CFR 425.610(d)')
        (folder / entry.name).write_text(text, encoding="utf-8")
    src = write(tmp_path / "in.csv", [GOOD_2024])
    out = tmp_path / "o.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out), "--terms", str(folder)]) == 0
    assert read_out(out)[0]["final_sharing_rate"] == "0.7"


def test_rules_command(capsys):
    assert main(["mssp", "rules", "--year", "2024"]) == 0
    out = capsys.readouterr().out
    assert "PY2024" in out and "ENHANCED" in out and "limit then sequestration" in out
    assert main(["mssp", "rules", "--year", "2017"]) == 2
    assert "no MSSP rules for performance year 2017" in capsys.readouterr().err


def test_py2019_one_row_per_aco_and_performance_period(tmp_path, capsys):
    # An ACO whose Track 1 agreement was extended to June 2019 and that started BASIC in July has a
    # row for each 6-month performance year; a second row for the same period is a duplicate.
    jan_jun = ["2019", "G1", "TRACK_1", "100000000", "95000000", "0.02", "", "0.9", "1", "", "0", "", "", ""]
    jul_dec = ["2019", "G1", "BASIC_A"] + jan_jun[3:]
    src = write(tmp_path / "in.csv", [jan_jun, jul_dec, jan_jun[:2] + ["TRACK_2"] + jan_jun[3:]])
    out = tmp_path / "out.csv"
    assert main(["mssp", "settle", str(src), "--out", str(out)]) == 3
    rows = read_out(out)
    # 5M x 50% x 0.9 and 5M x 40% x 0.9, sequestration suspended when paid in 2020
    assert [(r["aco_id"], r["earned_savings_losses"]) for r in rows] == [("G1", "2250000.00"), ("G1", "1800000.00")]
    assert "January 1 - June 30, 2019" in rows[0]["rule_set"] and "July 1 - December 31, 2019" in rows[1]["rule_set"]
    err = capsys.readouterr().err
    assert "line 4 (aco_id G1): rejected: duplicate of line 2 (same performance_year, performance period and aco_id)" in err


def test_parse_row_collects_every_problem():
    values = dict(zip(HEADER, ["20x4", "A", "ENHANCED", "", "5", "0.02", "", "", "maybe", "", "", "", "1.5", ""]))
    with pytest.raises(MsspInputError) as err:
        parse_row(values)
    msg = str(err.value)
    for part in ("performance_year is not a number", "benchmark_total is missing",
                 "met_quality_standard must be 1 or 0", "agreement_year must be a whole number"):
        assert part in msg


def test_parse_row_values_are_exact():
    aco = parse_row(dict(zip(HEADER, ["2024", " A ", "basic_e", "100.10", "90.05", "0.02", "0.02", "0.8", "true", "",
                                      "", "", "2", ""])))
    assert aco.track == "BASIC_E" and aco.aco_id == "A"
    assert aco.benchmark_total == Decimal("100.10") and aco.agreement_year == 2
    assert aco.met_quality_standard is True and aco.met_alt_quality_standard is None
    assert aco.disaster_adjustment == 0 and aco.reduced_savings_eligible is False


@pytest.mark.parametrize(
    "value, unit, text",
    [(Decimal("5"), "usd", "5.00"), (Decimal("1.23456"), "usd", "1.23456"), (Decimal("0.500"), "rate", "0.5"),
     (Decimal("-0.0"), "rate", "0"), (True, "flag", "1"), (None, "usd", "")],
)
def test_format_value(value, unit, text):
    assert format_value(value, unit) == text
