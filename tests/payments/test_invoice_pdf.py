"""The employer invoice printed to PDF: the totals read back from the PDF are the CSV's."""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import subprocess
from decimal import Decimal

import ibis
import pyarrow as pa
import pytest

from allpayer.cli import main
from allpayer.payments.invoice import invoice_rows, write_invoice

MONTH = dt.date(2024, 3, 1)


def _needs_tools():
    from allpayer.reports.pdf import chromium_path

    missing = [n for n, ok in (("chromium", chromium_path()), ("pdftotext", shutil.which("pdftotext"))) if not ok]
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must have {', '.join(missing)}")
        pytest.skip(f"{', '.join(missing)} not installed (Debian: apt-get install chromium poppler-utils)")


def _con():
    con = ibis.duckdb.connect()
    # two programs invoiced to one employer in March: 1,234 x $4.17 = $5,145.78 and 56 x $3.90 = $218.40
    con.create_table("value_payment_invoices", pa.table({
        "employer_id": ["EMP-A", "EMP-A", "EMP-B"], "program_id": ["vt-2024-sov", "vt-2024-uvm", "vt-2024-sov"],
        "month": [MONTH] * 3, "quarter": ["2024-Q1"] * 3, "member_months": [1234, 56, 99],
        "pmpm_cents": [417, 390, 417], "amount_cents": [1234 * 417, 56 * 390, 99 * 417],
        "working": ["1234 attributed member months x $4.17", "56 attributed member months x $3.90",
                    "99 attributed member months x $4.17"],
    }))
    con.create_table("value_payment_adjustments", pa.table({
        "program_id": ["vt-2024-sov", "vt-2024-uvm"], "quarter": ["2024-Q1", "2024-Q1"], "performance_year": [2024, 2024],
        "base_pmpm": ["4.17", "3.90"], "basis_quarter": pa.array([None, None], pa.string()),
        "target_ytd_cents": pa.array([None, None], pa.int64()), "actual_ytd_cents": pa.array([None, None], pa.int64()),
        "cost_term": ["0", "0"], "quality_score": pa.array([None, None], pa.string()),
        "quality_term": ["0", "0"], "index": ["0", "0"], "factor": ["1", "1"], "pmpm_cents": [417, 390],
        "note": ["first quarter: base PMPM", "first quarter: base PMPM"],
    }))
    return con


def _pdf_text(path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def test_pdf_totals_equal_the_csv(tmp_path):
    _needs_tools()
    lines, adj = invoice_rows(_con(), "EMP-A", MONTH)
    write_invoice(lines, adj, tmp_path / "inv.csv")
    write_invoice(lines, adj, tmp_path / "inv.pdf")
    assert (tmp_path / "inv.pdf").read_bytes()[:5] == b"%PDF-"
    rows = list(csv.DictReader((tmp_path / "inv.csv").open()))
    total = rows[-1]
    assert total["program_id"] == "TOTAL" and total["amount"] == "5364.18" and total["member_months"] == "1290"
    text = _pdf_text(tmp_path / "inv.pdf")
    # the total line of the PDF: member months and amount, as in the CSV
    m = re.search(r"total\s+([\d,]+)\s+\$([\d,]+\.\d\d)", text)
    assert m, text
    assert int(m.group(1).replace(",", "")) == int(total["member_months"])
    assert Decimal(m.group(2).replace(",", "")) == Decimal(total["amount"])
    for r in rows[:-1]:  # each program line's amount appears on the PDF
        assert f"${Decimal(r['amount']):,}" in text
    assert "EMP-A" in text and "EMP-B" not in text


def test_cli_writes_csv_and_pdf(tmp_path, monkeypatch):
    _needs_tools()
    from allpayer import runs

    con = _con()
    monkeypatch.setattr(runs, "open_snapshot", lambda db: con)
    out = tmp_path / "inv.csv"
    assert main(["ledger", "invoice", "--db", str(tmp_path / "x.duckdb"), "--employer", "EMP-A", "--month", "2024-03",
                 "--out", str(out), "--pdf"]) == 0
    assert out.exists() and (tmp_path / "inv.pdf").exists()
    assert "$5,364.18" in _pdf_text(tmp_path / "inv.pdf")
