"""allpayer.backend: Ibis's select-merge complexity score, kept per node (`_memoize_select_complexity`),
the storage format of the DuckDB files it creates (`DUCKDB_STORAGE_VERSION`), and
`replace_temp_table`, which writes a temporary table's rows once, and `create_table` and
`insert_rows`, which store an expression's rows with its query compiled once.

The kept score must be the number Ibis's own walk gives, so the compiled SQL stays byte for byte
what Ibis would write. Here on small expressions built to have shared subtrees and an impure
call; tests/test_pipeline.py compiles the largest stages of a real run both ways and compares
the SQL and the scores of their nodes.
"""

from __future__ import annotations

import json

import duckdb
import ibis
import ibis.backends.sql.rewrites as rewrites
import ibis.expr.operations as ops
import pytest

from allpayer import backend  # importing it installs the kept score


def test_the_kept_score_is_installed():
    assert getattr(rewrites.complexity, "_allpayer_memoized", False)
    assert rewrites.complexity._ibis_original.__module__ == "ibis.backends.sql.rewrites"


def test_scores_match_ibis_on_shared_subtrees_and_impure_calls():
    original = rewrites.complexity._ibis_original
    t = ibis.table({"a": "int64", "b": "string", "c": "float64"}, name="t")
    shared = (t.a + 1) * (t.a + 1)  # one subtree used twice: counted per use, as Ibis counts it
    u = t.mutate(x=shared, y=shared + t.a, z=t.b.upper().length())
    v = u.filter(u.x > 3).mutate(w=u.y * 2, r=ibis.random())  # an impure call scores the maximum
    w = v.group_by("b").agg(n=v.count(), s=v.w.sum()).join(t, "b")
    for expr in (shared, u, v, w, w.select("b", "n")):
        node = expr.op()
        assert rewrites.complexity(node) == original(node)
        # asked again (now from kept scores) and for nodes below it
        assert rewrites.complexity(node) == original(node)
        for child in node.__children__:
            assert rewrites.complexity(child) == original(child)


def test_a_kept_score_of_an_equal_node_that_is_freed_is_worked_out_again():
    """Nodes compare by structure, so a kept score may be keyed by an equal node that has since
    been freed: the next walk over an equal node (here one built again) scores it afresh."""
    import gc

    original = rewrites.complexity._ibis_original
    t = ibis.table({"a": "int64", "b": "string"}, name="t")

    def build():
        return t.mutate(x=(t.a + 1) * 2, y=t.b.upper()).filter(lambda s: s.x > 3).op()

    first = build()
    rewrites.complexity(first)
    again = build()
    assert again == first and again is not first
    del first
    gc.collect()
    assert rewrites.complexity(again) == original(again)
    for child in again.__children__:
        assert rewrites.complexity(child) == original(child)


def _storage_version(raw, name: str) -> str:
    return raw.execute("SELECT tags['storage_version'] FROM duckdb_databases() WHERE database_name = ?", [name]).fetchone()[0]


def test_a_new_database_file_is_created_in_the_1_5_storage_format(tmp_path):
    con = backend.connect_duckdb(tmp_path / "new.duckdb")
    try:
        assert _storage_version(con.con, "new") == f"{backend.DUCKDB_STORAGE_VERSION}+"
        con.con.execute("CREATE TABLE t AS SELECT range AS n, NULL::VARCHAR AS empty FROM range(5000)").fetchall()
    finally:
        con.disconnect()
    # the format is the file's own: a plain DuckDB connection reads it and keeps it
    raw = duckdb.connect(str(tmp_path / "new.duckdb"), read_only=True)
    try:
        assert _storage_version(raw, "new") == f"{backend.DUCKDB_STORAGE_VERSION}+"
        assert raw.execute("SELECT count(*), sum(n), count(empty) FROM t").fetchone() == (5000, 12497500, 0)
    finally:
        raw.close()


def test_an_existing_file_keeps_its_storage_format(tmp_path):
    """A file created in DuckDB's default (1.0) format, as files made before this setting were, is
    opened, written and read as it is: the setting applies only to files a connection creates."""
    db = tmp_path / "old.duckdb"
    raw = duckdb.connect(str(db))
    raw.execute("CREATE TABLE t AS SELECT range AS n FROM range(10)").fetchall()
    raw.close()
    con = backend.connect_duckdb(db)
    try:
        con.con.execute("INSERT INTO t SELECT range FROM range(10, 20)").fetchall()
        con.con.execute("CHECKPOINT").fetchall()
        assert _storage_version(con.con, "old") == "v1.0.0+"
    finally:
        con.disconnect()
    con = backend.connect_duckdb(db, read_only=True)
    try:
        assert con.con.execute("SELECT count(*), sum(n) FROM t").fetchone() == (20, 190)
    finally:
        con.disconnect()


def test_replace_temp_table_writes_the_rows_once_and_replaces_the_old_table():
    con = ibis.duckdb.connect()
    statements = []

    class Recorded:  # the DuckDB connection, every statement run through it written down
        def __init__(self, inner):
            self.inner = inner

        def execute(self, query, *args, **kwargs):
            statements.append(str(query))
            out = self.inner.execute(query, *args, **kwargs)
            return self if out is self.inner else out

        def __getattr__(self, name):
            return getattr(self.inner, name)

    con.con = Recorded(con.con)
    first = backend.replace_temp_table(con, "kept", ibis.memtable({"a": [1, 2, 3]}))
    assert first.a.sum().to_pyarrow().as_py() == 6
    src = con.create_table("src", ibis.memtable({"b": ["x", "y"]}))
    statements.clear()
    second = backend.replace_temp_table(con, "kept", src.mutate(c=src.b.upper()))
    assert sorted(second.c.to_pyarrow().to_pylist()) == ["X", "Y"]
    assert second.columns == ("b", "c")  # the old table's columns are gone with it
    inserts = [q for q in statements if "INSERT" in q.upper()]
    assert len(inserts) == 1 and '"kept"' in inserts[0]  # written straight into its own name
    assert not any("AS SELECT" in q.upper() for q in statements)  # and never copied from another
    assert not [t for t in con.list_tables() if t.startswith("ibis_duckdb_table")]


def _typed(con):
    """A table of awkward column types, and an expression over it with an in-memory table joined."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa

    src = con.create_table("typed_src", ibis.memtable(pa.table({
        "k": pa.array([1, 2, 3], pa.int8()), "d": [dt.date(2024, 1, 31), None, dt.date(2024, 2, 29)],
        "m": pa.array([Decimal("1.25"), Decimal("-0.01"), None], pa.decimal128(18, 2)), "s": ["a", "b'q", None],
    })))
    names = ibis.memtable({"k": [1, 3], "name": ["one", "three"]}, schema=ibis.schema({"k": "int8", "name": "string"}))
    return src.left_join(names, "k").select("k", "d", "m", "s", "name", flag=src.k > 1)


def test_create_table_has_the_same_types_and_rows_as_ibis_and_replaces_in_place():
    con = ibis.duckdb.connect()
    expr = _typed(con)
    theirs = con.create_table("theirs", expr)
    ours = backend.create_table(con, "ours", expr)
    assert ours.schema() == theirs.schema() == expr.schema()
    rows = "SELECT * FROM {} ORDER BY k"
    assert con.con.execute(rows.format("ours")).fetchall() == con.con.execute(rows.format("theirs")).fetchall()
    with pytest.raises(duckdb.CatalogException):  # not replaced unless asked
        backend.create_table(con, "ours", expr.filter(expr.k == 1))
    again = backend.create_table(con, "ours", expr.filter(expr.k == 1).select("k", "name"), overwrite=True)
    assert again.columns == ("k", "name") and again.count().to_pyarrow().as_py() == 1
    temp = backend.create_table(con, "ours_temp", expr, temp=True)
    assert temp.schema() == expr.schema() and temp.count().to_pyarrow().as_py() == 3
    assert con.con.execute("SELECT temporary FROM duckdb_tables() WHERE table_name = 'ours_temp'").fetchone() == (True,)
    assert not [t for t in con.list_tables() if t.startswith(("_allpayer_new_", "ibis_duckdb_table"))]


def test_a_replacement_that_fails_keeps_the_old_table_and_leaves_nothing_behind():
    con = ibis.duckdb.connect()
    backend.create_table(con, "kept", ibis.memtable({"a": [1, 2, 3]}))
    bad = ibis.memtable({"a": ["1", "x"]}).select(a=ibis._.a.cast("int64"))  # fails while inserting
    with pytest.raises(duckdb.ConversionException):
        backend.create_table(con, "kept", bad, overwrite=True)
    assert con.con.execute("SELECT sum(a) FROM kept").fetchone() == (6,)
    assert [t for t in con.list_tables() if not t.startswith("ibis_")] == ["kept"]  # (views of in-memory tables aside)
    with pytest.raises(duckdb.ConversionException):  # a new table that fails is not left empty
        backend.create_table(con, "fresh", bad)
    assert "fresh" not in con.list_tables()


def test_insert_rows_appends_by_column_name_with_one_statement():
    con = ibis.duckdb.connect()
    expr = _typed(con)
    backend.create_table(con, "t", expr)
    statements = []
    execute = con.raw_sql

    def recorded(query, *args, **kwargs):
        statements.append(str(query))
        return execute(query, *args, **kwargs)

    con.raw_sql = recorded
    backend.insert_rows(con, "t", expr.filter(expr.k >= 2).select("name", "k", "s", "m", "d", "flag"))
    assert len(statements) == 1 and statements[0].startswith('INSERT INTO "t" ("name", "k", "s", "m", "d", "flag") ')
    got = con.con.execute("SELECT k, name, flag, m FROM t ORDER BY k, name NULLS FIRST").fetchall()
    assert [r[0] for r in got] == [1, 2, 2, 3, 3]
    assert got[-1][1:] == ("three", True, None) and got[-2][1:] == ("three", True, None)


def test_compiled_query_is_kept_for_an_equal_expression(monkeypatch):
    """An expression built again with the same operations, tables and literals compiles once per
    connection; a different literal or table compiles afresh; at most `COMPILED_KEPT` are kept."""
    con = ibis.duckdb.connect()
    con.create_table("t", ibis.memtable({"a": [1, 2, 3]}))
    con.create_table("u", ibis.memtable({"a": [4]}))
    calls = []
    real = con.compile
    monkeypatch.setattr(con, "compile", lambda expr, *a, **k: calls.append(expr) or real(expr, *a, **k))

    def q(table, n):
        t = con.table(table)
        return t.filter(t.a > n).mutate(b=t.a * 2)

    first = backend.compiled_query(con, q("t", 1))
    assert backend.compiled_query(con, q("t", 1)) == first and len(calls) == 1
    assert backend.compiled_query(con, q("t", 2)) != first and len(calls) == 2
    assert '"u"' in backend.compiled_query(con, q("u", 1)) and len(calls) == 3
    backend.create_table(con, "v", q("t", 1))  # the insert reuses the kept query (now the most recent)
    assert len(calls) == 3
    assert sorted(r[0] for r in con.con.execute('SELECT b FROM "v"').fetchall()) == [4, 6]
    monkeypatch.setattr(backend, "COMPILED_KEPT", 2)
    backend.compiled_query(con, q("t", 3))  # keeps it and t > 1; drops t > 2 and u, the least recent
    assert len(con._allpayer_compiled) == 2 and len(calls) == 4
    backend.compiled_query(con, q("t", 1))
    assert len(calls) == 4
    backend.compiled_query(con, q("t", 2))  # dropped before: compiled again
    assert len(calls) == 5


# Joins planned as written: DuckDB's build-side optimizer off within a block, restored after it.

def test_joins_as_written_turns_the_build_side_choice_off_and_restores_the_setting():
    con = backend.connect_duckdb(None)
    assert backend.disabled_optimizers(con) == ""
    with backend.joins_as_written(con):
        assert backend.disabled_optimizers(con) == backend.JOINS_AS_WRITTEN
    assert backend.disabled_optimizers(con) == ""
    con.con.execute("SET disabled_optimizers = 'compressed_materialization'")
    with pytest.raises(RuntimeError):
        with backend.joins_as_written(con):
            assert set(backend.disabled_optimizers(con).split(",")) == {"compressed_materialization", backend.JOINS_AS_WRITTEN}
            raise RuntimeError("a failed stage")
    assert backend.disabled_optimizers(con) == "compressed_materialization"  # restored after an error too
    with backend.joins_as_written(con), backend.joins_as_written(con):  # nested: listed once
        assert sorted(backend.disabled_optimizers(con).split(",")) == ["build_side_probe_side", "compressed_materialization"]
    assert backend.disabled_optimizers(con) == "compressed_materialization"


def test_joins_as_written_builds_the_hash_table_on_the_right_side():
    con = backend.connect_duckdb(None)
    raw = con.con
    raw.execute("create table big as select i % 300000 as k, i as v from range(1000000) t(i)")
    raw.execute("create table small as select i as k from range(300000) t(i)")
    # nearly all of `big` passes the filter, but DuckDB estimates a range filter to keep a fifth of
    # the rows (200,000), fewer than `small`: on its own it builds the hash table on `big`
    sql = "select count(*) from (select * from big where v >= 10) b join small s on b.k = s.k"

    def build_side() -> str:
        plan = raw.execute("explain (format json) " + sql).fetchall()[0][1]

        def join(n):
            if n.get("name", "").strip() == "HASH_JOIN":
                return n
            for c in n.get("children", []):
                got = join(c)
                if got:
                    return got
        j = join(json.loads(plan)[0])
        return json.dumps(j["children"][1])

    assert "main.big" in build_side()  # DuckDB's own choice, on its estimates
    with backend.joins_as_written(con):
        assert "main.small" in build_side()
        assert raw.execute(sql).fetchone() == (999990,)
