"""CLI: `allpayer mssp` settles Medicare Shared Savings Program results under the dated MSSP rules.

- ``allpayer mssp settle INPUT.csv --out RESULTS.csv [--explain ACO_ID] [--terms DIR]``
- ``allpayer mssp settle PUF.csv --year YEAR --out RESULTS.csv [--layout puf]``: CMS's public use
  file, settled and compared with CMS's published amounts
- ``allpayer mssp rules [--year YEAR] [--terms DIR]``

Exit codes of ``settle``: 0 when every row settled; 3 when some rows were rejected (each is
reported on stderr with its line and reason, then one error line with the count; the rows that
settled are written all the same); 2 when the file cannot be read at all, lacks a required
column, or the terms are invalid (nothing is written).
"""

from __future__ import annotations

import csv
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from allpayer.errors import AllpayerError
from allpayer.settlement.mssp import MsspSettlement
from allpayer.settlement.mssp_csv import SettleResult, display_value, settle_file, totals, write_results
from allpayer.settlement.mssp_puf import PUF_OUTPUT_COLUMNS, WITHIN_SHARE, is_puf_header, reproduced, settle_puf
from allpayer.settlement.mssp_terms import MsspRules, MsspYearRules, load_mssp_rules


class RowsRejected(AllpayerError):
    """Some input rows could not be settled; the others were written (exit code 3)."""

    exit_code = 3


out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def _rules(terms: Path | None) -> MsspRules:
    return load_mssp_rules(terms)


def _explain_table(s: MsspSettlement) -> Table:
    table = Table(title=f"{s.aco.aco_id} PY{s.aco.performance_year} {s.aco.track}: {s.rule_set}", title_justify="left")
    table.add_column("step")
    table.add_column("value", justify="right")
    table.add_column("how")
    table.add_column("rule")
    for ln in s.lines:
        table.add_row(ln.label, display_value(ln), ln.basis, _short_reference(ln.reference))
    for note in s.notes:
        table.add_row("note", "", note, "")
    return table


def _short_reference(reference: str) -> str:
    """The citation part of a reference (before its first ':' or ';')."""
    for sep in (":", ";"):
        reference = reference.split(sep, 1)[0]
    return reference.strip()


def _is_puf(path: Path, layout: str) -> bool:
    if layout not in ("auto", "allpayer", "puf"):
        raise AllpayerError(f"--layout must be auto, allpayer or puf, got {layout!r}")
    if layout != "auto":
        return layout == "puf"
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False  # the reader of the allpayer layout reports what is wrong with the file
    return is_puf_header(header)


def _print_reproduced(result: SettleResult) -> None:
    n = len(result.settled)
    near = reproduced(result, share_of_benchmark=WITHIN_SHARE)
    out_console.print(
        f"reproduced CMS's earned savings/losses within $1 for {reproduced(result)} of {n} ACO(s); "
        f"within 0.001% of the benchmark (quality scores are published rounded) for {near} of {n}"
    )


def _money(amount) -> str:
    return f"${amount:,.2f}"


def settle_command(
    input_csv: Path = typer.Argument(
        ...,
        metavar="INPUT.csv",
        help="One row per ACO and performance year: performance_year, aco_id, track, benchmark_total, "
        "expenditure_total, msr, mlr, quality_score, met_quality_standard, met_alt_quality_standard "
        "(optional: assigned_beneficiaries, reduced_savings_eligible, disaster_adjustment, participant_revenue, "
        "agreement_year, payment_year). Other columns pass through to the output.",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        metavar="RESULTS.csv",
        help="Where to write the results (one row per settled ACO, with the working).",
    ),
    explain: list[str] = typer.Option(
        [], "--explain", metavar="ACO_ID", help="Print every settlement step of this ACO as a table (repeatable)."
    ),
    terms: Path | None = typer.Option(
        None, "--terms", metavar="DIR", help="Folder of MSSP terms to use instead of the packaged ones (what-if runs)."
    ),
    layout: str = typer.Option(
        "auto", "--layout", metavar="auto|allpayer|puf",
        help="Input layout: allpayer's columns, or CMS's ACO financial and quality results public use file "
        "(auto: a file with ACO_ID and ABtotBnchmk columns is a public use file).",
    ),
    year: int | None = typer.Option(
        None, "--year", help="Performance year of a public use file (the file has no year column)."
    ),
) -> None:
    """Settle each ACO's shared savings or losses; write generated and earned amounts with the working."""
    rules = _rules(terms)
    puf = _is_puf(input_csv, layout)
    if puf:
        if year is None:
            raise AllpayerError(f"{input_csv}: a CMS public use file has no performance-year column: give --year")
        result = settle_puf(input_csv, year, rules)
        write_results(out, result, PUF_OUTPUT_COLUMNS)
    else:
        result = settle_file(input_csv, rules)
        write_results(out, result)
    for bad in result.rejected:
        who = f" (aco_id {bad.aco_id})" if bad.aco_id else ""
        err_console.print(f"{input_csv}: line {bad.line}{who}: rejected: {bad.reason}")
    earned, owed = totals(result.settled)
    out_console.print(
        f"settled {len(result.settled)} row(s), rejected {len(result.rejected)} -> {out} "
        f"(earned savings {_money(earned)}, owed losses {_money(-owed)})"
    )
    if puf:
        _print_reproduced(result)
    missing = []
    for aco_id in explain:
        matches = [r.settlement for r in result.settled if r.settlement.aco.aco_id == aco_id]
        if not matches:
            missing.append(aco_id)
        for s in matches:
            out_console.print(_explain_table(s))
    if missing:
        raise AllpayerError(f"--explain: no settled row has aco_id {', '.join(missing)}")
    if result.rejected:
        raise RowsRejected(
            f"{len(result.rejected)} row(s) rejected (listed above); the {len(result.settled)} settled row(s) "
            f"were written to {out}"
        )


def _year_table(year: MsspYearRules) -> Table:
    table = Table(title=f"PY{year.performance_year}: {year.title}", title_justify="left")
    for col in ("track", "sides", "max sharing", "payment limit", "loss rate", "loss limit"):
        table.add_column(col)
    for code, t in year.tracks.items():
        loss_rate = loss_limit = ""
        if t.loss_rate is not None:
            if t.loss_rate.fixed is not None:
                loss_rate = f"{t.loss_rate.fixed.value}"
            else:
                q = t.loss_rate.quality_scaled
                loss_rate = f"1 - {q.sharing_rate.value} x quality, in [{q.floor.value}, {q.ceiling.value}]"
        if t.loss_limit is not None:
            ll = t.loss_limit
            parts = []
            if ll.revenue_share is not None:
                parts.append(f"{ll.revenue_share.value} x revenue")
            if ll.benchmark_share is not None:
                parts.append(f"{ll.benchmark_share.value} x benchmark")
            else:
                steps = ", ".join(f"yr{s.from_agreement_year}+ {s.value}" for s in ll.benchmark_share_by_agreement_year)
                parts.append(f"benchmark x ({steps})")
            loss_limit = "min(" + ", ".join(parts) + ")" if len(parts) > 1 else parts[0]
        table.add_row(
            code.value,
            "two" if t.two_sided else "one",
            f"{t.max_sharing_rate.value}",
            f"{t.savings_cap.value} x benchmark",
            loss_rate,
            loss_limit,
        )
    return table


def rules_command(
    year: int | None = typer.Option(None, "--year", help="Show only this performance year."),
    terms: Path | None = typer.Option(
        None, "--terms", metavar="DIR", help="Folder of MSSP terms to show instead of the packaged ones."
    ),
) -> None:
    """Show the MSSP rules by performance year: tracks, rates, limits, quality rule, sequestration."""
    rules = _rules(terms)
    years = list(rules.years.values())
    if year is not None:
        chosen = rules.for_year(year)
        if chosen is None:
            raise AllpayerError(f"no MSSP rules for performance year {year} (rules exist for {rules.describe_years()})")
        years = [chosen]
    for y in years:
        out_console.print(_year_table(y))
        alt = y.quality.alternative_standard
        quality = y.quality.method
        if alt is not None:
            quality += f", alternative standard {'in force' if alt.in_force else 'not in force'}"
        seq = rules.sequestration_rate(y.payment.payment_year)
        summary = (
            f"quality: {quality}; paid in {y.payment.payment_year} (sequestration {seq}); "
            f"order: {y.payment.limit_order.replace('_', ' ')}"
        )
        reduced = y.reduced_savings_below_msr
        if reduced is not None:
            tracks = ", ".join(t.value for t in reduced.tracks)
            summary += f"; below-MSR sharing x{reduced.rate_factor.value} for {tracks}"
        out_console.print(summary)
        out_console.print(f"source: {y.reference}\n")


def register(app: typer.Typer) -> None:
    """Add the `mssp` command group to the CLI."""
    mssp_app = typer.Typer(
        help="Medicare Shared Savings Program: settle ACO results under the dated MSSP rules (42 CFR 425 subpart G).",
        no_args_is_help=True,
    )
    mssp_app.command("settle")(settle_command)
    mssp_app.command("rules")(rules_command)
    app.add_typer(mssp_app, name="mssp")
