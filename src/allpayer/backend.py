"""Connect to the compute backend: DuckDB (embedded default) or Spark. The one place that does.

Every stage takes Ibis tables and returns Ibis tables, so the same code runs on either backend.
Spark runs with its session time zone set to UTC so dates and timestamps agree with DuckDB.
"""

from __future__ import annotations

from pathlib import Path

import ibis

from allpayer.errors import RunError

BACKENDS = ("duckdb", "spark")


def connect_duckdb(path: str | Path | None = None, *, read_only: bool = False, threads: int | None = None):
    """Open a DuckDB database file (or an in-memory one when `path` is None)."""
    kwargs = {}
    if threads:
        kwargs["threads"] = threads
    if path is None:
        return ibis.duckdb.connect(**kwargs)
    path = Path(path)
    if read_only and not path.exists():
        raise RunError(f"{path}: database not found (load data first with `allpayer load`)")
    try:
        return ibis.duckdb.connect(str(path), read_only=read_only, **kwargs)
    except Exception as exc:  # duckdb raises IOException for a locked or corrupt file
        raise RunError(f"{path}: cannot open database: {exc}") from exc


def connect_spark(master: str = "local[2]", remote: str | None = None, app_name: str = "allpayer"):
    """Start (or reuse) a Spark session, local or through Spark Connect, with UTC session time."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise RunError("the Spark backend needs the optional extra: ALLPAYER_EXTRAS='--extra spark' ./dev setup") from exc
    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    builder = builder.remote(remote) if remote else builder.master(master)
    session = builder.getOrCreate()
    return ibis.pyspark.connect(session)


def connect(
    db: str | Path | None = None,
    *,
    backend: str = "duckdb",
    read_only: bool = False,
    spark_master: str = "local[2]",
    spark_remote: str | None = None,
):
    """Connect to the named backend. `db` is the DuckDB file (ignored by Spark)."""
    if backend == "duckdb":
        return connect_duckdb(db, read_only=read_only)
    if backend == "spark":
        return connect_spark(spark_master, spark_remote)
    raise RunError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
