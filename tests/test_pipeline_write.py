"""How a run writes a stage's table: it replaces only its own year's rows."""

import ibis

from allpayer.pipeline import _write


def _t(rows, schema):
    return ibis.memtable({c: [r[i] for r in rows] for i, c in enumerate(schema)}, schema=ibis.schema(schema))


def test_a_run_replaces_only_its_year_even_when_the_columns_changed():
    con = ibis.duckdb.connect()
    v1 = {"performance_year": "int32", "x": "int64"}
    _write(con, "stage", _t([(2023, 1), (2024, 2)], v1), 2024, "r1", "performance_year")
    _write(con, "stage", _t([(2024, 3)], v1), 2024, "r2", "performance_year")
    got = sorted(con.to_pyarrow(con.table("stage")).to_pylist(), key=lambda r: r["performance_year"])
    assert [(r["performance_year"], r["x"], r["run_id"]) for r in got] == [(2023, 1, "r1"), (2024, 3, "r2")]

    v2 = {"performance_year": "int32", "x": "int64", "y": "string"}
    _write(con, "stage", _t([(2024, 4, "new")], v2), 2024, "r3", "performance_year")
    got = sorted(con.to_pyarrow(con.table("stage")).to_pylist(), key=lambda r: r["performance_year"])
    assert [(r["performance_year"], r["x"], r["y"], r["run_id"]) for r in got] == [
        (2023, 1, None, "r1"),
        (2024, 4, "new", "r3"),
    ]
