"""Every field of every CCLF file type is read from its layout position, with its type."""

import datetime as dt
import decimal

import duckdb
import pytest

from allpayer.inputs.cclf.layouts import FILE_TYPES, layouts
from allpayer.inputs.cclf.parse import parse_file

from .build import record


def _value(f, i):
    """A distinct value for field number i that fits the field (so a shifted slice would differ)."""
    if f.type == "date":
        return (dt.date(2020, 1, 1) + dt.timedelta(days=i)).isoformat()
    if f.type == "money":
        return f"-{i}.{i % 100:02d}" if f.length >= 6 else f"{i % 10}.{i % 100:02d}"
    if f.type == "decimal":
        return f"{i}.{i:04d}"[: f.length]
    if f.type == "int":
        return str(i % 10 ** min(f.length, 6))
    letters = "".join(chr(65 + (i + k) % 26) for k in range(f.length))
    return (f"{i:02d}" + letters)[: f.length]


@pytest.mark.parametrize("version", [35, 36])
@pytest.mark.parametrize("file_type", [t for t in FILE_TYPES if t != "CCLF0"])
def test_every_field(tmp_path, file_type, version):
    lay = layouts(version)[file_type]
    values = {f.name: _value(f, i) for i, f in enumerate(lay.fields, start=1)}
    if "CLM_TYPE_CD" in values:  # must be a claim type the file carries
        values["CLM_TYPE_CD"] = {"CCLF5": "71", "CCLF6": "81", "CCLF7": "01", "CCLFB": "72"}.get(file_type, "60")
    path = tmp_path / "f.txt"
    path.write_text(record(file_type, values, version) + "\n", encoding="ascii")
    con = duckdb.connect()
    rows, bad, read = parse_file(con, path, "f.txt", lay)
    assert read == 1
    assert con.execute(f"SELECT count(*) FROM {bad}").fetchall() == [(0,)]
    got = con.execute(f"SELECT * FROM {rows}").fetch_arrow_table().to_pylist()[0]
    for f in lay.fields:
        want = values[f.name].strip()
        if f.type == "date":
            want = dt.date.fromisoformat(want)
        elif f.type in ("money", "decimal"):
            want = decimal.Decimal(want)
        elif f.type == "int":  # 9(n) fields stay text, zero-padded as delivered (identifiers keep leading zeros)
            want = want.rjust(f.length, "0")
        assert got[f.name] == want, (file_type, f.name)
    assert (got["source_file"], got["line_number"]) == ("f.txt", 1)
