"""CLI: ``allpayer report`` renders reports for an audience, or every audience of a run.

- ``allpayer report KIND --db FILE --for ORG --period PERIOD [--out DIR] [--format html,pdf,csv]``
  (PERIOD: ``2024``, ``2024-Q2``, ``2024-05`` or ``2024-05-YTD``)
- ``allpayer report --all --db FILE --year YYYY`` renders into ``<db>.reports/<run_id>/``.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from allpayer.commands._backend import on_backend

err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    @app.command("report", help="Render a report (employer, practice, hospital, payer, regulator) as HTML, PDF and "
                                "CSV from the latest published run, or every audience's reports with --all.")
    @on_backend(write=False)
    def report_cmd(
        kind: str = typer.Argument(None, help="employer, practice, hospital, payer or regulator (omit with --all)."),
        db: Path = typer.Option(..., "--db", help="The DuckDB database of the run."),
        org: str = typer.Option(None, "--for", help="The organization: employer id, practice id, hospital id, payer "
                                                    "id; the regulator's name (default GMCB)."),
        period: str = typer.Option(None, "--period", metavar="PERIOD",
                                   help="The period: a year 2024, a quarter 2024-Q2, a month 2024-05, or the year to "
                                        "date through a month 2024-05-YTD (payer and regulator reports: a year)."),
        out: Path = typer.Option(None, "--out", help="Output folder (default: the current folder; with --all, "
                                                     "<db>.reports)."),
        fmt: str = typer.Option("html,pdf,csv", "--format", help="Comma list of html, pdf, csv."),
        all_: bool = typer.Option(False, "--all", help="Render every audience's reports into <db>.reports/<run_id>/."),
        year: int = typer.Option(None, "--year", help="Performance year for --all (or give --period; never defaults "
                                                      "to today)."),
        inputs: Path = typer.Option(None, "--inputs", help="Regulator report: YAML of supplied statewide lives and "
                                                           "national Medicare growth."),
        store: str = typer.Option(None, "--store", metavar="URL",
                                  help="Transactional store for disputes (default sqlite beside the database)."),
    ) -> None:
        from allpayer.reports.base import ReportError
        from allpayer.reports.publish import parse_formats, parse_period, render_all, render_one

        formats = parse_formats(fmt)
        if all_:
            if year is None and period is None:
                raise ReportError("--all needs --year YYYY (or --period)")
            folder = render_all(db, parse_period(period) if period is not None else year, formats, out=out, inputs=inputs, store_url=store,
                                say=lambda s: err.print(s, style="dim"))
            print(folder)
            return
        if not kind:
            raise ReportError("give a report KIND (employer, practice, hospital, payer, regulator) or --all")
        if period is None and year is None:
            raise ReportError("--period is required (2024, 2024-Q2, 2024-05 or 2024-05-YTD)")
        y = parse_period(period) if period is not None else year
        if org is None:
            if kind != "regulator":
                raise ReportError(f"--for is required for a {kind} report")
            org = "GMCB"
        files = render_one(db, kind, org, y, out or Path("."), formats, inputs=inputs, store_url=store)
        for f in formats:
            print(files[f])
