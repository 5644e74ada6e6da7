"""CLI: `allpayer terms` checks and shows contract-terms files.

- ``allpayer terms check FILE_OR_DIR... [--year YEAR] [--strict]``: a table of every file
  (program, payer, year, kind, status); each problem of a bad file gets one line on stderr naming the
  file, the key path and the problem, then one error line with the count. Exit 0 when every
  file is valid, 2 when any is not.
- ``allpayer terms show FILE [--at DATE] [--assumptions] [--json]``: the program's terms with
  defaults filled in (dated values resolved on ``--at``), or the list of its assumptions.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from allpayer.errors import AllpayerError, TermsError
from allpayer.terms import check_files, load_program

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


class InvalidTerms(AllpayerError):
    """Some checked terms files are invalid (each was reported on its own line)."""


def _display(path: Path) -> str:
    """A path relative to the working folder when it lies inside it, else as given."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _print_table(console: Console, table: Table, rows: list[list[str]]) -> None:
    """Print a table; into a file or pipe, widen the output so no cell is cut."""
    if console.is_terminal:
        console.print(table)
        return
    widths = [max([len(str(c.header))] + [len(r[i]) for r in rows]) for i, c in enumerate(table.columns)]
    needed = sum(widths) + 3 * len(widths) + 1
    wide = Console(file=console.file, width=max(console.width, needed), highlight=False, soft_wrap=True)
    wide.print(table)


def check_command(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="FILE_OR_DIR...",
        help="Terms files (YAML), or folders searched recursively for *.yaml and *.yml.",
    ),
    year: int | None = typer.Option(
        None, "--year", metavar="YEAR", help="Only report programs of this performance year (bad files are always reported)."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Also fail files with a number that has no provenance: neither it nor an enclosing block carries a reference or an assumption mark.",
    ),
) -> None:
    """Validate contract-terms files: every file is loaded, checked and listed; bad files fail with file, key and problem."""
    results = check_files(paths, require_sources=strict)
    if year is not None:
        results = [r for r in results if not r.ok or (r.program and r.program.performance_year == year)]
    table = Table(title="contract terms", title_justify="left")
    for col in ("file", "program", "payer", "year", "kind", "status"):
        table.add_column(col, no_wrap=True)
    rows = []
    for r in results:
        p = r.program
        if p is not None:
            rows.append([_display(r.path), p.program_id, p.payer, str(p.performance_year), p.kind, "ok"])
        else:
            rows.append([_display(r.path), "", "", "", "", "error"])
    for row in rows:
        colour = "green" if row[-1] == "ok" else "red"
        table.add_row(*row[:-1], f"[{colour}]{row[-1]}[/]")
    _print_table(out_console, table, rows)
    bad = [r for r in results if not r.ok]
    for r in bad:
        assert r.error is not None
        err = r.error
        where = f"{_display(Path(err.path))}: {err.key}" if err.key else _display(Path(err.path))
        err_console.print(f"[bold red]error:[/] {where}: {err.problem}")
        for key, problem in err.others:  # the file's other problems, each on its own line
            where = f"{_display(Path(err.path))}: {key}" if key else _display(Path(err.path))
            err_console.print(f"[bold red]error:[/] {where}: {problem}")
    if bad:
        verb = "is" if len(bad) == 1 else "are"
        raise InvalidTerms(f"{len(bad)} of {len(results)} terms files {verb} invalid")
    n = len(results)
    out_console.print(f"{n} terms file is valid" if n == 1 else f"{n} terms files are valid")


def show_command(
    path: Path = typer.Argument(..., metavar="FILE", help="A terms file (YAML)."),
    at: str | None = typer.Option(
        None,
        "--at",
        metavar="YYYY-MM-DD",
        help="Resolve dated values on this date (inside the program's effective period) instead of listing every dated entry.",
    ),
    assumptions: bool = typer.Option(
        False, "--assumptions", help="List the key paths of values and blocks marked as assumptions instead of the terms."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of YAML."),
) -> None:
    """Print a program's terms with every default filled in, or its assumptions."""
    program = load_program(path)
    when: dt.date | None = None
    if at is not None:
        try:
            when = dt.date.fromisoformat(at)
        except ValueError:
            raise TermsError(path, "", f"--at: expected a date YYYY-MM-DD, got {at!r}") from None
        eff = program.effective
        if not eff.contains(when):
            raise TermsError(path, "", f"--at {when} is outside the effective period {eff.start} to {eff.end}")
    header = {
        "file": _display(path),
        "program_id": program.program_id,
        "terms_version": program.terms_version,
    }
    if assumptions:
        data: object = {**header, "assumptions": program.assumptions()}
    else:
        data = {**header, **({"resolved_on": when.isoformat()} if when else {}), "terms": program.to_data(at=when)}
    if as_json:
        out_console.print(json.dumps(data, indent=2, ensure_ascii=False), markup=False)
    else:
        out_console.print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100).rstrip(), markup=False)


def register(app: typer.Typer) -> None:
    """Add the `terms` command group to the app."""
    terms_app = typer.Typer(help="Check and show contract-terms files (one YAML file per payer program and year).", no_args_is_help=True)
    terms_app.command("check")(check_command)
    terms_app.command("show")(show_command)
    app.add_typer(terms_app, name="terms")
