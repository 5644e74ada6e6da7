"""CLI: ``allpayer payments`` computes a period's payments and posts them to the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.commands._backend import (backend_option, check_backend, reports_on_publish, reports_option,
                                        spark_master_option, spark_remote_option)
from allpayer.money import cents_to_dollars

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command(
        "payments",
        help="Compute the fixed prospective payments, shadow-claim performance, CPR, PHM and Value Payment "
        "invoices of a month, quarter or year, publish them as a new snapshot and post them to the ledger "
        "(re-running a period posts only what changed).",
    )
    def payments_cmd(
        db: Path = typer.Option(..., "--db", help="The DuckDB database file after `allpayer run --year`, or a "
                                "warehouse folder with --backend spark."),
        month: str = typer.Option(None, "--month", metavar="YYYY-MM", help="Pay one month."),
        quarter: str = typer.Option(None, "--quarter", metavar="YYYY-Qn",
                                    help="Pay (or true up) the three months of a quarter."),
        year: str = typer.Option(None, "--year", metavar="YYYY",
                                 help="Pay every month of a year plus the after-year items (PHM ladder, "
                                      "CPR bonus, pay-for-improvement, IBNR accruals)."),
        terms: list[Path] = typer.Option(None, "--terms", help="Contract-terms files or folders (default: the shipped Vermont programs)."),
        store: str = typer.Option(None, "--store", metavar="URL",
                                  help="Transactional store URL (default sqlite:///<db>.store.sqlite; postgresql://... also works)."),
        paid_through: str = typer.Option(None, "--paid-through", metavar="YYYY-MM-DD",
                                         help="Claims cutoff for shadow claims; default: the latest paid date loaded."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
        backend: str = backend_option(),
        spark_master: str = spark_master_option(),
        spark_remote: str = spark_remote_option(),
        reports: bool | None = reports_option(),
    ) -> None:
        from allpayer import runs
        from allpayer.payments.common import parse_period
        from allpayer.payments.run import run_payments

        period = parse_period(month=month, quarter=quarter, year=year)
        with reports_on_publish(reports):
            res = run_payments(db, period, terms=terms or None, store_url=store,
                               paid_through=runs.parse_date(paid_through),
                               progress=lambda s: err.print(s, style="dim"),
                               backend=check_backend(backend, spark_remote), spark_master=spark_master,
                               spark_remote=spark_remote)
        if as_json:
            print(json.dumps({"run_id": res.run_id, "period": res.period, "rows": res.rows,
                              "postings": res.postings, "notes": res.notes}, indent=2, default=str))
            return
        t = Table(title=f"Payments {res.period} (run {res.run_id})")
        for c in ("batch", "status", "entries", "amount", "previous"):
            t.add_column(c, justify="right" if c in ("entries", "amount", "previous") else "left")
        for p in res.postings:
            t.add_row(p["batch_key"], p["status"], str(p["entries"]), f"{cents_to_dollars(p['total_cents']):,}",
                      f"{cents_to_dollars(p['previous_total_cents']):,}")
        console.print(t)
        for n in res.notes:
            console.print(f"note: {n['program_id']} {n['stage']}: {n['note']}")
        console.print(f"tables: {', '.join(f'{k} ({v:,})' for k, v in res.rows.items())}")
