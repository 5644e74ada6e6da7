"""allpayer.backend: Ibis's select-merge complexity score, kept per node (`_memoize_select_complexity`),
the storage format of the DuckDB files it creates (`DUCKDB_STORAGE_VERSION`), and
`replace_temp_table`, which writes a temporary table's rows once.

The kept score must be the number Ibis's own walk gives, so the compiled SQL stays byte for byte
what Ibis would write. Here on small expressions built to have shared subtrees and an impure
call; tests/test_pipeline.py compiles the largest stages of a real run both ways and compares
the SQL and the scores of their nodes.
"""

from __future__ import annotations

import duckdb
import ibis
import ibis.backends.sql.rewrites as rewrites
import ibis.expr.operations as ops

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
