"""Broken CCLF deliveries: each is a clear error naming the file, or quarantined lines with file and line."""

import datetime as dt
import zipfile

import duckdb

import pytest

from allpayer.errors import InputFileError
from allpayer.inputs.cclf import read_cclf_folder
from allpayer.inputs.cclf.layouts import layouts
from allpayer.inputs.cclf.parse import parse_file

from .build import write
from .test_examples import M1, NETTING, b_line, bene


def _lines(path):
    return path.read_text(encoding="ascii").splitlines(keepends=True)


def _reconciles(r):
    for c in r.files:
        assert c.read == c.parsed + c.quarantined


def test_truncated_line_is_quarantined(tmp_path):
    paths = write(tmp_path / "in", NETTING)
    lines = _lines(paths["CCLF5"])
    lines[1] = lines[1][:150] + "\n"  # the second record cut short
    paths["CCLF5"].write_text("".join(lines), encoding="ascii")
    r = read_cclf_folder(tmp_path / "in")
    q = r.quarantine.to_pylist()
    assert [(x["rule"], x["line_number"], x["table_name"]) for x in q] == [("wrong_record_length", 2, "medical_claim")]
    assert "150 characters long, expected 388" in q[0]["message"] and "truncated" in q[0]["message"]
    assert q[0]["source_file"] == paths["CCLF5"].name
    _reconciles(r)
    cclf5 = next(c for c in r.files if c.file_type == "CCLF5")
    assert (cclf5.read, cclf5.parsed, cclf5.quarantined) == (6, 5, 1)


def test_truncated_last_line_without_newline(tmp_path):
    paths = write(tmp_path / "in", NETTING)
    text = paths["CCLF2"].read_text(encoding="ascii")
    paths["CCLF2"].write_text(text[:-100], encoding="ascii")  # the file was cut in its last record
    r = read_cclf_folder(tmp_path / "in")
    assert [(x["rule"], x["line_number"]) for x in r.quarantine.to_pylist()] == [("wrong_record_length", 4)]
    _reconciles(r)


def test_bad_date_and_unknown_claim_type(tmp_path):
    rows = [b_line(1, M1, 1, "5.00", "0", "2024-02-30", "X1"),  # 30 February
            b_line(2, M1, 1, "5.00", "0", "2024-02-15", "X2"),
            {**b_line(3, M1, 1, "5.00", "0", "2024-02-15", "X3"), "CLM_TYPE_CD": "99"}]
    write(tmp_path / "in", {"CCLF5": rows, "CCLF8": [bene(M1)]})
    r = read_cclf_folder(tmp_path / "in")
    q = {x["line_number"]: x for x in r.quarantine.to_pylist()}
    assert q[1]["rule"] == "bad_date" and "CLM_EFCTV_DT is not a date (YYYY-MM-DD): 2024-02-30" in q[1]["message"]
    assert q[3]["rule"] == "unknown_claim_type" and "unknown claim type code 99" in q[3]["message"]
    assert r.tables["medical_claim"].column("claim_id").to_pylist() == ["X2"]
    _reconciles(r)


def test_bad_amount(tmp_path):
    write(tmp_path / "in", {"CCLF5": [b_line(1, M1, 1, "5.0A", "0", "2024-02-15", "X1")], "CCLF8": [bene(M1)]})
    r = read_cclf_folder(tmp_path / "in")
    assert [x["rule"] for x in r.quarantine.to_pylist()] == ["bad_amount"]


def test_count_differs_from_cclf0(tmp_path):
    paths = write(tmp_path / "in", NETTING)
    lines = _lines(paths["CCLF1"])
    paths["CCLF1"].write_text("".join(lines[:-1]), encoding="ascii")  # a record lost in transfer
    with pytest.raises(InputFileError) as e:
        read_cclf_folder(tmp_path / "in")
    assert e.value.path == paths["CCLF1"].name
    assert "has 3 records but its CCLF0 summary" in str(e.value) and "says 4" in str(e.value)


def test_file_listed_in_cclf0_missing(tmp_path):
    paths = write(tmp_path / "in", NETTING)
    paths["CCLF2"].unlink()
    with pytest.raises(InputFileError, match="lists 4 CCLF2 records but the delivery has no CCLF2 file"):
        read_cclf_folder(tmp_path / "in")


def test_wrong_record_length_for_every_line(tmp_path):
    paths = write(tmp_path / "in", NETTING, summary=False)
    lines = _lines(paths["CCLF8"])
    paths["CCLF8"].write_text("".join(x[:300] + "\n" for x in lines), encoding="ascii")
    with pytest.raises(InputFileError) as e:
        read_cclf_folder(tmp_path / "in")
    assert e.value.path == paths["CCLF8"].name and "300 characters long: no CCLF8 layout" in str(e.value)


def test_not_text(tmp_path):
    paths = write(tmp_path / "in", NETTING, summary=False)
    paths["CCLF8"].write_bytes(paths["CCLF8"].read_bytes()[:50] + b"\xff\xfe" + paths["CCLF8"].read_bytes()[52:])
    with pytest.raises(InputFileError, match="line 1 is not ASCII/UTF-8 text"):
        read_cclf_folder(tmp_path / "in")


def test_no_cclf_files(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("hello")
    with pytest.raises(InputFileError, match="no CCLF files"):
        read_cclf_folder(tmp_path / "in")


def test_older_packet_version(tmp_path):
    write(tmp_path / "in", NETTING, version=35)
    r = read_cclf_folder(tmp_path / "in")
    assert r.version == 35 and r.quarantine.num_rows == 0
    assert r.tables["medical_claim"].num_rows > 0


def test_test_files_skipped_and_zip_read(tmp_path):
    paths = write(tmp_path / "stage", NETTING)
    folder = tmp_path / "in"
    folder.mkdir()
    z = folder / "P.A1234.ACO.ZCY24.D240315.T0000000.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in paths.values():
            zf.write(p, p.name)
    write(folder, {"CCLF8": [bene("1AA0AA0AA99")]}, env="T")  # a test file beside it
    r = read_cclf_folder(folder)
    assert any("(test file)" in x for x in r.ignored)
    assert "1AA0AA0AA99" not in r.tables["eligibility"].column("member_id").to_pylist()
    assert all(s.startswith(z.name + "/") for s in r.tables["medical_claim"].column("source_file").to_pylist())
    assert read_cclf_folder(folder, include_test=True).tables["eligibility"].num_rows == 3


def test_runout_files_read(tmp_path):
    write(tmp_path / "in", NETTING, kind="R")
    r = read_cclf_folder(tmp_path / "in")
    assert r.tables["medical_claim"].num_rows > 0


def test_duplicate_version_across_deliveries_quarantined(tmp_path):
    write(tmp_path / "in", {"CCLF5": [b_line(1, M1, 1, "5.00", "0", "2024-02-15", "X1")], "CCLF8": [bene(M1)]})
    write(tmp_path / "in", {"CCLF5": [b_line(1, M1, 1, "5.00", "0", "2024-02-15", "X1")], "CCLF8": [bene(M1)]},
          file_date=dt.date(2024, 4, 15))
    r = read_cclf_folder(tmp_path / "in")
    q = r.quarantine.to_pylist()
    assert [x["rule"] for x in q] == ["duplicate_claim_version"] and "D240415" in q[0]["source_file"]
    assert r.tables["medical_claim"].num_rows == 1
    _reconciles(r)


def test_crlf_line_endings_and_no_date(tmp_path):
    rows = [{**b_line(1, M1, 1, "5.00", "0", "2024-02-15", "X1"), "CLM_IDR_LD_DT": "1000-01-01"}]
    paths = write(tmp_path / "in", {"CCLF5": rows, "CCLF8": [bene(M1)]})
    for p in paths.values():
        p.write_bytes(p.read_bytes().replace(b"\n", b"\r\n"))
    r = read_cclf_folder(tmp_path / "in")
    assert r.quarantine.num_rows == 0
    assert r.tables["medical_claim"].column("paid_amount").to_pylist() == ["5.00"]
    con = duckdb.connect()
    rows, _, _ = parse_file(con, paths["CCLF5"], "f", layouts(36)["CCLF5"])
    assert con.execute(f'SELECT "CLM_IDR_LD_DT", "CLM_EFCTV_DT" FROM {rows}').fetchall() == [(None, dt.date(2024, 2, 15))]
