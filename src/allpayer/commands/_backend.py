"""The backend options shared by the commands that read or write a database (load, run, export)."""

from __future__ import annotations

import typer

from allpayer.backend import BACKENDS
from allpayer.errors import AllpayerError

BACKEND_HELP = (
    "Compute backend: duckdb (--db is a DuckDB file) or spark (--db is a warehouse folder of Parquet "
    "tables; see docs/backends.md)."
)


def backend_option():
    return typer.Option("duckdb", "--backend", metavar="duckdb|spark", help=BACKEND_HELP)


def spark_master_option():
    return typer.Option("local[2]", "--spark-master", metavar="local[N]",
                        help="Spark master for a local session (with --backend spark).")


def spark_remote_option():
    return typer.Option(None, "--spark-remote", metavar="sc://HOST:PORT",
                        help="Spark Connect server to compute on instead of a local session (with --backend spark).")


def check_backend(backend: str, spark_remote: str | None = None) -> str:
    """The backend name, checked; a Spark option without --backend spark is an error."""
    if backend not in BACKENDS:
        raise AllpayerError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if spark_remote and backend != "spark":
        raise AllpayerError("--spark-remote needs --backend spark")
    if spark_remote and not spark_remote.startswith("sc://"):
        raise AllpayerError(f"--spark-remote {spark_remote!r}: expected sc://HOST:PORT")
    return backend
