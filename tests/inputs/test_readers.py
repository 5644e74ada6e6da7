"""Readers: delivery discovery, the CSV record scan (physical line numbers), structural rejects,
Parquet staging and the file-level errors."""

from __future__ import annotations

import csv
import gzip
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from allpayer.errors import InputFileError
from allpayer.inputs import readers
from allpayer.inputs.schema import Column, Table

from .conftest import BASE

SPEC = Table(
    "t",
    "one row per test row",
    ("a",),
    (Column("a", "string", required=True), Column("b", "string"), Column("c", "money")),
)


def stage(path: Path, spec: Table = SPEC, relpath: str | None = None):
    con = duckdb.connect()
    st = readers.create_stage(con, spec)
    rj = readers.create_rejects(con)
    f = readers.InputFile(spec.name, path, relpath or path.name)
    result = readers.stage_file(con, f, spec, st, rj)
    rows = con.execute(f"SELECT line_number, a, b, c FROM {st} ORDER BY line_number").fetchall()
    rejects = con.execute(f"SELECT line_number, rule, message, raw_row FROM {rj} ORDER BY line_number").fetchall()
    return result, rows, rejects


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


# ------------------------------------------------------------------ discovery


def test_discover_lists_tables_and_ignores_other_files(tmp_path):
    (tmp_path / "eligibility.csv").write_text("x\n")
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "medical_claim").mkdir()
    (tmp_path / "medical_claim" / "part-002.parquet").write_bytes(b"")
    (tmp_path / "medical_claim" / "part-001.csv.gz").write_bytes(b"")
    (tmp_path / "notes").mkdir()
    d = readers.discover(tmp_path)
    assert sorted(d.files) == ["eligibility", "medical_claim"]
    assert [f.relpath for f in d.files["medical_claim"]] == ["medical_claim/part-001.csv.gz", "medical_claim/part-002.parquet"]
    assert [f.format for f in d.files["medical_claim"]] == ["csv", "parquet"]
    assert d.ignored == ["manifest.json", "notes/"]


def test_discover_refuses_a_table_delivered_twice(tmp_path):
    (tmp_path / "eligibility.csv").write_text("x\n")
    (tmp_path / "eligibility.parquet").write_bytes(b"")
    with pytest.raises(InputFileError, match="table eligibility is delivered more than once"):
        readers.discover(tmp_path)


def test_discover_refuses_missing_folder_and_empty_part_folder(tmp_path):
    with pytest.raises(InputFileError, match="folder not found"):
        readers.discover(tmp_path / "nope")
    (tmp_path / "lab_result").mkdir()
    with pytest.raises(InputFileError, match="no part files"):
        readers.discover(tmp_path)


# ------------------------------------------------------------------ CSV scan and line numbers


def test_line_numbers_are_physical_lines_with_blank_lines_and_quoted_newlines(tmp_path):
    p = write(
        tmp_path,
        "t.csv",
        'a,b,c\n\nx1,1,1.00\n"x\n2","two\nlines",2.00\n\nx3,3,3.00\nx4,"q""uote",4.00\n',
    )
    result, rows, rejects = stage(p)
    assert rows == [
        (3, "x1", "1", "1.00"),
        (4, "x\n2", "two\nlines", "2.00"),
        (8, "x3", "3", "3.00"),
        (9, "x4", 'q"uote', "4.00"),
    ]
    assert rejects == []
    assert (result.rows, result.rejects, result.read) == (4, 0, 4)


def test_structural_rejects_keep_their_line_and_text(tmp_path):
    p = write(tmp_path, "t.csv", 'a,b,c\nx1,1,1.00\nx2,2\n\nx3,3,3,3\n"x\n4",4,4.00\nx5,"ab"c,5\nx6,6,6.00')
    result, rows, rejects = stage(p)
    assert [r[0] for r in rows] == [2, 6, 9]
    assert [(r[0], r[1], r[2]) for r in rejects] == [
        (3, "malformed_row", "expected 3 fields, found 2 (truncated or malformed row)"),
        (5, "malformed_row", "expected 3 fields, found 4 (unquoted comma or malformed row)"),
        (8, "malformed_row", "misplaced double quote in a field"),
    ]
    assert rejects[0][3] == '{"csv_line":"x2,2"}'
    assert result.read == 6


def test_line_numbers_stay_right_across_many_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(readers, "SCAN_CHUNK_BYTES", 64)  # force many scan chunks
    lines = ["a,b,c"]
    expected = []
    for i in range(1, 5001):
        if i % 997 == 0:
            lines.append(f"bad{i},only-two")
        elif i % 1009 == 0:
            lines.append(f'"multi\n{i}",x,1.00')
            expected.append(len(lines))
            lines[-1:] = lines[-1].split("\n")
            continue
        else:
            lines.append(f"r{i},{i},1.00")
        if not lines[-1].startswith("bad"):
            expected.append(len(lines))
    p = write(tmp_path, "t.csv", "\n".join(lines) + "\n")
    result, rows, rejects = stage(p)
    assert [r[0] for r in rows] == expected
    assert [r[0] for r in rejects] == [i + 1 + i // 1009 for i in (997, 1994, 2991, 3988, 4985)]
    # each staged row sits on the line the file has it on
    text = p.read_text().split("\n")
    for line, a, _, _ in rows:
        first = a.split("\n")[0]
        assert text[line - 1].startswith(first) or text[line - 1].startswith('"' + first), line


def test_crlf_files_with_quoted_newlines(tmp_path):
    p = write(tmp_path, "t.csv", 'a,b,c\r\n"x\r\n1",one,1.00\r\n\r\nx2,2,2.00\r\n')
    _, rows, rejects = stage(p)
    assert rows == [(2, "x\r\n1", "one", "1.00"), (5, "x2", "2", "2.00")]
    assert rejects == []


def test_gzip_csv_and_bom_header(tmp_path):
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress("\ufeffA, B ,c\nx1,1,1.00\nx2,2,2.00\n".encode()))
    result, rows, _ = stage(p)
    assert rows == [(2, "x1", "1", "1.00"), (3, "x2", "2", "2.00")]
    assert result.columns == ["a", "b", "c"]


def test_header_only_file_has_no_rows(tmp_path):
    result, rows, rejects = stage(write(tmp_path, "t.csv", "a,b,c\n"))
    assert (rows, rejects, result.read) == ([], [], 0)


def test_missing_optional_columns_are_null_and_extra_columns_are_listed(tmp_path):
    result, rows, _ = stage(write(tmp_path, "t.csv", "a,extra\nx1,zzz\n"))
    assert rows == [(2, "x1", None, None)]
    assert result.extra_columns == ["extra"]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty file: expected a header line naming the columns"),
        (b"\n\n", "line 1 is blank"),
        (b"b,c\nx,1\n", "missing required column a for table t"),
        (b"a;b;c\nx;1;2\n", "missing required column a for table t (is the file comma-separated?)"),
        (b"a,b,a\nx,1,2\n", "the header names column a more than once"),
        (b"a,b,c\nx1,1,1.00\nx2,caf\xe9,2.00\n", "line 3 is not valid UTF-8 text: save the file as UTF-8"),
        (b"a,b\xe9,c\nx1,1,1.00\n", "line 1 is not valid UTF-8 text"),
        (b'a,b,c\nx1,1,1.00\nx2,"never closed,2.00\nx3,3,3.00\n', "line 3: a quoted field is never closed"),
        (b'"a,b,c\nx1,1,1.00\n', "line 1 (the header) has an unterminated double quote"),
        (b"a,b,c\r\nx1,1,1.00\r\nx2,2,2.00\nx3,3,3.00\n", "line 3: mixed line endings (CRLF and LF)"),
    ],
)
def test_unreadable_csv_files_stop_with_a_named_problem(tmp_path, data, message):
    p = write(tmp_path, "t.csv", data)
    with pytest.raises(InputFileError) as err:
        stage(p)
    assert str(err.value).startswith(str(p) + ": ")
    assert message in str(err.value)


def test_corrupt_gzip_is_a_file_error(tmp_path):
    p = tmp_path / "t.csv.gz"
    p.write_bytes(gzip.compress(b"a,b,c\n" + b"x1,1,1.00\n" * 1000)[:40])
    with pytest.raises(InputFileError, match="truncated or corrupt compressed file"):
        stage(p)


def test_scan_finds_record_offsets(tmp_path):
    p = write(tmp_path, "t.csv", 'a,b\n1,2\n"3\n",4\n\n5,6')
    layout = readers.scan_csv(p)
    assert layout.header == ["a", "b"]
    assert layout.record_lines.tolist() == [2, 3, 6]
    assert layout.record_offsets.tolist() == [4, 8, 16]
    assert isinstance(layout.record_offsets, np.ndarray)


# ------------------------------------------------------------------ Parquet


def test_parquet_is_staged_as_text_with_row_numbers(tmp_path):
    p = tmp_path / "t.parquet"
    pq.write_table(
        pa.table(
            {
                "A": ["x1", "x2"],
                "b": pa.array([7, None], pa.int64()),
                "c": pa.array([Decimal("1.5"), Decimal("-2")], pa.decimal128(18, 2)),
            }
        ),
        p,
    )
    result, rows, rejects = stage(p)
    assert rows == [(1, "x1", "7", "1.50"), (2, "x2", None, "-2.00")]
    assert (result.rows, rejects) == (2, [])


@pytest.mark.parametrize(
    "column, arrow_type, message",
    [
        ("c", pa.float64(), "column c has Parquet type DOUBLE; expected DECIMAL (at most 2 decimals), integer or text"),
        ("c", pa.bool_(), "column c has Parquet type BOOLEAN"),
    ],
)
def test_parquet_types_that_cannot_hold_the_kind_exactly_stop_the_load(tmp_path, column, arrow_type, message):
    p = tmp_path / "t.parquet"
    values = [True] if arrow_type == pa.bool_() else [1.1]
    pq.write_table(pa.table({"a": ["x"], column: pa.array(values, arrow_type)}), p)
    with pytest.raises(InputFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        stage(p)


def test_a_text_file_named_parquet_is_a_file_error(tmp_path):
    p = write(tmp_path, "t.parquet", "a,b,c\n1,2,3\n")
    with pytest.raises(InputFileError, match=r"not a readable Parquet file \(No magic bytes"):
        stage(p)
    with pytest.raises(InputFileError, match="empty file: expected a Parquet file"):
        stage(write(tmp_path, "e.parquet", b""))


def test_base_fixture_parses_like_pythons_csv_module():
    """The reader agrees with Python's csv module on every fixture file of the valid delivery."""
    from allpayer.inputs.schema import TABLES

    for path in sorted(BASE.glob("*.csv")):
        spec = TABLES[path.stem]
        con = duckdb.connect()
        st = readers.create_stage(con, spec)
        rj = readers.create_rejects(con)
        readers.stage_file(con, readers.InputFile(spec.name, path, path.name), spec, st, rj)
        with path.open(newline="") as f:
            expected = [
                {k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(f)
            ]
        header = list(expected[0]) if expected else []
        got = con.execute(f"SELECT {', '.join(header)} FROM {st} ORDER BY line_number").fetchall()
        assert [dict(zip(header, r)) for r in got] == expected, path.name
