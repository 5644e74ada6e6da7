"""The audit log: one row per request in the store's ``api_audit`` table.

A row says who (user name, role, organization, how authenticated), what (method and the route
template, e.g. ``/api/v1/rosters``; never the raw path or query string, which may hold member
identifiers), when (UTC) and the status with its outcome (``ok``, ``denied``, ``unauthenticated``,
``not_found``, ``error``). Server log lines carry the same fields and nothing more.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from allpayer.store import Store

log = logging.getLogger("allpayer.api")


def outcome_of(status: int) -> str:
    if status < 400:
        return "ok"
    if status == 401:
        return "unauthenticated"
    if status == 403:
        return "denied"
    if status == 404:
        return "not_found"
    if status < 500:
        return "rejected"
    return "error"


class Audit:
    def __init__(self, store: Store):
        self.store = store

    def write(self, *, principal, method: str, route: str, status: int) -> None:
        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        outcome = outcome_of(status)
        who = getattr(principal, "username", None)
        self.store.execute(
            "INSERT INTO api_audit (audit_id, at, username, role, org_id, auth, method, route, status, outcome) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (secrets.token_hex(10), at, who, getattr(principal, "role", None), getattr(principal, "org_id", None),
             getattr(principal, "auth", None), method, route, int(status), outcome),
        )
        log.info("%s %s %s user=%s role=%s", method, route, status, who or "-", getattr(principal, "role", None) or "-")

    def rows(self, limit: int = 100) -> list[dict]:
        cols = ("audit_id", "at", "username", "role", "org_id", "auth", "method", "route", "status", "outcome")
        rs = self.store.query(f"SELECT {', '.join(cols)} FROM api_audit ORDER BY at DESC, audit_id LIMIT ?", (limit,))
        return [dict(zip(cols, r)) for r in rs]

    def count(self) -> int:
        return int(self.store.query("SELECT count(*) FROM api_audit")[0][0])
