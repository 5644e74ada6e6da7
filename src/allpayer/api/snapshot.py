"""The published snapshot as the server sees it.

The server reads only the published DuckDB file, read-only. A run writes a private copy and
swaps it in atomically, so the server is never blocked by a run: it keeps its connection to the
snapshot it opened and, when the file on disk has been replaced (a new inode or modification
time), opens the new snapshot for the next request. Building a query (Ibis) on the shared
connection is serialized by a lock; compiled SQL runs on a cursor taken from the snapshot's pool
(a cursor is a DuckDB connection of its own to the same database), so requests run in parallel
and a cursor is reused rather than opened per request. The pool and the response cache belong to
the snapshot: when a new snapshot is opened, they are dropped with it.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import os
import queue
import threading
from collections import OrderedDict
from pathlib import Path

from allpayer import runs
from allpayer.api.tenancy import Context


def _identity(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def jsonable(value):
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class Snapshot:
    def __init__(self, db: str | Path):
        self.db = Path(db)
        self.lock = threading.RLock()
        self._con = None
        self._ident = None
        self._ctx: Context | None = None

    def context(self) -> Context | None:
        """The scoping context of the current snapshot (reopened when a run published a new one);
        None when no snapshot has been published yet. Call with `lock` held."""
        ident = _identity(self.db)
        if ident is None:
            return None
        if ident != self._ident or self._ctx is None:
            # The previous snapshot's connection is dropped, not closed: requests still running on
            # its cursors finish on the snapshot they started with.
            self._con, ident = self._open()
            self._ident = ident
            self._ctx = Context(con=self._con, program_payer=_program_payer(self._con),
                                hospital_hsa=_hospital_hsa(self._con), snapshot_id="%d-%d-%d" % ident)
            self._ctx.snapshot_ident = ident
            self._ctx.pool = queue.SimpleQueue()
            self._ctx.cache = ResponseCache()
        return self._ctx

    def peek(self) -> Context | None:
        """The context of the snapshot already open, if it is still the one published; else None
        (then call `context`). Takes no lock and opens nothing: for answers served from the
        snapshot's cache on the event loop."""
        ctx = self._ctx
        if ctx is None or _identity(self.db) != getattr(ctx, "snapshot_ident", None):
            return None
        return ctx

    def _open(self):
        """A new read-only connection to the file now published, and that file's identity.

        DuckDB keeps one database instance per file path while any connection to it is open, and
        a connect to the same path returns it, even after the file was replaced: with cursors of
        the previous snapshot still alive, the new snapshot would never be seen. So the file is
        opened through a hard link of a name used once (removed as soon as it is open), which
        also pins the exact file whose identity is recorded. Where no link can be made (a
        read-only folder), the path itself is opened."""
        link = self.db.with_name(f".{self.db.name}.serve-{os.getpid()}-{next(_OPENED)}")
        try:
            os.link(self.db, link)
        except OSError:
            return _limited(runs.open_snapshot(self.db)), _identity(self.db)
        try:
            return _limited(runs.open_snapshot(link)), _identity(link)
        finally:
            link.unlink(missing_ok=True)

    def run(self, ctx: Context, sql: str, as_dicts: bool = False, params: list | None = None) -> list:
        """Execute compiled SQL on a pooled cursor of `ctx`'s snapshot (no lock: a cursor is a
        connection of its own to the same database). A cursor whose query failed is closed, not
        pooled again."""
        pool = ctx.__dict__.get("pool")
        try:
            cur = pool.get_nowait() if pool is not None else ctx.con.con.cursor()
        except queue.Empty:
            cur = ctx.con.con.cursor()
        ok = False
        try:
            res = cur.execute(sql, params) if params else cur.execute(sql)
            out = res.fetch_arrow_table().to_pylist() if as_dicts else res.fetchall()
            ok = True
            return out
        finally:
            if ok and pool is not None and pool.qsize() < POOL_SIZE:
                pool.put(cur)
            else:
                cur.close()

    def rows(self, expr) -> list[dict]:
        with self.lock:
            return [jsonable(r) for r in self._con.to_pyarrow(expr).to_pylist()]

    def scalar(self, expr):
        with self.lock:
            return jsonable(self._con.execute(expr))

    def close(self) -> None:
        with self.lock:
            if self._con is not None:
                self._con.disconnect()
                self._con = None
                self._ctx = None


POOL_SIZE = 64  # idle cursors kept per snapshot
MEMORY_LIMIT_ENV = "ALLPAYER_SERVE_MEMORY_LIMIT"


def _limited(con):
    """`con` with DuckDB's memory limit set from ``ALLPAYER_SERVE_MEMORY_LIMIT`` (e.g. ``2GB``)
    when given: the limit holds for all the snapshot's cursors together (DuckDB's default is 80%
    of the machine's memory)."""
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if limit:
        if not limit.replace(".", "", 1).rstrip("KMGTiBb").isdigit():
            raise ValueError(f"{MEMORY_LIMIT_ENV}={limit!r}: expected a size such as 2GB")
        con.con.execute(f"SET memory_limit = '{limit}'")
    return con
_OPENED = itertools.count(1)


class ResponseCache:
    """Answers computed on one snapshot, least recently used evicted beyond `max_bytes`.

    A published snapshot never changes, so an answer computed on it stays right for as long as it
    is served. The caller's key must hold the snapshot id and the caller's tenant scope (role and
    organization) besides the question, so that one organization's answer is never served to
    another. Values are (size, value); `size` is what the caller counts against `max_bytes`.

    >>> c = ResponseCache(max_bytes=10)
    >>> c.put(("s1", "practice", "P1", "q"), b"12345678")
    >>> c.get(("s1", "practice", "P1", "q")), c.get(("s1", "practice", "P2", "q"))
    (b'12345678', None)
    >>> c.put(("s1", "practice", "P2", "q"), b"abcdef")  # evicts the older answer
    >>> c.get(("s1", "practice", "P1", "q")), len(c)
    (None, 1)
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return hit[1]

    def put(self, key, value, size: int | None = None) -> None:
        size = len(value) if size is None else size
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[0]
            self._items[key] = (size, value)
            self._bytes += size
            while self._bytes > self.max_bytes and self._items:
                _, (n, _) = self._items.popitem(last=False)
                self._bytes -= n


def _program_payer(con) -> dict[str, str]:
    """program_id -> payer, from the snapshot's own tables (``tcoc_summary`` and
    ``settlement_statements`` carry both) and the terms recorded with its runs."""
    out: dict[str, str] = {}
    tables = set(con.list_tables())
    for table in ("tcoc_summary", "settlement_statements"):
        if table in tables and "payer" in con.table(table).columns:
            for pid, payer in con.con.execute(f"SELECT DISTINCT program_id, payer FROM {table}").fetchall():
                if pid and payer:
                    out[pid] = payer
    if "runs" in tables:
        import json

        for (terms,) in con.con.execute("SELECT terms FROM runs WHERE terms IS NOT NULL").fetchall():
            try:
                data = json.loads(terms)
            except (TypeError, ValueError):
                continue
            items = data if isinstance(data, list) else []
            for t in items:
                if isinstance(t, dict) and t.get("program_id") and t.get("payer"):
                    out[t["program_id"]] = t["payer"]
    return out


def _hospital_hsa(con) -> dict[str, str]:
    if "provider_roster" not in set(con.list_tables()):
        return {}
    rows = con.con.execute(
        "SELECT organization_id, min(hsa) FROM provider_roster WHERE practice_type = 'hospital' "
        "AND organization_id IS NOT NULL GROUP BY 1"
    ).fetchall()
    return {r[0]: r[1] for r in rows if r[1] is not None}
