"""CLI: ``allpayer run`` computes the core stages of a performance year for every program."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.commands._backend import (backend_option, check_backend, reports_on_publish, reports_option,
                                        spark_master_option, spark_remote_option)
from allpayer.commands._console import stage_progress
from allpayer.errors import AllpayerError

console = Console()
err = Console(stderr=True)


def _month(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        y, m = value.split("-")
        return dt.date(int(y), int(m), 1)
    except ValueError:
        raise AllpayerError(f"--through takes a month like 2024-06, got {value!r}") from None


def _threshold_cents(value: str) -> int:
    """``--high-cost-threshold``: whole dollars and cents, more than zero."""
    from allpayer.money import exact_cents

    try:
        cents = exact_cents(value.replace(",", "").lstrip("$"))
    except ValueError:
        cents = 0
    if cents <= 0:
        raise AllpayerError(f"--high-cost-threshold takes an amount in dollars above zero, like 100000 or "
                            f"250000.00, got {value!r}")
    return cents


def register(app: typer.Typer) -> None:
    @app.command(
        "run",
        help="Compute member months, attribution, CMS-HCC risk scores and ratios, TCOC (with truncation, "
        "completion factors, utilization and leakage) and expected-cost targets for every program of a "
        "performance year, and publish them as a new snapshot of the database.",
    )
    def run_cmd(
        db: Path = typer.Option(..., "--db", help="The database written by `allpayer load`: a DuckDB file, or a "
                                "warehouse folder with --backend spark."),
        year: int = typer.Option(..., "--year", help="Performance year (required: never defaults to today)."),
        through: str = typer.Option(None, "--through", metavar="YYYY-MM", help="Last month of a year-to-date run."),
        paid_through: str = typer.Option(
            None, "--paid-through", metavar="YYYY-MM-DD",
            help="Claims run-out cutoff; default: the latest paid date loaded (never today).",
        ),
        terms: list[Path] = typer.Option(
            None, "--terms", help="Contract-terms files or folders (default: the shipped Vermont programs)."
        ),
        as_of_load: str = typer.Option(
            None, "--as-of-load", metavar="RUN_ID",
            help="Read inputs as they stood after this load run (re-run an old run exactly). Default: the latest load.",
        ),
        high_cost: str = typer.Option(
            None, "--high-cost-threshold", metavar="DOLLARS",
            help="A member's cost in a program and year (FFS basis, before truncation) from which the member is "
            "listed in high_cost_claimants; default 100000.",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
        reports: bool | None = reports_option(),
    ) -> None:
        from allpayer import runs
        from allpayer.pipeline import HIGH_COST_THRESHOLD_CENTS, run_year

        threshold = HIGH_COST_THRESHOLD_CENTS if high_cost is None else _threshold_cents(high_cost)
        with stage_progress(err) as progress, reports_on_publish(reports):
            out = run_year(db, year, terms=terms or None, paid_through=runs.parse_date(paid_through),
                           through=_month(through), as_of_load=as_of_load, progress=progress,
                           backend=check_backend(backend, spark_remote), spark_master=spark_master,
                           spark_remote=spark_remote, high_cost_threshold_cents=threshold)
        result = out.core
        other = {**result.other_seconds, **out.seconds}  # every part of the run outside its tables
        if as_json:
            print(json.dumps({"run_id": out.run_id, "db": str(db), "backend": backend, "year": year, "as_of_load": out.as_of_load,
                              "paid_through": out.paid_through.isoformat(), "rows": result.rows,
                              "seconds": result.seconds, "other_seconds": other,
                              "programs": result.programs, "notes": result.notes}, indent=2))
            return
        t = Table(title=f"Run {out.run_id}: PY{year}, claims paid through {out.paid_through}, inputs as of load {out.as_of_load}")
        t.add_column("table")
        t.add_column("rows", justify="right")
        t.add_column("seconds", justify="right")
        for name, n in result.rows.items():
            t.add_row(name, f"{n:,}", f"{result.seconds[name]:.1f}")
        total = other.pop("total")
        for name, secs in other.items():
            t.add_row(f"[dim]{name}[/dim]", "", f"{secs:.1f}")
        t.add_row("whole run", "", f"{total:.1f}")
        console.print(t)
        console.print(f"programs: {', '.join(result.programs)}")
        for note in result.notes:
            console.print(f"note: {note}", highlight=False, markup=False)
        console.print(f"published {db}; export any table with `allpayer export TABLE --db {db} --out FILE.csv`")
