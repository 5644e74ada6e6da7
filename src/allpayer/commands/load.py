"""CLI: `allpayer load DIR --db FILE`: validate a delivery folder and load it as one published run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from allpayer import runs
from allpayer.commands._backend import backend_option, check_backend, spark_master_option, spark_remote_option
from allpayer.inputs.load import LoadResult, load_folder
from allpayer.inputs.schema import replaced_table


def wide_console() -> Console:
    """A stdout console at least 120 columns wide (so piped output is not cut)."""
    console = Console()
    return console if console.is_terminal and console.width >= 120 else Console(width=max(console.width, 120))


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _n(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def reconciliation_lines(result: LoadResult) -> list[str]:
    """The plain-text reconciliation lines of a load (counts only, no member data)."""
    lines = []
    for t in result.tables:
        balance = "=" if t.reconciles else "!="
        lines.append(
            f"{t.table}: read {t.read:,} {balance} loaded {t.loaded:,} + already loaded {t.already_loaded:,}"
            f" + quarantined {t.quarantined:,}"
        )
    for t in result.tables:
        if t.restated:
            lines.append(
                f"{t.table}: {_n(t.restated, 'loaded row restates a stored row', 'loaded rows restate stored rows')} "
                f"of the same key (the stored rows kept in {replaced_table(t.table)})"
            )
        if t.outside_eligibility:
            lines.append(
                f"{t.table}: {_n(t.outside_eligibility, 'loaded row falls', 'loaded rows fall')} outside every "
                "eligibility span (kept, flagged outside_eligibility)"
            )
        if t.data_sharing_opt_out:
            lines.append(
                f"{t.table}: {_n(t.data_sharing_opt_out, 'span', 'spans')} with a data-sharing opt-out (42 CFR 425.708)"
            )
        if t.substance_use_redacted:
            lines.append(
                f"{t.table}: {_n(t.substance_use_redacted, 'row', 'rows')} with substance-use redaction (42 CFR Part 2)"
            )
        for path, cols in t.extra_columns.items():
            lines.append(f"{t.table}: {path} has columns outside the contract, not loaded: {', '.join(cols)}")
    for q in result.quarantine_by_rule:
        lines.append(f"quarantined {q['table']}: {_n(q['rows'], 'row', 'rows')}, first failing rule {q['rule']}")
    if result.ignored_files:
        lines.append(f"ignored (not a table of the contract): {', '.join(result.ignored_files)}")
    return lines


def register(app: typer.Typer) -> None:
    @app.command(
        "load",
        help=(
            "Validate a delivery folder (one <table>.csv, .csv.gz or .parquet file, or a <table>/ folder of "
            "parts, per table; Tuva input-layer tables; FHIR bulk *.ndjson files; CCLF files) and load it into "
            "the database as one published run. Rows that break the input contract go to the quarantine "
            "table; reloading the same data changes nothing."
        ),
    )
    def load_command(
        folder: Path = typer.Argument(..., help="Delivery folder with one file (or folder of parts) per table."),
        db: Path = typer.Option(..., "--db", help="Database file (DuckDB), or warehouse folder with --backend spark; "
                                "created if it does not exist."),
        as_json: bool = typer.Option(False, "--json", help="Print the per-table counts as JSON on stdout."),
        paid_through: Optional[str] = typer.Option(
            None,
            "--paid-through",
            help="Claims paid-through date (YYYY-MM-DD) recorded on the run; default: the latest paid date loaded.",
        ),
        fmt: Optional[str] = typer.Option(
            None,
            "--format",
            help="Delivery format: native, tuva, fhir (*.ndjson) or cclf (CCLF file names); default: detected from the file names.",
        ),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
    ) -> None:
        cutoff = runs.parse_date(paid_through)
        # Validation is the same for both backends (it runs in DuckDB over the delivered files); with
        # spark the loaded tables are published as the warehouse's Parquet tables, which Spark reads.
        check_backend(backend, spark_remote)
        with _progress() as progress:
            task = progress.add_task("loading", total=None)

            def report(description: str, done: int, total: int) -> None:
                progress.update(task, description=description, completed=done, total=total)

            if backend == "spark":
                from allpayer import warehouse

                result = warehouse.load_folder(folder, db, paid_through=cutoff, progress=report, fmt=fmt)
            else:
                result = load_folder(folder, db, paid_through=cutoff, progress=report, fmt=fmt)
        if as_json:
            out = result.as_dict()
            for t, entry in zip(result.tables, out["tables"]):
                entry["reconciles"] = t.reconciles
            typer.echo(json.dumps(out, indent=2, sort_keys=True))
            return
        console = wide_console()
        table = RichTable(title=f"load {result.run_id} ({result.format})")
        for name in ("table", "files", "read", "loaded", "already loaded", "quarantined", "rows in table"):
            table.add_column(name, justify="left" if name == "table" else "right", no_wrap=True)
        for t in result.tables:
            table.add_row(
                t.table,
                str(len(t.files)),
                f"{t.read:,}",
                f"{t.loaded:,}",
                f"{t.already_loaded:,}",
                f"{t.quarantined:,}",
                f"{t.table_rows:,}",
            )
        console.print(table)
        for line in reconciliation_lines(result):
            console.print(line, highlight=False, markup=False)
        pt = result.paid_through.isoformat() if result.paid_through else "none (no claims loaded)"
        console.print(f"run {result.run_id} published to {result.db}; paid through {pt}", highlight=False, markup=False)
        if any(t.quarantined for t in result.tables):
            console.print(
                f"see the quarantined rows: allpayer export quarantine --db {result.db}"
                + (" --backend spark" if backend == "spark" else "") + " --out quarantine.csv",
                highlight=False,
                markup=False,
            )
