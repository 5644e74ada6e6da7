"""The audit log: one row per request in the store's ``api_audit`` table.

A row says who (user name, role, organization, how authenticated), what (method and the route
template, e.g. ``/api/v1/rosters``; never the raw path or query string, which may hold member
identifiers), when (UTC) and the status with its outcome (``ok``, ``denied``, ``unauthenticated``,
``not_found``, ``rejected``, ``throttled``, ``error``). Server log lines carry the same fields and nothing more.

Writes are group-committed: a request's row is committed before `write` returns (so before the
request is answered), but the rows of requests that arrive while a commit is in progress are
committed together in the next one, so that 50 concurrent requests cost a few commits rather
than 50.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading

from allpayer.store import Store

INSERT = ("INSERT INTO api_audit (audit_id, at, username, role, org_id, auth, method, route, status, outcome) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

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
    if status == 429:
        return "throttled"
    if status < 500:
        return "rejected"
    return "error"


class Audit:
    def __init__(self, store: Store):
        self.store = store
        self._cv = threading.Condition()
        self._pending: list[tuple] = []
        self._next_batch = 1  # the batch that rows appended now belong to
        self._done = 0  # the last batch whose commit has finished
        self._failed: set[int] = set()
        self._writing = False
        self.commits = 0

    def write(self, *, principal, method: str, route: str, status: int) -> None:
        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        outcome = outcome_of(status)
        who = getattr(principal, "username", None)
        self._commit_row((secrets.token_hex(10), at, who, getattr(principal, "role", None),
                          getattr(principal, "org_id", None), getattr(principal, "auth", None), method, route,
                          int(status), outcome))
        log.info("%s %s %s user=%s role=%s", method, route, status, who or "-", getattr(principal, "role", None) or "-")

    def _commit_row(self, row: tuple) -> None:
        """Append `row` and return once it is committed (group commit: the first waiting thread
        writes every row pending at that moment in one transaction; the others wait for it)."""
        with self._cv:
            self._pending.append(row)
            mine = self._next_batch
            while True:
                if self._done >= mine:
                    if mine in self._failed:
                        raise RuntimeError("the audit row could not be written")
                    return
                if not self._writing:
                    self._writing = True
                    rows, self._pending = self._pending, []
                    batch = self._next_batch
                    self._next_batch += 1
                    break
                self._cv.wait()
        ok = False
        try:
            self.store.executemany(INSERT, rows)
            ok = True
        finally:
            with self._cv:
                self._writing = False
                self._done = batch
                self.commits += 1
                if not ok:
                    self._failed.add(batch)
                self._cv.notify_all()

    def rows(self, limit: int = 100) -> list[dict]:
        cols = ("audit_id", "at", "username", "role", "org_id", "auth", "method", "route", "status", "outcome")
        rs = self.store.query(f"SELECT {', '.join(cols)} FROM api_audit ORDER BY at DESC, audit_id LIMIT ?", (limit,))
        return [dict(zip(cols, r)) for r in rs]

    def count(self) -> int:
        return int(self.store.query("SELECT count(*) FROM api_audit")[0][0])
