"""CLI: `allpayer runs list|show --db FILE`: the run records of a database, failed runs included."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table as RichTable

from allpayer import runs
from allpayer.errors import AllpayerError

runs_app = typer.Typer(
    name="runs",
    help="List and show run records: id, kind, status, inputs with hashes, code version, paid-through date.",
    no_args_is_help=True,
)


def wide_console() -> Console:
    """A stdout console at least 120 columns wide (so piped output is not cut)."""
    console = Console()
    return console if console.is_terminal and console.width >= 120 else Console(width=max(console.width, 120))


def _json(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


@runs_app.command("list", help="List every run of a database, oldest first (failed and killed attempts included).")
def list_command(
    db: Path = typer.Option(..., "--db", help="Database file (DuckDB), or warehouse folder (Spark backend)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run records as JSON on stdout."),
) -> None:
    records = runs.list_runs(db)
    if not records and not Path(db).exists():
        raise AllpayerError(f"{db}: no such database (a misspelt --db?)")
    if as_json:
        typer.echo(_json(records))
        return
    if not records:
        Console().print(f"no runs recorded for {db}", highlight=False, markup=False)
        return
    table = RichTable()
    for name in ("run id", "seq", "kind", "status", "started (UTC)", "paid through", "published"):
        table.add_column(name, no_wrap=True)
    for r in records:
        table.add_row(
            r["run_id"],
            str(r.get("seq") or "") if r.get("published") else "",
            r["kind"],
            r["status"],
            str(r["started_at"])[:19],
            str(r.get("paid_through") or ""),
            "yes" if r.get("published") else "no",
        )
    wide_console().print(table)


@runs_app.command("show", help="Show one run's record: inputs with SHA-256 hashes, terms, parameters, summary.")
def show_command(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix is enough)."),
    db: Path = typer.Option(..., "--db", help="Database file (DuckDB), or warehouse folder (Spark backend)."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON on stdout."),
) -> None:
    record = runs.get_run(db, run_id)
    if as_json:
        typer.echo(_json(record))
        return
    console = wide_console()
    for key in ("run_id", "seq", "kind", "status", "published", "started_at", "finished_at", "code_version", "paid_through", "error"):
        if record.get(key) is not None:
            console.print(f"{key}: {record[key]}", highlight=False, markup=False)
    for key in ("parameters", "terms", "summary"):
        if record.get(key):
            console.print(f"{key}: {_json(record[key])}", highlight=False, markup=False)
    inputs = record.get("inputs") or []
    if inputs:
        table = RichTable(title="inputs")
        for name in ("path", "bytes", "sha256"):
            table.add_column(name)
        for i in inputs:
            table.add_row(str(i.get("path")), f"{i.get('bytes', 0):,}", str(i.get("sha256")))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
