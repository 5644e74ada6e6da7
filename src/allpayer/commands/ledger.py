"""CLI: ``allpayer ledger`` shows the payments ledger: balances, remittance advice, reconciliation,
year-end accruals."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import typer
from rich.console import Console

from allpayer.errors import AllpayerError
from allpayer.money import cents_to_dollars

console = Console()


def _store(db: Path, store: str | None):
    from allpayer.ledger import Ledger
    from allpayer.store import default_store_url, open_store

    if store is None and not db.exists():
        raise AllpayerError(f"{db}: database not found")
    return Ledger(open_store(store or default_store_url(db)))


def balance_lines(led, period: str | None, account: str | None, by_period: bool) -> list[str]:
    """The balance table as fixed-width text lines (deterministic: sorted, no colours or dates)."""
    from allpayer.money import cents_to_dollars

    rows = led.balances(period=period, account=account, by_period=by_period)
    head = f"{'account':<40} {'period':<8} {'debits':>18} {'credits':>18} {'balance':>18}"
    out = [head, "-" * len(head)]
    for b in rows:
        out.append(f"{b.account:<40} {(b.period or period or 'all'):<8} {cents_to_dollars(b.debit_cents):>18,} "
                   f"{cents_to_dollars(b.credit_cents):>18,} {cents_to_dollars(b.balance_cents):>18,}")
    total = sum(b.balance_cents for b in rows)
    out.append("-" * len(head))
    # every entry debits one account and credits another, so over all accounts the balances sum to
    # zero (a check printed with the table); one account's total is just its balance
    label = f"total of {account}" if account is not None else "total (always 0)"
    out.append(f"{label:<40} {'':<8} {'':>18} {'':>18} {cents_to_dollars(total):>18,}")
    return out


def balance_command(
    db: Path = typer.Option(..., "--db", help="The DuckDB database file; the ledger is in <db>.store.sqlite."),
    period: str = typer.Option(None, "--period", metavar="P", help="Only entries inside YYYY, YYYY-Qn or YYYY-MM."),
    account: str = typer.Option(None, "--account", help="One account, e.g. hospital:org-uvmmc."),
    by_period: bool = typer.Option(False, "--by-period", help="One row per account and period instead of per account."),
    store: str = typer.Option(None, "--store", metavar="URL", help="Transactional store URL (default: beside --db)."),
) -> None:
    """Print debits, credits and balance (received net of paid) per account, sorted by account."""
    from allpayer.ledger import check_period

    if period is not None:
        check_period(period)
    led = _store(db, store)
    if account is not None and not led.balances(account=account, by_period=False):
        known = sorted({b.account for b in led.balances(by_period=False)})
        kinds = sorted({a.split(":", 1)[0] + ":..." for a in known})
        raise AllpayerError(f"--account {account}: no entries for this account in the ledger"
                            + (f" (its accounts are of the kinds {', '.join(kinds)}; `allpayer ledger balance` lists "
                               "them all)" if known else " (the ledger is empty: run `allpayer payments` first)"))
    for line in balance_lines(led, period, account, by_period):
        print(line)


def remittance_command(
    db: Path = typer.Option(..., "--db", help="The DuckDB database file (snapshot and ledger)."),
    payee: str = typer.Option(..., "--payee", help="Payee account, e.g. practice:pc-barre-in1 or hospital:org-cvmc."),
    month: str = typer.Option(..., "--month", metavar="YYYY-MM", help="The month paid."),
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
    terms: list[Path] = typer.Option(None, "--terms", help="Contract-terms files or folders (default: the shipped Vermont programs)."),
    store: str = typer.Option(None, "--store", metavar="URL", help="Transactional store URL (default: beside --db)."),
) -> None:
    """Write the remittance advice of one payee and month: posted lines and the members behind them."""
    from allpayer import runs
    from allpayer.ledger import check_account
    from allpayer.payments.common import parse_period
    from allpayer.payments.remittance import write_remittance_advice
    from allpayer.terms import load_programs, programs_dir

    check_account(payee)
    per = parse_period(month=month)
    programs = load_programs([Path(t) for t in terms] if terms else [programs_dir() / "vermont"], year=per.year)
    led = _store(db, store)
    con = runs.open_snapshot(db)
    try:
        posted, members = write_remittance_advice(con, led, programs, payee, per.first, out)
    finally:
        con.disconnect()
    console.print(f"{out}: {posted} posted lines, {members} member lines for {payee} in {month}")


def reconcile_command(
    db: Path = typer.Option(..., "--db", help="The DuckDB database file (the ledger is beside it)."),
    received: Path = typer.Option(..., "--received", help="CSV of payments received: payer, program_id, period, amount."),
    out: Path = typer.Option(..., "--out", help="CSV file to write (one row per payer, program and period)."),
    store: str = typer.Option(None, "--store", metavar="URL", help="Transactional store URL (default: beside --db)."),
) -> None:
    """Compare payments received from payers with what the ledger expects them to have paid."""
    from allpayer.payments.remittance import RECON_COLUMNS, read_received, reconcile

    rows, bad = read_received(received)
    result = reconcile(_store(db, store), rows)
    for b in bad:
        result.append({"payer": b["row"].get("payer", ""), "program_id": b["row"].get("program_id", ""),
                       "period": b["row"].get("period", ""), "expected": "", "received": "", "difference": "",
                       "status": f"quarantined: {b['reason']}", "source_line": str(b["line"])})
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RECON_COLUMNS)
        w.writeheader()
        w.writerows(result)
    matched = sum(1 for r in result if r["status"] == "matched")
    console.print(f"{out}: {len(rows) + len(bad)} rows read, {len(bad)} quarantined; {matched} matched, "
                  f"{len(result) - matched - len(bad)} with a difference")


def accruals_command(
    db: Path = typer.Option(..., "--db", help="The DuckDB database file after `allpayer payments --year`."),
    year: int = typer.Option(..., "--year", help="Performance year."),
    out: Path = typer.Option(..., "--out", help="CSV file to write."),
) -> None:
    """Write the year-end accrual (IBNR reserve) report computed by `allpayer payments --year`."""
    from allpayer import runs

    con = runs.open_snapshot(db)
    try:
        if "payment_accruals" not in con.list_tables():
            raise AllpayerError(f"{db}: no payment_accruals table: run `allpayer payments --year {year}` first")
        t = con.table("payment_accruals")
        rows = con.to_pyarrow(t.filter(t.performance_year == year).order_by("program_id", "month")).to_pylist()
    finally:
        con.disconnect()
    if not rows:
        raise AllpayerError(f"{db}: no accruals for {year}: run `allpayer payments --year {year}` first")
    cols = ["program_id", "performance_year", "payer", "month", "lag", "paid_cents", "completion_factor", "ibnr_cents"]
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([r[c].isoformat() if isinstance(r[c], dt.date) else r[c] for c in cols])
    total = sum(int(r["ibnr_cents"] or 0) for r in rows)
    console.print(f"{out}: {len(rows)} program-months, IBNR reserve {total / 100:,.2f}")


def invoice_command(
    db: Path = typer.Option(..., "--db", help="The DuckDB database file after `allpayer payments`."),
    employer: str = typer.Option(..., "--employer", help="Employer id, e.g. EMP-SOV."),
    month: str = typer.Option(..., "--month", metavar="YYYY-MM", help="The month invoiced."),
    out: Path = typer.Option(..., "--out", help="File to write: .csv, .html or .pdf."),
    pdf: bool = typer.Option(False, "--pdf", help="Also print the invoice to PDF beside --out (same name, .pdf), "
                             "with headless Chromium."),
) -> None:
    """Write an employer's Value Payment invoice for a month, with the quarter's adjustment working."""
    from allpayer import runs
    from allpayer.payments.common import parse_period
    from allpayer.payments.invoice import invoice_format, invoice_rows, write_invoice

    invoice_format(out)  # an unknown suffix is refused before anything is read
    per = parse_period(month=month)
    con = runs.open_snapshot(db)
    try:
        lines, adj = invoice_rows(con, employer, per.first)
    finally:
        con.disconnect()
    write_invoice(lines, adj, out)
    total = sum(int(r["amount_cents"]) for r in lines)
    console.print(f"{out}: {len(lines)} program lines, total {cents_to_dollars(total):,.2f}")
    if pdf and out.suffix.lower() != ".pdf":
        pdf_out = out.with_suffix(".pdf")
        write_invoice(lines, adj, pdf_out)
        console.print(f"{pdf_out}: the same invoice as PDF")


def register(app: typer.Typer) -> None:
    """Add the `ledger` command group to the CLI."""
    ledger_app = typer.Typer(help="The payments ledger: balances, remittance advice, reconciliation, accruals.",
                             no_args_is_help=True)
    ledger_app.command("balance")(balance_command)
    ledger_app.command("remittance")(remittance_command)
    ledger_app.command("reconcile")(reconcile_command)
    ledger_app.command("accruals")(accruals_command)
    ledger_app.command("invoice")(invoice_command)
    app.add_typer(ledger_app, name="ledger")
