"""CLI: `allpayer export TABLE --db FILE --out PATH`: write any table of the published snapshot to
Parquet or CSV (by the extension of PATH), the quarantine included."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import typer
from rich.console import Console

from allpayer import runs
from allpayer.commands._backend import backend_option, check_backend, spark_master_option, spark_remote_option
from allpayer.errors import AllpayerError

FORMATS = {".parquet": "(FORMAT parquet)", ".csv": "(FORMAT csv, HEADER true)", ".csv.gz": "(FORMAT csv, HEADER true, COMPRESSION gzip)"}


def _format_of(out: Path) -> str:
    name = out.name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    raise AllpayerError(f"--out {out}: expected a file name ending in {', '.join(FORMATS)}")


def list_tables(raw) -> list[str]:
    """Tables of a snapshot, sorted."""
    rows = raw.execute("SELECT table_name FROM duckdb_tables() WHERE NOT temporary ORDER BY table_name").fetchall()
    return [r[0] for r in rows]


def export_table(db: Path, table: str, out: Path, backend: str = "duckdb") -> int:
    """Write `table` of the snapshot `db` to `out` (atomically); returns the number of rows.
    With `backend` spark, `db` is a warehouse folder and the table's Parquet files are copied."""
    suffix = _format_of(out)
    if not out.parent.is_dir():
        raise AllpayerError(f"--out {out}: folder {out.parent} does not exist")
    if backend == "spark":
        from allpayer import warehouse

        return warehouse.export_table(db, table, out, FORMATS[suffix])
    con = runs.open_snapshot(db)
    try:
        raw = con.con
        tables = list_tables(raw)
        if table not in tables:
            raise AllpayerError(f"{db}: unknown table {table!r}; available: {', '.join(tables) or 'none'}")
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        quoted = '"' + table.replace('"', '""') + '"'
        target = "'" + str(tmp).replace("'", "''") + "'"
        try:
            raw.execute(f"COPY (SELECT * FROM {quoted}) TO {target} {FORMATS[suffix]}").fetchall()
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return int(raw.execute(f"SELECT count(*) FROM {quoted}").fetchall()[0][0])
    finally:
        con.disconnect()


def register(app: typer.Typer) -> None:
    @app.command(
        "export",
        help="Write a table of the database (any table, the quarantine included) to Parquet or CSV, by the extension of --out.",
    )
    def export_command(
        table: str = typer.Argument(..., help="Table to export, e.g. medical_claim, quarantine, load_reconciliation, runs."),
        db: Path = typer.Option(..., "--db", help="Database written by `allpayer load`: a DuckDB file, or a "
                                "warehouse folder with --backend spark."),
        out: Path = typer.Option(..., "--out", help="Output file: .parquet, .csv or .csv.gz."),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
    ) -> None:
        # A table of a warehouse is read from its Parquet files directly: no Spark session is needed
        # to copy it, so --spark-master and --spark-remote are accepted for symmetry and unused.
        rows = export_table(db, table, out, check_backend(backend, spark_remote))
        Console(stderr=True).print(f"wrote {rows:,} rows of {table} to {out}", highlight=False, markup=False)
