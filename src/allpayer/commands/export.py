"""CLI: `allpayer export TABLE --db FILE --out PATH`: write any table of the published snapshot to
Parquet or CSV (by the extension of PATH), the quarantine included."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import ibis
import typer
from rich.console import Console

from allpayer import runs
from allpayer.backend import sql_identifier, sql_literal
from allpayer.inputs import privacy
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
    """Tables of a snapshot (or views of a warehouse's tables), sorted."""
    rows = raw.execute(
        "SELECT table_name FROM duckdb_tables() WHERE NOT temporary "
        "UNION SELECT view_name FROM duckdb_views() WHERE NOT internal AND NOT temporary ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def export_table(db: Path, table: str, out: Path, withheld: dict | None = None, backend: str = "duckdb") -> int:
    """Write `table` of the snapshot `db` to `out` (atomically); returns the number of rows.

    A table of member-level claim detail (see `allpayer.inputs.privacy`) is written without the
    rows of members who declined data sharing and of claims redacted under 42 CFR Part 2; the
    counts withheld, by reason, are put in `withheld` when given. With `backend` spark, `db` is a
    warehouse folder whose Parquet files are read through DuckDB views, with the same withholding."""
    suffix = _format_of(out)
    if not out.parent.is_dir():
        raise AllpayerError(f"--out {out}: folder {out.parent} does not exist")
    if backend == "spark":
        from allpayer import warehouse

        con = warehouse.open_views(db)
    else:
        con = runs.open_snapshot(db)
    try:
        raw = con.con
        tables = list_tables(raw)
        if table not in tables:
            raise AllpayerError(f"{db}: unknown table {table!r}; available: {', '.join(tables) or 'none'}")
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        quoted = sql_identifier(table)
        target = sql_literal(tmp)
        query = f"SELECT * FROM {quoted}"
        t = con.table(table)
        if privacy.is_claim_detail(t.columns) and {"eligibility", "medical_claim"} <= set(tables):
            eligibility, medical = con.table("eligibility"), con.table("medical_claim")
            query = ibis.to_sql(privacy.releasable(t, eligibility, medical), dialect="duckdb")
            if withheld is not None:
                withheld.update(privacy.withheld_counts(t, eligibility, medical))
        elif privacy.is_clinical_detail(table, t.columns) and {"eligibility", "medical_claim"} <= set(tables):
            eligibility, medical = con.table("eligibility"), con.table("medical_claim")
            query = ibis.to_sql(privacy.person_releasable(t, eligibility, medical), dialect="duckdb")
            if withheld is not None:
                withheld.update(privacy.person_withheld_counts(t, eligibility, medical))
        elif table == "quarantine" and {"eligibility", "medical_claim"} <= set(tables):
            held = privacy.quarantine_withheld_sql()
            query = (
                f"SELECT * FROM quarantine q WHERE NOT EXISTS (SELECT 1 FROM ({held}) h WHERE "
                + " AND ".join(f'h."{c}" IS NOT DISTINCT FROM q."{c}"' for c in t.columns)
                + ")"
            )
            if withheld is not None:
                for reason, n in raw.execute(f"SELECT withheld_reason, count(*) FROM ({held}) GROUP BY 1").fetchall():
                    withheld[reason] = int(n)
        try:
            raw.execute(f"COPY ({query}) TO {target} {FORMATS[suffix]}").fetchall()
            os.replace(tmp, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return int(raw.execute(f"SELECT count(*) FROM ({query})").fetchall()[0][0])
    finally:
        con.disconnect()


def register(app: typer.Typer) -> None:
    @app.command(
        "export",
        help=(
            "Write a table of the database (any table, the quarantine included) to Parquet or CSV, by the extension "
            "of --out. Member-level claim detail is written without the rows of members who declined data sharing "
            "(42 CFR 425.708) and of claims redacted under 42 CFR Part 2; the factors of risk scores "
            "(risk_score_factors) and the high-cost claimants (high_cost_claimants) without the rows of such "
            "members and of members with such a claim."
        ),
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
        withheld: dict[str, int] = {}
        rows = export_table(db, table, out, withheld, check_backend(backend, spark_remote))
        console = Console(stderr=True)
        console.print(f"wrote {rows:,} rows of {table} to {out}", highlight=False, markup=False)
        for reason, n in sorted(withheld.items()):
            console.print(f"withheld {n:,} rows: {reason}", highlight=False, markup=False)
