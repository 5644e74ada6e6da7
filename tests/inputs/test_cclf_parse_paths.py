"""Fields cut from the bytes with NumPy give exactly what DuckDB's character slicing gives: the same
typed rows and the same quarantined lines, on uniform files and on files with broken lines."""

from __future__ import annotations

import duckdb
import pytest

from allpayer.inputs.cclf import parse
from allpayer.inputs.cclf.layouts import layouts

from .cclf.build import record
from .cclf.test_examples import M1, M2, b_line


def _parse(path, monkeypatch, numpy_path: bool):
    con = duckdb.connect()
    if not numpy_path:
        monkeypatch.setattr(parse, "_sliced_fields", lambda arrow, layout: None)
    rows, bad, read = parse.parse_file(con, path, path.name, layouts(36)["CCLF5"])
    monkeypatch.undo()
    out = (con.execute(f"SELECT * FROM {rows} ORDER BY line_number").fetchall(),
           con.execute(f"SELECT * FROM {bad} ORDER BY line_number").fetchall(), read)
    con.close()
    return out


GOOD = [record("CCLF5", b_line(300 + i, M1 if i % 2 else M2, i % 3 + 1, f"{i}.25", "0", "2024-02-15", f"B{i}")) for i in range(6)]


@pytest.mark.parametrize("lines", [
    GOOD,
    GOOD[:2] + [GOOD[2][:-40]] + GOOD[3:4] + [GOOD[4] + "XYZ"] + [""] + GOOD[5:],
    GOOD[:3] + [GOOD[3].replace("2024-02-15", "2024-13-45", 1)] + [GOOD[4].replace(" 4.25", "4.2.5", 1)],
])
def test_numpy_slicing_equals_character_slicing(tmp_path, monkeypatch, lines):
    p = tmp_path / "P.A1234.ACO.ZC5Y24.D240315.T0000000"
    p.write_text("".join(x + "\n" for x in lines), encoding="ascii")
    fast, slow = _parse(p, monkeypatch, True), _parse(p, monkeypatch, False)
    assert fast == slow
    assert len(fast[0]) + len(fast[1]) == fast[2] == len(lines)
    assert len(fast[0]) >= 3


def test_crlf_lines_are_cut_at_the_same_places(tmp_path, monkeypatch):
    p = tmp_path / "P.A1234.ACO.ZC5Y24.D240315.T0000000"
    p.write_bytes("".join(x + "\r\n" for x in GOOD).encode("ascii"))
    fast, slow = _parse(p, monkeypatch, True), _parse(p, monkeypatch, False)
    assert fast == slow and len(fast[0]) == len(GOOD) and not fast[1]
    amounts = sorted(str(r[[f.name for f in layouts(36)["CCLF5"].fields].index("CLM_LINE_CVRD_PD_AMT")]) for r in fast[0])
    assert amounts == [f"{i}.25" for i in range(6)]
