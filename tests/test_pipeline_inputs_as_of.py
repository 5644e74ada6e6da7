"""Inputs as they stood after a load run (`allpayer.pipeline.loaded_as_of`)."""

import datetime as dt

import ibis

from allpayer.pipeline import loaded_as_of


def _con(load_ids):
    con = ibis.duckdb.connect()
    con.create_table("runs", ibis.memtable({"run_id": ["L1", "R1", "L2"], "seq": [1, 2, 3],
                                            "kind": ["load", "run", "load"]}))
    con.create_table("claims", ibis.memtable({"claim_id": [f"c{i}" for i in range(len(load_ids))],
                                              "load_run_id": load_ids}))
    return con


def _ids(t):
    return sorted(t.to_pyarrow().column("claim_id").to_pylist())


def test_as_of_an_earlier_load_leaves_out_the_later_loads_rows():
    con = _con(["L1", "L2", "L1"])
    assert _ids(loaded_as_of(con, "claims", "L1")) == ["c0", "c2"]
    assert _ids(loaded_as_of(con, "claims", "L2")) == ["c0", "c1", "c2"]
    assert _ids(loaded_as_of(con, "claims", None)) == ["c0", "c1", "c2"]


def test_as_of_the_latest_load_reads_the_table_itself():
    con = _con(["L1", "L2"])
    t = loaded_as_of(con, "claims", "L2")
    assert t.equals(con.table("claims"))  # no filter: every row came from L1 or L2


def test_rows_of_an_unknown_load_are_left_out_even_as_of_the_latest():
    con = _con(["L1", "L9", None])
    t = loaded_as_of(con, "claims", "L2")
    assert not t.equals(con.table("claims"))
    assert _ids(t) == ["c0"]


def _restated_con():
    """An employer group restated twice: L1 loaded it open, L2 ended it in 2024, L3 in 2025 (the
    stored row); L1's and L2's rows are kept in its replaced table."""
    con = ibis.duckdb.connect()
    con.create_table("runs", ibis.memtable({"run_id": ["L1", "R1", "L2", "L3"], "seq": [1, 2, 3, 4],
                                            "kind": ["load", "run", "load", "load"]}))
    row = {"group_id": ["G1"], "effective_start_date": [dt.date(2024, 1, 1)]}
    con.create_table("employer_group", ibis.memtable({**row, "effective_end_date": [dt.date(2025, 3, 31)],
                                                      "load_run_id": ["L3"]}))
    con.create_table("employer_group_replaced", ibis.memtable({
        "replaced_by_run_id": ["L3", "L2"], "load_run_id": ["L2", "L1"], "group_id": ["G1", "G1"],
        "effective_end_date": [dt.date(2024, 9, 30), None], "effective_start_date": [dt.date(2024, 1, 1)] * 2,
    }))
    return con


def _ends(t):
    return [(r["load_run_id"], r["effective_end_date"]) for r in t.to_pyarrow().to_pylist()]


def test_as_of_a_load_reads_the_rows_later_loads_restated_from_the_replaced_table():
    con = _restated_con()
    assert _ends(loaded_as_of(con, "employer_group", "L1")) == [("L1", None)]
    assert _ends(loaded_as_of(con, "employer_group", "R1")) == [("L1", None)]
    assert _ends(loaded_as_of(con, "employer_group", "L2")) == [("L2", dt.date(2024, 9, 30))]
    latest = loaded_as_of(con, "employer_group", "L3")
    assert latest.equals(con.table("employer_group"))  # nothing restated after it
    assert loaded_as_of(con, "employer_group", "L1").columns == con.table("employer_group").columns
