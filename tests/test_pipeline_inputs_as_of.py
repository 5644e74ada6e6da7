"""Inputs as they stood after a load run (`allpayer.pipeline.loaded_as_of`)."""

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
