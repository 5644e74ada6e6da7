"""`allpayer.backend.checkpoint` on Spark: the rows computed once and read back through a view whose
plan is the stored result, not the query; released at the end of a run."""

from __future__ import annotations

from allpayer import backend


def test_checkpoint_stores_the_rows_and_cuts_the_plan(spark_con):
    session = spark_con._session
    session.createDataFrame([(3, "c"), (1, "a"), (2, "b")], "a long, s string").createOrReplaceTempView("ck_source")
    t = spark_con.table("ck_source")
    expr = t.filter(t.a > 1).mutate(b=t.a * 10)
    before = backend.release_checkpoints(spark_con)  # nothing left over from the cycle's run
    assert before == 0

    stored = backend.checkpoint(expr, "test_rows")
    name = stored.op().name
    assert name.startswith(backend.CHECKPOINT_PREFIX) and name.endswith("_test_rows")
    rows = sorted(stored.to_pyarrow().to_pylist(), key=lambda r: r["a"])
    assert rows == [{"a": 2, "s": "b", "b": 20}, {"a": 3, "s": "c", "b": 30}]
    # The view reads the stored rows: its plan no longer holds the filter over the source.
    plan = session.table(name)._jdf.queryExecution().analyzed().toString()
    assert "LogicalRDD" in plan and "ck_source" not in plan

    assert backend.release_checkpoints(spark_con) == 1
    assert not session.catalog.tableExists(name)
    assert backend.release_checkpoints(spark_con) == 0
    session.catalog.dropTempView("ck_source")


def test_temp_table_on_spark_is_a_named_checkpoint_replaced_and_dropped(spark_con):
    """`replace_temp_table` (the quality run's intermediate tables) keeps the rows under the given
    name; a second call replaces them, `drop_temp_table` drops the view and forgets its rows, and
    `cache` keeps the rows of a query that reads an in-memory table until `release`."""
    import ibis

    session = spark_con._session
    session.createDataFrame([(1,), (2,), (3,)], "a long").createOrReplaceTempView("tt_source")
    t = spark_con.table("tt_source")
    assert backend.release_checkpoints(spark_con) == 0

    kept = backend.replace_temp_table(spark_con, "_qp_test", t.filter(t.a > 1))
    assert kept.op().name == "_qp_test"
    assert sorted(r["a"] for r in kept.to_pyarrow().to_pylist()) == [2, 3]
    again = backend.replace_temp_table(spark_con, "_qp_test", t.filter(t.a == 1))
    assert [r["a"] for r in again.to_pyarrow().to_pylist()] == [1]
    assert len(spark_con._allpayer_checkpoints) == 1  # the replaced rows were let go
    backend.drop_temp_table(spark_con, "_qp_test")
    assert not session.catalog.tableExists("_qp_test")
    assert backend.release_checkpoints(spark_con) == 0
    backend.drop_temp_table(spark_con, "_qp_test")  # dropping what is gone is not an error

    labels = ibis.memtable({"a": [2, 3], "label": ["two", "three"]})
    cached = backend.cache(t.join(labels, "a"), "labels")
    session.catalog.dropTempView("tt_source")  # the kept rows no longer need their source
    assert sorted(r["label"] for r in cached.to_pyarrow().to_pylist()) == ["three", "two"]
    backend.release(cached)
    assert backend.release_checkpoints(spark_con) == 0
