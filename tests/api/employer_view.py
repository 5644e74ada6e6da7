"""What an employer can read, gathered for the disclosure tests of the API and the dashboard: one
employer user per employer of the test world, and each employer's year report as a reader sees it
(the shown display strings, `HIDDEN` where suppressed)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from allpayer.reports.base import HIDDEN

PASSWORD = "disclosure-password"
YEAR = 2024


@dataclass
class EmployerReader:
    employer_id: str
    username: str
    key: str
    report: dict  # (section, row, column) -> display value of the employer's year report


def employer_readers(world) -> dict[str, EmployerReader]:
    """An employer user (with an API key) for every employer of the world with member months in
    `YEAR`, and its year report (`allpayer.reports.employer.build`)."""
    import ibis

    from allpayer.api.auth import Users
    from allpayer.reports import csvout, employer
    from allpayer.store import open_store

    con = ibis.duckdb.connect(str(world.db), read_only=True)
    users = Users(open_store(world.store_url))
    out = {}
    try:
        for emp in employer.employers(con):
            try:
                rep = employer.build(con, emp, YEAR, "test")
            except employer.ReportError:
                continue
            name = f"disclosure-{emp}"
            if users.get(name) is None:
                users.add(name, PASSWORD, role="employer", org_id=emp)
            report = {(r[5], r[6], r[7]): r[8] for r in csvout.records(rep)}
            out[emp] = EmployerReader(emp, name, users.new_key(name, "disclosure tests"), report)
    finally:
        users.store.close()
        con.disconnect()
    return out


def cents(shown: str) -> int | None:
    """A report's dollars ('$1,234.56', '-$5.00') as cents; None for a hidden cell."""
    if shown == HIDDEN:
        return None
    sign = -1 if shown.startswith("-") else 1
    whole, _, frac = shown.lstrip("-$").replace(",", "").partition(".")
    return sign * (int(whole) * 100 + int(frac or 0))


def number(shown: str) -> int | None:
    """A report's count ('1,234') as an int; None for a hidden cell."""
    return None if shown == HIDDEN else int(shown.replace(",", ""))


def month_key(iso: str) -> str:
    """An API month ('2024-01-01') as the report labels it ('2024-01')."""
    return dt.date.fromisoformat(iso).strftime("%Y-%m")
