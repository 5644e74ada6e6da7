"""The audit log: one row per request in the store's ``api_audit`` table.

A row says who (user name, role, organization, how authenticated), what (method and the route
template, e.g. ``/api/v1/rosters``; never the raw path or query string, which may hold member
identifiers), when (UTC) and the status with its outcome (``ok``, ``denied``, ``unauthenticated``,
``not_found``, ``rejected``, ``throttled``, ``error``). Server log lines carry the same fields and nothing more.

Writes are group-committed by one writer thread: a request's row is committed before `write`
(or the server's ``await awrite``) returns, so before the request is answered, but every row that
arrives while a commit is in progress is committed with the others in the next one, so that 50
concurrent requests cost a few commits rather than 50, and the event loop never waits on the
store (nor holds a worker thread while it waits).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import queue
import secrets
import threading
from concurrent.futures import Future

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
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.commits = 0

    def submit(self, *, principal, method: str, route: str, status: int) -> Future:
        """Queue the audit row of one request; the future is done once the row is committed
        (or holds the error that kept it from the store)."""
        at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
        outcome = outcome_of(status)
        who = getattr(principal, "username", None)
        row = (secrets.token_hex(10), at, who, getattr(principal, "role", None), getattr(principal, "org_id", None),
               getattr(principal, "auth", None), method, route, int(status), outcome)
        log.info("%s %s %s user=%s role=%s", method, route, status, who or "-", getattr(principal, "role", None) or "-")
        done: Future = Future()
        self._queue.put((row, done))
        if self._writer is None:
            self._start_writer()
        return done

    def write(self, *, principal, method: str, route: str, status: int) -> None:
        """Write one request's row; returns once it is committed."""
        self.submit(principal=principal, method=method, route=route, status=status).result()

    async def awrite(self, *, principal, method: str, route: str, status: int) -> None:
        """`write` for the event loop: waits for the commit without blocking the loop."""
        await asyncio.wrap_future(self.submit(principal=principal, method=method, route=route, status=status))

    def _start_writer(self) -> None:
        with self._start_lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_batches, name="allpayer-audit", daemon=True)
                self._writer.start()

    def _write_batches(self) -> None:
        """The writer thread: take every queued row, commit them in one transaction, tell each
        waiting request; again."""
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self.store.executemany(INSERT, [row for row, _ in batch])
                error = None
            except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
                error = RuntimeError(f"the audit rows could not be written: {type(exc).__name__}")
            self.commits += 1
            for _, done in batch:
                if error is None:
                    done.set_result(None)
                else:
                    done.set_exception(error)

    def rows(self, limit: int = 100) -> list[dict]:
        cols = ("audit_id", "at", "username", "role", "org_id", "auth", "method", "route", "status", "outcome")
        rs = self.store.query(f"SELECT {', '.join(cols)} FROM api_audit ORDER BY at DESC, audit_id LIMIT ?", (limit,))
        return [dict(zip(cols, r)) for r in rs]

    def count(self) -> int:
        return int(self.store.query("SELECT count(*) FROM api_audit")[0][0])
