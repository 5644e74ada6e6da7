"""Employer invoice for the Value Payment PMPM, as CSV, HTML or PDF, with its working.

One invoice per employer and month: a line per program (attributed member months x the
quarter's PMPM = amount), the quarter's adjustment (base PMPM, index, factor and how the index
was made) and the total. The counts are the billing census (member months), with no member
identifiers and no clinical detail.

The PDF is the HTML invoice printed by the reports' Chromium renderer
(`allpayer.reports.pdf.html_to_pdf`); its totals are the CSV's.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import tempfile
from pathlib import Path

from allpayer.errors import AllpayerError
from allpayer.money import cents_to_dollars

INVOICE_COLUMNS = ["employer_id", "month", "program_id", "quarter", "member_months", "pmpm", "amount", "working"]

FORMATS = {".csv": "csv", ".html": "html", ".htm": "html", ".pdf": "pdf"}
"""The invoice's file formats, by the suffix of the file written."""


def invoice_format(out: Path) -> str:
    """The format of the invoice file `out` (`FORMATS`, by its suffix in any case); an
    `AllpayerError` naming the suffixes for any other file name."""
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise AllpayerError(f"--out {out}: expected a file name ending in {', '.join(FORMATS)}")
    return fmt


def invoice_rows(con, employer_id: str, month: dt.date) -> tuple[list[dict], list[dict]]:
    """(invoice lines, adjustment rows of their quarters) from the snapshot."""
    if "value_payment_invoices" not in con.list_tables():
        raise AllpayerError("no value_payment_invoices table: run `allpayer payments` first")
    t = con.table("value_payment_invoices")
    lines = con.to_pyarrow(t.filter((t.employer_id == employer_id) & (t.month == month)).order_by("program_id")).to_pylist()
    if not lines:
        raise AllpayerError(f"no invoice for employer {employer_id} in {month:%Y-%m}")
    a = con.table("value_payment_adjustments")
    adj = []
    for ln in lines:
        adj += con.to_pyarrow(a.filter((a.program_id == ln["program_id"]) & (a.quarter == ln["quarter"])
                                       & (a.performance_year == month.year))).to_pylist()
    return lines, adj


def write_invoice(lines: list[dict], adj: list[dict], out: Path) -> None:
    """Write the invoice to `out` in the format of its suffix (`invoice_format`): CSV (``.csv``),
    HTML (``.html``/``.htm``) or PDF (``.pdf``)."""
    out = Path(out)
    fmt = invoice_format(out)
    total = sum(int(r["amount_cents"]) for r in lines)
    if fmt == "html":
        out.write_text(_html(lines, adj, total))
        return
    if fmt == "pdf":
        write_invoice_pdf(lines, adj, out)
        return
    with open(out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(INVOICE_COLUMNS)
        for r in lines:
            w.writerow([r["employer_id"], f"{r['month']:%Y-%m}", r["program_id"], r["quarter"], r["member_months"],
                        cents_to_dollars(r["pmpm_cents"]), cents_to_dollars(r["amount_cents"]), r["working"]])
        w.writerow([lines[0]["employer_id"], f"{lines[0]['month']:%Y-%m}", "TOTAL", "", sum(r["member_months"] for r in lines),
                    "", cents_to_dollars(total), ""])


def write_invoice_pdf(lines: list[dict], adj: list[dict], out: Path) -> Path:
    """Print the HTML invoice to `out` (PDF) with headless Chromium; the HTML is a temporary file."""
    from allpayer.reports.pdf import html_to_pdf

    total = sum(int(r["amount_cents"]) for r in lines)
    with tempfile.TemporaryDirectory(prefix="allpayer-invoice-") as tmp:
        page = Path(tmp) / "invoice.html"
        page.write_text(_html(lines, adj, total))
        return html_to_pdf(page, Path(out))


def _html(lines: list[dict], adj: list[dict], total: int) -> str:
    e = html.escape
    head = lines[0]
    rows = "".join(
        f"<tr><td>{e(r['program_id'])}</td><td>{e(r['quarter'])}</td><td class=n>{r['member_months']:,}</td>"
        f"<td class=n>${cents_to_dollars(r['pmpm_cents'])}</td><td class=n>${cents_to_dollars(r['amount_cents']):,}</td>"
        f"<td>{e(r['working'])}</td></tr>" for r in lines)
    adj_rows = "".join(
        f"<tr><td>{e(a['program_id'])}</td><td>{e(a['quarter'])}</td><td class=n>${e(a['base_pmpm'])}</td>"
        f"<td>{e(str(a['basis_quarter']))}</td><td class=n>{e(str(a['target_ytd_cents']))}</td>"
        f"<td class=n>{e(str(a['actual_ytd_cents']))}</td><td>{e(a['cost_term'])}</td>"
        f"<td>{e(str(a['quality_score']))}</td><td>{e(a['quality_term'])}</td><td>{e(a['index'])}</td>"
        f"<td>{e(a['factor'])}</td><td class=n>${cents_to_dollars(a['pmpm_cents'])}</td><td>{e(a['note'] or '')}</td></tr>"
        for a in adj)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Value Payment invoice {e(head['employer_id'])} {head['month']:%Y-%m}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #999;padding:4px 8px}}.n{{text-align:right}}</style>
</head><body>
<h1>Value Payment invoice</h1>
<p>Employer <b>{e(head['employer_id'])}</b>, month <b>{head['month']:%Y-%m}</b>.
Amount = attributed member months x the quarter's Value Payment PMPM.</p>
<table><tr><th>program</th><th>quarter</th><th>member months</th><th>PMPM</th><th>amount</th><th>working</th></tr>
{rows}
<tr><th colspan=2>total</th><th class=n>{sum(r['member_months'] for r in lines):,}</th><th></th><th class=n>${cents_to_dollars(total):,}</th><th></th></tr></table>
<h2>Quarterly PMPM adjustment</h2>
<p>pmpm(q) = base x clamp(1 + alpha x index(q - lag), floor, ceiling);
index = cost weight x (target YTD - actual YTD) / target YTD + quality weight x (score - target score).</p>
<table><tr><th>program</th><th>quarter</th><th>base</th><th>index from quarter</th><th>target YTD (cents)</th>
<th>actual YTD (cents)</th><th>cost term</th><th>quality score</th><th>quality term</th><th>index</th><th>factor</th>
<th>PMPM</th><th>note</th></tr>
{adj_rows}</table>
</body></html>
"""
