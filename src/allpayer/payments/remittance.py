"""Remittance advice and the reconciliation of expected against received payments.

A remittance advice lists, for one payee and month, every posted ledger line (program, rule,
amount) and, under each PMPM-based line, the members behind it: member, program, rate cell and
PMPM (CPR and PHM base for practices, per-hospital PMPM FPP for hospitals). Lines that are shares
of a total (FPP by historical share, Value Payment pass-through) show their basis in the memo.
Member lines are rebuilt from the snapshot's ``attribution`` and the terms, so they match the
posted amounts exactly when PMPMs are whole cents (the file's last column says so per line).

The reconciliation reads a received-payments CSV (``payer, program_id, period, amount``; amount
in dollars as written on the remittance received) and compares it with what the ledger expects
the payer to have paid the ACO for that program and period.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Iterable, Iterator

from allpayer.errors import InputFileError
from allpayer.ledger import Ledger, check_period
from allpayer.money import cents_to_dollars, exact_cents
from allpayer.payments.common import attributed_months, py_pmpm_cents, to_micro

REMITTANCE_COLUMNS = ["payee", "month", "program_id", "rule", "line", "member_id", "cell_id", "pmpm",
                      "amount", "memo"]


def iter_remittance_rows(con, ledger: Ledger, programs, payee: str, month: dt.date,
                         batch_rows: int = 50_000) -> Iterator[dict]:
    """The remittance advice rows of `payee` in `month`, one at a time: the posted lines, then
    the member lines behind each PMPM-based line, read from the snapshot in batches of
    `batch_rows` (a state-sized practice lists tens of thousands of members; memory stays bounded
    by one batch). `con` must stay open while the rows are consumed."""
    label = f"{month.year:04d}-{month.month:02d}"
    posted = [e for e in ledger.entries(account=payee, period=label)]
    by_prog = {p.program_id: p for p in programs}
    kind, _, pid_ = payee.partition(":")
    for e in posted:
        sign = 1 if e.debit_account == payee else -1
        yield {"payee": payee, "month": label, "program_id": e.program_id, "rule": e.rule, "line": "posted",
               "member_id": "", "cell_id": "", "pmpm": "", "amount": str(cents_to_dollars(sign * e.amount_cents)),
               "memo": e.memo}
    rules = {(e.program_id, e.rule) for e in posted if e.kind == "entry"}
    if kind != "practice":
        return
    mm = con.table("member_months")
    att = con.table("attribution")
    for program_id, rule in sorted(rules):
        p = by_prog.get(program_id)
        if p is None or rule not in ("cpr.monthly", "phm.base"):
            continue
        am = attributed_months(att, mm, p, [month])
        am = am.filter(am.practice_id == pid_).select("member_id", "cell_id").order_by("member_id")
        micro_of: dict[str, int] = {}  # PMPM by rate cell (a few cells)
        for batch in con.to_pyarrow_batches(am, chunk_size=batch_rows):
            for r in batch.to_pylist():
                cell_id = r["cell_id"]
                micro = micro_of.get(cell_id)
                if micro is None:
                    if rule == "phm.base":
                        micro = to_micro(p.payments.phm.base_pmpm.at(month))
                    else:
                        c = p.payments.cpr
                        cell = c.pmpm_by_cell.get(cell_id)
                        micro = (to_micro(cell.at(month)) if cell else 0) + to_micro(c.care_coordination_pmpm.at(month))
                    micro_of[cell_id] = micro
                yield {"payee": payee, "month": label, "program_id": program_id, "rule": rule, "line": "member",
                       "member_id": r["member_id"], "cell_id": cell_id, "pmpm": f"{micro / 1_000_000:.2f}",
                       "amount": str(cents_to_dollars(py_pmpm_cents(1, micro))), "memo": ""}


def remittance_rows(con, ledger: Ledger, programs, payee: str, month: dt.date) -> list[dict]:
    """Every row of :func:`iter_remittance_rows` as a list (small payees and tests)."""
    return list(iter_remittance_rows(con, ledger, programs, payee, month))


def write_remittance(rows: Iterable[dict], out: Path) -> tuple[int, int]:
    """Write remittance rows (any iterable: they are streamed) to the CSV `out`; returns (posted
    lines, member lines)."""
    counts = {"posted": 0, "member": 0}
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=REMITTANCE_COLUMNS)
        w.writeheader()
        for r in rows:
            counts[r["line"]] = counts.get(r["line"], 0) + 1
            w.writerow(r)
    return counts["posted"], counts["member"]


def write_remittance_advice(con, ledger: Ledger, programs, payee: str, month: dt.date, out: Path) -> tuple[int, int]:
    """Stream the remittance advice of `payee` in `month` into the CSV `out` (see
    :func:`iter_remittance_rows`); returns (posted lines, member lines)."""
    return write_remittance(iter_remittance_rows(con, ledger, programs, payee, month), out)


RECON_COLUMNS = ["payer", "program_id", "period", "expected", "received", "difference", "status", "source_line"]


def read_received(path: Path) -> tuple[list[dict], list[dict]]:
    """(rows, quarantined) of a received-payments CSV; every line is one or the other."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputFileError(str(path), f"cannot read the received-payments file: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    need = {"payer", "program_id", "period", "amount"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise InputFileError(str(path), f"expected columns {', '.join(sorted(need))}, got {reader.fieldnames}")
    ok, bad = [], []
    for i, r in enumerate(reader, start=2):
        try:
            check_period(r["period"].strip())
            cents = exact_cents(r["amount"].strip())
            if not r["payer"].strip() or not r["program_id"].strip():
                raise ValueError("payer and program_id are required")
            ok.append({"payer": r["payer"].strip(), "program_id": r["program_id"].strip(),
                       "period": r["period"].strip(), "received_cents": cents, "line": i})
        except Exception as exc:  # noqa: BLE001 - every bad row is quarantined with its reason
            bad.append({"line": i, "reason": str(exc), "row": r})
    return ok, bad


def reconcile(ledger: Ledger, received: list[dict]) -> list[dict]:
    """Expected (ledger: payer to ACO, per program and period, months summed into a quarter or
    year when the received row names one) against received."""
    out = []
    keys = sorted({(r["payer"], r["program_id"], r["period"]) for r in received})
    got = {}
    for r in received:
        k = (r["payer"], r["program_id"], r["period"])
        got[k] = got.get(k, 0) + r["received_cents"]
    for payer, pid, period in keys:
        exp = -ledger.balance_of(f"payer:{payer}", period=period, program_id=pid)
        rec = got[(payer, pid, period)]
        diff = rec - exp
        out.append({"payer": payer, "program_id": pid, "period": period, "expected": str(cents_to_dollars(exp)),
                    "received": str(cents_to_dollars(rec)), "difference": str(cents_to_dollars(diff)),
                    "status": "matched" if diff == 0 else ("short" if diff < 0 else "over"), "source_line": ""})
    return out


__all__ = ["iter_remittance_rows", "remittance_rows", "write_remittance", "write_remittance_advice", "read_received", "reconcile"]
