"""The transactional store: URLs, transactions, per-component migrations, two connections."""

from __future__ import annotations

import os
import sqlite3

import pytest

from allpayer import store as store_mod
from allpayer.store import StoreError, default_store_url, open_store, register_migrations


def test_default_url_sits_beside_the_snapshot(tmp_path):
    db = tmp_path / "a.duckdb"
    assert default_store_url(db) == f"sqlite:///{tmp_path}/a.duckdb.store.sqlite"


def test_unsupported_url_is_a_user_error():
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store("mysql://x")


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/nope/x.sqlite")


def test_migrations_apply_once_and_in_order(tmp_path):
    register_migrations("t_order", ["CREATE TABLE t_order_a (x BIGINT)", "ALTER TABLE t_order_a ADD COLUMN y BIGINT"])
    url = f"sqlite:///{tmp_path}/s.sqlite"
    s = open_store(url)
    assert s.migrate("t_order") == 2
    assert s.migrate("t_order") == 0
    assert s.applied_versions("t_order") == [1, 2]
    # a later release appends a script: only that one runs
    register_migrations(
        "t_order",
        ["CREATE TABLE t_order_a (x BIGINT)", "ALTER TABLE t_order_a ADD COLUMN y BIGINT",
         "CREATE TABLE t_order_b (z BIGINT)"],
    )
    s2 = open_store(url)
    assert s2.migrate("t_order") == 1
    s2.execute("INSERT INTO t_order_a (x, y) VALUES (?, ?)", (1, 2))
    assert s.query("SELECT x, y FROM t_order_a") == [(1, 2)]


def test_changing_an_applied_script_is_refused():
    register_migrations("t_frozen", ["CREATE TABLE t_frozen (x BIGINT)"])
    with pytest.raises(StoreError, match="changed an already registered script"):
        register_migrations("t_frozen", ["CREATE TABLE t_frozen (x VARCHAR)"])


def test_unknown_component_is_an_error():
    with pytest.raises(StoreError, match="no migrations registered"):
        open_store("sqlite:///:memory:").migrate("t_never_registered")


def test_transaction_rolls_back_everything_on_error(tmp_path):
    register_migrations("t_tx", ["CREATE TABLE t_tx (k VARCHAR PRIMARY KEY)"])
    s = open_store(f"sqlite:///{tmp_path}/tx.sqlite")
    s.migrate("t_tx")
    with pytest.raises(RuntimeError):
        with s.transaction():
            s.execute("INSERT INTO t_tx VALUES (?)", ("a",))
            with s.transaction():  # nested: joins the outer one
                s.execute("INSERT INTO t_tx VALUES (?)", ("b",))
            raise RuntimeError("boom")
    assert s.query("SELECT COUNT(*) FROM t_tx") == [(0,)]
    with s.transaction():
        s.executemany("INSERT INTO t_tx VALUES (?)", [("a",), ("b",)])
    assert s.query("SELECT k FROM t_tx ORDER BY k") == [("a",), ("b",)]


def test_a_second_connection_sees_committed_rows_only(tmp_path):
    register_migrations("t_two", ["CREATE TABLE t_two (k VARCHAR PRIMARY KEY)"])
    url = f"sqlite:///{tmp_path}/two.sqlite"
    a, b = open_store(url), open_store(url)
    a.migrate("t_two")
    b.migrate("t_two")  # already applied by a: nothing to do
    with a.transaction():
        a.execute("INSERT INTO t_two VALUES (?)", ("x",))
        assert b.query("SELECT COUNT(*) FROM t_two") == [(0,)]
    assert b.query("SELECT COUNT(*) FROM t_two") == [(1,)]


def test_sqlite_script_keeps_trigger_bodies_whole():
    s = open_store("sqlite:///:memory:")
    script = """
CREATE TABLE t_trig (x BIGINT);
-- sqlite-only
CREATE TRIGGER t_trig_no_delete BEFORE DELETE ON t_trig
BEGIN SELECT RAISE(ABORT, 'no; never'); END;
-- end
-- postgresql-only
THIS IS NOT SQLITE;
-- end
"""
    register_migrations("t_trig", [script])
    s.migrate("t_trig")
    s.execute("INSERT INTO t_trig VALUES (1)")
    with pytest.raises(sqlite3.IntegrityError, match="no; never"):
        s.execute("DELETE FROM t_trig")


def test_select_dialect_sections():
    text = "a;\n-- sqlite-only\nb;\n-- end\n-- postgresql-only\nc;\n-- end\nd;"
    assert store_mod._split_statements(store_mod._select_dialect(text, "postgresql")) == ["a", "c", "d"]
    assert store_mod._split_statements(store_mod._select_dialect(text, "sqlite")) == ["a", "b", "d"]


@pytest.mark.skipif(not os.environ.get("ALLPAYER_TEST_POSTGRES_URL"), reason="set ALLPAYER_TEST_POSTGRES_URL to test PostgreSQL")
def test_postgres_store_round_trip():
    s = open_store(os.environ["ALLPAYER_TEST_POSTGRES_URL"])
    register_migrations("t_pg", ["CREATE TABLE IF NOT EXISTS t_pg (k VARCHAR(10) PRIMARY KEY, v BIGINT)"])
    s.migrate("t_pg")
    with s.transaction():
        s.execute("DELETE FROM t_pg")
        s.executemany("INSERT INTO t_pg VALUES (?, ?)", [("a", 1), ("b", 2)])
    assert s.query("SELECT k, v FROM t_pg ORDER BY k") == [("a", 1), ("b", 2)]
