"""CLI: ``allpayer run`` computes the core stages of a performance year for every program."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def register(app: typer.Typer) -> None:
    @app.command(
        "run",
        help="Compute member months, attribution, TCOC, utilization and leakage for every program of a "
        "performance year, and publish them as a new snapshot of the database.",
    )
    def run_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB database file written by `allpayer load`."),
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
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
    ) -> None:
        from allpayer import runs
        from allpayer.inputs.load import resolve_paid_through
        from allpayer.pipeline import latest_load_run, run_core
        from allpayer.terms import load_programs, programs_dir

        if not db.exists():
            raise AllpayerError(f"{db}: database not found (load data first with `allpayer load`)")
        term_paths = list(terms) if terms else [programs_dir() / "vermont"]
        programs = load_programs(term_paths)
        pt = runs.parse_date(paid_through)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("starting", total=None)

            def progress(description: str, done: int, total: int) -> None:
                bar.update(task, description=description, completed=done, total=total)

            with runs.begin(
                db,
                kind="run",
                paid_through=pt,
                terms={p.program_id: p.terms_version for p in programs if p.performance_year == year},
                parameters={"year": year, "through": through, "terms": [str(t) for t in term_paths]},
            ) as run:
                run.paid_through = resolve_paid_through(run.con, pt)
                load_run = as_of_load or latest_load_run(run.con)
                run.parameters["as_of_load"] = load_run
                result = run_core(
                    run.con, programs, year, run.paid_through, run.run_id,
                    through=_month(through), through_load_run=load_run, progress=progress,
                )
                run.summary = {"rows": result.rows, "seconds": result.seconds, "programs": result.programs}
        if as_json:
            print(json.dumps({"run_id": run.run_id, "db": str(db), "year": year,
                              "paid_through": run.paid_through.isoformat(), **run.summary}, indent=2))
            return
        t = Table(title=f"Run {run.run_id}: PY{year}, claims paid through {run.paid_through}, inputs as of load {load_run}")
        t.add_column("table")
        t.add_column("rows", justify="right")
        t.add_column("seconds", justify="right")
        for name, n in result.rows.items():
            t.add_row(name, f"{n:,}", f"{result.seconds[name]:.1f}")
        console.print(t)
        console.print(f"programs: {', '.join(result.programs)}")
        console.print(f"published {db}; export any table with `allpayer export TABLE --db {db} --out FILE.csv`")
